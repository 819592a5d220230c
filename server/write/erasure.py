"""Planning an erasure: which events' content to erase, and their rewritten payloads.

The content of every Yjs event of the selection (a seq range, or every event of one actor) is
replaced by placeholders of the same length (server.write.update_rewrite), so the CRDT
structure, every later event and every position stay valid. A compacted event stands for a
range of seqs: a range that cuts one is refused (it would erase part of what it merged).
Events of other kinds carry no text content and are left alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from server.errors import BadRequest, Conflict
from server.events import RESTORED, UPDATED, absorbed_from
from server.write.update_rewrite import erase_content
from storage.event_store import EventStore
from storage.records import EventRecord

YJS_KINDS = (UPDATED, RESTORED)
# Erasing is pure Python; it runs in a worker thread in chunks, so the event loop keeps going.
CHUNK = 2000


@dataclass
class Erasure:
    events: int = 0  # Yjs events selected
    payloads: dict[int, bytes] = field(default_factory=dict)  # seq -> erased payload
    metas: dict[int, dict[str, object]] = field(default_factory=dict)
    expected: dict[int, bytes] = field(default_factory=dict)  # seq -> hash read


async def _selected_range(store: EventStore, doc_id: str, from_seq: int,
                          to_seq: int) -> list[EventRecord]:
    selected = await store.read_list(doc_id, from_seq - 1, to_seq)
    if selected and absorbed_from(selected[0]) < from_seq:
        first = selected[0]
        raise Conflict(f"seq {first.seq} is a compacted event standing for seqs "
                       f"{absorbed_from(first)}-{first.seq}: start the range at "
                       f"{absorbed_from(first)} or after {first.seq}")
    async for after in store.read(doc_id, to_seq):
        if absorbed_from(after) <= to_seq:
            raise Conflict(f"seq {after.seq} is a compacted event standing for seqs "
                           f"{absorbed_from(after)}-{after.seq}: end the range at "
                           f"{after.seq} or before {absorbed_from(after)}")
        break
    return selected


async def _selected_actor(store: EventStore, doc_id: str, actor: str) -> list[EventRecord]:
    return [e async for e in store.read(doc_id) if e.actor == actor]


def _erase(records: list[EventRecord]) -> list[tuple[EventRecord, bytes]]:
    return [(r, erase_content(r.payload)) for r in records]


async def plan_erasure(store: EventStore, doc_id: str, head: int, *,
                       from_seq: int | None = None, to_seq: int | None = None,
                       actor: str | None = None) -> Erasure:
    if actor is not None:
        if from_seq is not None or to_seq is not None:
            raise BadRequest("give from_seq and to_seq, or actor, not both")
        selected = await _selected_actor(store, doc_id, actor)
    else:
        if from_seq is None or to_seq is None:
            raise BadRequest("give from_seq and to_seq, or actor")
        if not 1 <= from_seq <= to_seq:
            raise BadRequest("from_seq must be at least 1 and at most to_seq")
        if to_seq > head:
            raise BadRequest(f"to_seq {to_seq} is past the head ({head})")
        selected = await _selected_range(store, doc_id, from_seq, to_seq)
    plan = Erasure()
    yjs = [r for r in selected if r.kind in YJS_KINDS]
    plan.events = len(yjs)
    for start in range(0, len(yjs), CHUNK):
        for record, erased in await asyncio.to_thread(_erase, yjs[start : start + CHUNK]):
            if erased != record.payload:
                plan.payloads[record.seq] = erased
                plan.metas[record.seq] = {**record.meta, "erased": True}
                plan.expected[record.seq] = record.hash
    return plan
