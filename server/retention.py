"""Retention: how long a document keeps every event, and the runs of events compaction merges.

The policy is "keep every event for `keep_days` days; after that keep revision boundaries,
named versions, restores and every event that is not an edit (creation, renames, version
names, deletions, erasures...), and merge the edits between them". A document's own policy
(a `RetentionSet` event) wins over the server's default (`PALIMPSEST_KEEP_DAYS`); the
`palimpsest compact --keep-days N` flag wins over both.

The read side plans (it knows revisions and versions: server.read.retention), the write side
merges (server.write.compaction); a `Segment` is what passes between them.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of consecutive edit events, from_seq..to_seq, by one author within one revision,
    with nothing to keep inside: merged into one event at to_seq. The figures are what the
    run adds up to (so the merged event groups into revisions exactly as the run did)."""

    from_seq: int
    to_seq: int
    actor: str
    events: int
    first_time: float
    inserted: int
    deleted: int


def horizon(now: float, keep_days: float) -> float:
    """Events at or after this time are kept as they are."""
    return now - keep_days * DAY
