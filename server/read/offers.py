"""Events this process's write side committed, held for a follower of the log in the same process.

The projector and the insight follower each keep their read models by folding every event of
a document in seq order. In one process the writers hand both what they commit, each event with
the Y.Text deltas their own apply of it gave (server.write.fanout.Tee): a follower whose state
is in memory at the seq before can fold them without reading the log and without a Doc of its
own applying the update and walking the text again for its delta. Only a hint: anything out of
step (a gap, an event without deltas, a cold follower, a rewrite) is read from the log instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.events import absorbed_from
from storage.records import EventRecord

MAX_OFFERED = 50_000  # events held per document before they are dropped (then read from the log)

Offered = tuple[EventRecord, list[Any] | None]


class Offers:
    def __init__(self) -> None:
        self._held: dict[str, list[Offered]] = {}

    def add(self, doc_id: str, events: Sequence[Offered]) -> None:
        held = self._held.setdefault(doc_id, [])
        held.extend(events)
        if len(held) > MAX_OFFERED:
            del self._held[doc_id]

    def drop(self, doc_id: str) -> None:
        self._held.pop(doc_id, None)

    def clear(self) -> None:
        self._held.clear()

    def take(self, doc_id: str, checkpoint: int, until: int) -> list[Offered]:
        """The held events that follow `checkpoint` without a gap, up to `until` (an event
        whose deltas are None is folded by applying it: it came out of log order)."""
        held = self._held.get(doc_id)
        if not held:
            return []
        start = 0
        while start < len(held) and held[start][0].seq <= checkpoint:
            start += 1
        taken: list[Offered] = []
        seq = checkpoint
        end = start
        while end < len(held):
            event = held[end][0]
            if event.seq > until or absorbed_from(event) != seq + 1:
                break
            taken.append(held[end])
            seq = event.seq
            end += 1
        del held[:end if taken else start]
        return taken
