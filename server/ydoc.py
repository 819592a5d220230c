"""Yjs documents as both sides keep them: loading one from a snapshot plus events, and the
updates a pycrdt Doc holds pending on missing dependencies.

A stock client that reconnects sends its new keystrokes as soon as the socket opens, before its
sync step 2 carries the edits they build on, so an update can arrive ahead of its dependencies.
yrs keeps such structs pending and integrates them when the dependencies come. But it leaves
pending structs out of every encoded state: a snapshot of `doc.get_update()` alone would
silently lose them. So whoever snapshots a Doc tracks what is pending here and stores
`PendingUpdates.snapshot_state(doc)`: the doc's state merged with the pending structs. Loading
such a snapshot integrates what it can and leaves the rest pending, tracked again, so a
struct whose dependencies never come neither stops snapshots nor is ever dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, get_update, merge_updates

from server.events import yjs_update
from storage.event_store import EventStore
from storage.records import EventRecord


def _has_unintegrated(update: bytes, state: bytes) -> bool:
    # The first varUint of a v1 update counts the clients with structs: 0 means the doc's
    # state vector covers every struct in `update`.
    return get_update(update, state)[:1] != b"\x00"


class PendingUpdates:
    def __init__(self) -> None:
        self.updates: list[bytes] = []

    def __bool__(self) -> bool:
        return bool(self.updates)

    def after_apply(self, doc: Any, update: bytes) -> bool:
        """Call after `doc.apply_update(update)`; True if some of it stayed pending."""
        state = doc.get_state()
        if self.updates:
            self.updates = [u for u in self.updates if _has_unintegrated(u, state)]
        rest = get_update(update, state)
        if rest[:1] != b"\x00":
            # Only what did not integrate (and the update's delete set): a snapshot loaded
            # with pending structs must not keep the whole snapshot as "pending".
            self.updates.append(rest)
            return True
        return False

    def snapshot_state(self, doc: Doc[Any]) -> bytes:
        """The doc's encoded state with every pending struct in it: what a snapshot stores."""
        state = doc.get_update()
        return merge_updates(state, *self.updates) if self.updates else state


# Merging thousands of small updates first makes a cold load one integration instead of many.
MERGE_CHUNK = 5000


def replay(doc: Doc[Any], state: bytes | None, records: Iterable[EventRecord],
           pending: PendingUpdates) -> None:
    """Bring `doc` to the end of `records`: a snapshot's `state` (if any), then every Yjs
    update the records carry, merged in chunks. The one way both sides load a document."""
    if state:
        doc.apply_update(state)
        pending.after_apply(doc, state)  # a snapshot may carry pending structs
    chunk: list[bytes] = []
    for record in records:
        update = yjs_update(record)
        if update is None:
            continue
        chunk.append(update)
        if len(chunk) >= MERGE_CHUNK:
            _apply_merged(doc, chunk, pending)
            chunk = []
    if chunk:
        _apply_merged(doc, chunk, pending)


def _apply_merged(doc: Doc[Any], updates: list[bytes], pending: PendingUpdates) -> None:
    update = updates[0] if len(updates) == 1 else merge_updates(*updates)
    doc.apply_update(update)
    pending.after_apply(doc, update)


@dataclass(frozen=True, slots=True)
class History:
    """What loading a document at `seq` needs: the nearest snapshot and the events after it."""

    seq: int
    state: bytes | None
    events: list[EventRecord]


async def read_history(store: EventStore, doc_id: str, until: int | None = None) -> History:
    """The latest snapshot at or before `until` (the head when None) and the events after it."""
    snapshot = await store.snapshot_at_or_before(doc_id, until)
    after = snapshot.seq if snapshot is not None else 0
    events = await store.read_list(doc_id, after, until)
    seq = events[-1].seq if events else after
    return History(seq, snapshot.state if snapshot is not None else None, events)
