"""The whole document at a seq: its Yjs state and every root type rendered as JSON.

Built from the log's history API (`server/ydoc.read_history`: the nearest snapshot at or
before the seq and the events after it) and replayed into a scratch pycrdt Doc, so it holds
whatever the storage keeps underneath. It runs in the read workers (server/read/workers.py):
a replay is pure CPU.
"""

from __future__ import annotations

import base64
from typing import Any

from pycrdt import Doc

from server.ydoc import PendingUpdates, read_history, replay
from server.yrender import render
from storage.event_store import EventStore

Json = dict[str, Any]


async def doc_at(store: EventStore, doc_id: str, seq: int
                 ) -> tuple[Doc[Any], PendingUpdates]:
    """A scratch Doc holding events 1..seq of the document (empty at seq 0), and what it
    holds pending (with the JSON objects' key order)."""
    doc: Doc[Any] = Doc()
    pending = PendingUpdates()
    if seq > 0:
        history = await read_history(store, doc_id, seq)
        replay(doc, history.state, history.events, pending)
    return doc, pending


def content_json(doc: Doc[Any], pending: PendingUpdates, seq: int) -> Json:
    """The answer of GET /api/documents/{id}/content: `{seq, state, roots}`; the state as a
    snapshot stores it (pending structs in, JSON objects in their writers' key order)."""
    state = pending.snapshot_state(doc)
    return {"seq": seq, "state": base64.b64encode(state).decode(), "roots": render(doc)}


async def content_at(store: EventStore, doc_id: str, seq: int) -> Json:
    doc, pending = await doc_at(store, doc_id, seq)
    return content_json(doc, pending, seq)
