"""Planning a compaction: which runs of old edits can be merged without losing a kept point.

From the log (kinds, actors, times: storage.retention) and the read models (revisions,
versions, and what each event inserted and deleted), the runs to merge are the maximal runs of
consecutive edit events (`update`, projected) that are all older than the horizon, by one
author, inside one revision, with no kept point before their last event: a kept point is the
last seq of a revision or a seq a version names. Restores, renames, version names and every
other kind are kept as they are and break runs. Only seqs the projector has reached are
planned. Runs of one event change nothing and are left out.
"""

from __future__ import annotations

from server.events import UPDATED
from server.retention import Segment
from storage.database import Database
from storage.read_model import ReadModel
from storage.retention import LogEntry, kept_seqs, log_entries


def _figures(entry: LogEntry) -> tuple[int, int, float, int, int]:
    """(first seq, events, first time, inserted, deleted) an entry stands for."""
    absorbed = entry.meta.get("absorbed") if entry.kind == UPDATED else None
    if absorbed:
        return (int(absorbed["from_seq"]), int(absorbed["events"]),
                float(absorbed["first_time"]), int(absorbed["inserted"]),
                int(absorbed["deleted"]))
    return entry.seq, 1, entry.time, entry.inserted or 0, entry.deleted or 0


def _segment(run: list[LogEntry]) -> Segment:
    figures = [_figures(e) for e in run]
    return Segment(
        from_seq=figures[0][0], to_seq=run[-1].seq, actor=run[0].actor,
        events=sum(f[1] for f in figures), first_time=figures[0][2],
        inserted=sum(f[3] for f in figures), deleted=sum(f[4] for f in figures),
    )


def plan(entries: list[LogEntry], kept: set[int], before_time: float) -> list[Segment]:
    """The runs to merge (pure; see the module docstring)."""
    segments: list[Segment] = []
    run: list[LogEntry] = []

    def close() -> None:
        if len(run) >= 2:
            segments.append(_segment(run))
        run.clear()

    for entry in entries:
        mergeable = (entry.kind == UPDATED and entry.time < before_time
                     and entry.inserted is not None)
        if not mergeable:
            close()
            continue
        if run and (run[-1].seq in kept or run[-1].actor != entry.actor):
            close()
        run.append(entry)
    close()
    return segments


async def plan_compaction(db: Database, read_model: ReadModel, doc_id: str,
                          before_time: float) -> list[Segment]:
    checkpoint = await read_model.checkpoint(doc_id)
    if checkpoint == 0:
        return []
    entries = await log_entries(db, doc_id, checkpoint)
    # The last projected event may still grow its revision: it is kept (as if it ended one).
    ends, named = await kept_seqs(db, doc_id)
    return plan(entries, ends | named | {checkpoint}, before_time)
