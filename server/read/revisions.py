"""Grouping events into revisions, the units of history people read.

A revision is a run of one author's text events. It closes when the next event is by someone
else, comes after an idle gap, or would take it past a size; a restore is always a revision of
its own. Times are the events' own, so the grouping is a pure function of the log.

A compacted event (the merge of a run of one revision's events) counts as the run it stands
for: its first seq and time, its number of events, what they inserted and deleted. So a
revision is grouped the same before and after compaction.
"""

from __future__ import annotations

from dataclasses import dataclass

EDIT = "edit"
RESTORE = "restore"


@dataclass(frozen=True, slots=True)
class GroupingRules:
    idle_gap: float = 60.0  # seconds between events that close a revision
    max_chars: int = 1000  # characters inserted + deleted
    max_events: int = 1000


@dataclass(frozen=True, slots=True)
class Revision:
    number: int
    from_seq: int
    to_seq: int
    authors: tuple[str, ...]
    started_at: float
    ended_at: float
    inserted: int
    deleted: int
    events: int
    kind: str = EDIT


def _joins(last: Revision, actor: str, time: float, kind: str, rules: GroupingRules) -> bool:
    return (
        kind == EDIT
        and last.kind == EDIT
        and last.authors == (actor,)
        and time - last.ended_at <= rules.idle_gap
        and last.inserted + last.deleted < rules.max_chars
        and last.events < rules.max_events
    )


def extend(
    last: Revision | None,
    *,
    seq: int,
    actor: str,
    time: float,
    kind: str,
    inserted: int,
    deleted: int,
    rules: GroupingRules,
    first_seq: int | None = None,
    first_time: float | None = None,
    events: int = 1,
) -> Revision:
    """The revision that event `seq` belongs to: `last` grown by it, or a new one.

    For a compacted event, `first_seq`, `first_time` and `events` describe the run it
    stands for (its own seq and time are the run's last)."""
    started = time if first_time is None else first_time
    if last is not None and _joins(last, actor, started, kind, rules):
        # Built directly rather than with dataclasses.replace: this runs once per event.
        return Revision(
            last.number, last.from_seq, seq, last.authors, last.started_at,
            max(last.ended_at, time), last.inserted + inserted, last.deleted + deleted,
            last.events + events, last.kind,
        )
    return Revision(
        number=last.number + 1 if last is not None else 1,
        from_seq=seq if first_seq is None else first_seq,
        to_seq=seq,
        authors=(actor,),
        started_at=started,
        ended_at=time,
        inserted=inserted,
        deleted=deleted,
        events=events,
        kind=kind,
    )
