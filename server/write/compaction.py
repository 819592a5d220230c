"""Executing a compaction plan: each run of edits merged into one event at its last seq.

The read side plans the runs (server.read.retention); here each run is read back from the
log and checked (every event still there, an edit, by the run's author: otherwise the plan is
stale and the run is skipped), merged with Y.mergeUpdates semantics (pycrdt's
`merge_updates`), and written as an `UpdateApplied` whose `absorbed` says what it stands for.
Applying the merged update where the run's first event applied gives exactly the state after
its last: the text at every kept seq is unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from server.events import UPDATED, Absorbed, UpdateApplied, absorbed_from, encode
from server.retention import Segment
from server.ykeyorder import merge_keeping_order
from storage.event_store import EventStore
from storage.records import EventRecord

log = logging.getLogger(__name__)


@dataclass
class Compaction:
    merged: int = 0  # events written
    absorbed: int = 0  # events they replace
    payloads: dict[int, bytes] = field(default_factory=dict)
    metas: dict[int, dict[str, Any]] = field(default_factory=dict)
    removed: list[tuple[int, int]] = field(default_factory=list)
    expected: dict[int, bytes] = field(default_factory=dict)


def _fits(segment: Segment, records: list[EventRecord]) -> bool:
    return (len(records) >= 2 and absorbed_from(records[0]) == segment.from_seq
            and records[-1].seq == segment.to_seq
            and all(r.kind == UPDATED and r.actor == segment.actor for r in records))


def _merged(segment: Segment, records: list[EventRecord]) -> tuple[bytes, dict[str, Any]]:
    update = merge_keeping_order(*(r.payload for r in records))  # JSON keys as written
    absorbed = Absorbed(segment.from_seq, segment.events, segment.first_time,
                        segment.inserted, segment.deleted)
    meta = encode(UpdateApplied(update, absorbed), segment.actor, records[-1].time).meta
    if any(r.meta.get("erased") for r in records):
        meta["erased"] = True
    return update, meta


async def plan_rewrite(store: EventStore, doc_id: str,
                       segments: Sequence[Segment]) -> Compaction:
    plan = Compaction()
    for segment in segments:
        records = await store.read_list(doc_id, segment.from_seq - 1, segment.to_seq)
        if not _fits(segment, records):
            log.info("compaction of %s: seqs %s-%s changed since planned; skipped", doc_id,
                     segment.from_seq, segment.to_seq)
            continue
        update, meta = await asyncio.to_thread(_merged, segment, records)
        plan.payloads[segment.to_seq] = update
        plan.metas[segment.to_seq] = meta
        plan.removed.append((segment.from_seq, segment.to_seq - 1))
        plan.expected.update((r.seq, r.hash) for r in records)
        plan.merged += 1
        plan.absorbed += len(records)
    return plan
