"""Grouping events into revisions, the units of history people read: working sessions.

A revision is a run of text events close together in time, by one author or several typing
together; each author's share (events, characters inserted and deleted) is kept. It closes
when the next event comes after an idle gap, when it would pass a size, and when anything
else happened in between in the log (a named version, a rename: its seqs are no longer
consecutive). A restore is always a revision of its own, with the seq it restored.
Times are the events' own, so the grouping is a pure function of the log.

A compacted event (the merge of a run of one revision's events by one author) counts as the
run it stands for: its first seq and time, its number of events, what they inserted and
deleted. So a revision is grouped the same before and after compaction.
"""

from __future__ import annotations

from dataclasses import dataclass

EDIT = "edit"
RESTORE = "restore"

# (author, events, inserted, deleted), in the order the authors first took part.
Share = tuple[str, int, int, int]


@dataclass(frozen=True, slots=True)
class GroupingRules:
    idle_gap: float = 60.0  # seconds between events that close a revision
    max_chars: int = 2000  # characters inserted + deleted
    # Also bounds what showing one revision's own changes replays (queries.ATTRIBUTED_EVENTS).
    max_events: int = 2000


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
    shares: tuple[Share, ...] = ()
    restored_from: int | None = None


def _joins(last: Revision, first_seq: int, time: float, kind: str,
           rules: GroupingRules) -> bool:
    return (
        kind == EDIT
        and last.kind == EDIT
        and first_seq == last.to_seq + 1
        and time - last.ended_at <= rules.idle_gap
        and last.inserted + last.deleted < rules.max_chars
        and last.events < rules.max_events
    )


def _add_share(shares: tuple[Share, ...], actor: str, events: int, inserted: int,
               deleted: int) -> tuple[Share, ...]:
    for i, (author, n, ins, dels) in enumerate(shares):
        if author == actor:
            return (*shares[:i], (author, n + events, ins + inserted, dels + deleted),
                    *shares[i + 1:])
    return (*shares, (actor, events, inserted, deleted))


def shares_of(revision: Revision) -> tuple[Share, ...]:
    """The revision's shares; a row saved before shares were kept has none: its authors
    share it without counts."""
    if revision.shares:
        return revision.shares
    return tuple((author, 0, 0, 0) for author in revision.authors)


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
    restored_from: int | None = None,
) -> Revision:
    """The revision that event `seq` belongs to: `last` grown by it, or a new one.

    For a compacted event, `first_seq`, `first_time` and `events` describe the run it
    stands for (its own seq and time are the run's last)."""
    started = time if first_time is None else first_time
    first = seq if first_seq is None else first_seq
    if last is not None and _joins(last, first, started, kind, rules):
        shares = _add_share(shares_of(last), actor, events, inserted, deleted)
        authors = last.authors if actor in last.authors else (*last.authors, actor)
        # Built directly rather than with dataclasses.replace: this runs once per event.
        return Revision(
            last.number, last.from_seq, seq, authors, last.started_at,
            max(last.ended_at, time), last.inserted + inserted, last.deleted + deleted,
            last.events + events, last.kind, shares, None,
        )
    return Revision(
        number=last.number + 1 if last is not None else 1,
        from_seq=first,
        to_seq=seq,
        authors=(actor,),
        started_at=started,
        ended_at=time,
        inserted=inserted,
        deleted=deleted,
        events=events,
        kind=kind,
        shares=((actor, events, inserted, deleted),),
        restored_from=restored_from if kind == RESTORE else None,
    )
