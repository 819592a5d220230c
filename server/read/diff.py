"""The diff between two seqs, with the author of every inserted and deleted run.

Not a guess from two texts: it replays what the events between the two seqs did. It starts
from the text at `from` as one kept run and applies each event's ops (see textops.py):
inserted bytes become runs tagged with the event's actor; deleting kept bytes turns them into
a deleted run tagged with the deleting actor (a tombstone, zero width); deleting bytes that
were inserted inside the range removes them (they are in neither text). Reading the runs in
order then gives keep/insert/delete with authors, and the kept+inserted runs are exactly the
text at `to`.

Runs live in a flat list with a finger (the last position touched): edits are local, so a
seek is short, and runs of one author's typing merge, so the list stays small.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

KEEP = "keep"
INSERT = "insert"
DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    op: str
    text: str
    author: str | None


class _Runs:
    def __init__(self, base: bytes) -> None:
        # Each run: [op, author, bytes]; DELETE runs are tombstones of zero visible width.
        self.runs: list[list[Any]] = [[KEEP, None, bytearray(base)]] if base else []
        self.i = 0  # the finger: index of a run ...
        self.start = 0  # ... and the visible offset where that run starts

    @staticmethod
    def _width(run: list[Any]) -> int:
        return 0 if run[0] == DELETE else len(run[2])

    def _seek(self, pos: int) -> int:
        """Index of the first run starting exactly at visible offset pos (splitting one)."""
        runs = self.runs
        while self.i > 0 and self.start >= pos:
            self.i -= 1
            self.start -= self._width(runs[self.i])
        while self.i < len(runs) and self.start < pos:
            width = self._width(runs[self.i])
            if self.start + width <= pos:
                self.start += width
                self.i += 1
                continue
            cut = pos - self.start
            run = runs[self.i]
            runs.insert(self.i + 1, [run[0], run[1], run[2][cut:]])
            del run[2][cut:]
            self.start = pos
            self.i += 1
        if self.start != pos:
            raise ValueError(f"offset {pos} is past the end of the text")
        return self.i

    def insert(self, pos: int, data: bytes, author: str) -> None:
        j = self._seek(pos)
        runs = self.runs
        while j < len(runs) and runs[j][0] == DELETE:
            j += 1  # at one place, what was deleted reads before what was inserted
        before = runs[j - 1] if j > 0 else None
        if before is not None and before[0] == INSERT and before[1] == author:
            before[2] += data
            if j - 1 < self.i:
                self.start += len(data)
        else:
            runs.insert(j, [INSERT, author, bytearray(data)])

    def delete(self, pos: int, length: int, author: str) -> None:
        j = self._seek(pos)
        runs = self.runs
        remaining = length
        while remaining > 0:
            if j >= len(runs):
                raise ValueError("delete past the end of the text")
            run = runs[j]
            if run[0] == DELETE:
                j += 1
                continue
            if len(run[2]) > remaining:
                runs.insert(j + 1, [run[0], run[1], run[2][remaining:]])
                del run[2][remaining:]
            remaining -= len(run[2])
            if run[0] == INSERT:
                del runs[j]
                continue
            before = runs[j - 1] if j > 0 else None
            if before is not None and before[0] == DELETE and before[1] == author:
                before[2] += run[2]
                del runs[j]
            else:
                run[0] = DELETE
                run[1] = author
                j += 1

    def changes(self) -> list[Change]:
        out: list[Change] = []
        pending: list[Any] | None = None
        for op, author, data in self.runs:
            if not data:
                continue
            if pending is not None and pending[0] == op and pending[1] == author:
                pending[2] += data
                continue
            if pending is not None:
                out.append(Change(pending[0], pending[2].decode(errors="replace"), pending[1]))
            pending = [op, author, bytearray(data)]
        if pending is not None:
            out.append(Change(pending[0], pending[2].decode(errors="replace"), pending[1]))
        return out


def coalesce(
    events: Iterable[tuple[str, Sequence[Sequence[Any]]]],
) -> Iterator[tuple[str, int, bytes, bytes]]:
    """(actor, pos, deleted, inserted) with one author's runs of typing (or of backspacing,
    or forward deleting) joined into one op each: a trace is mostly such runs, and every op
    saved is a seek saved."""
    actor_: str | None = None
    pos_ = 0
    deleted_ = b""
    inserted_ = b""
    for actor, ops in events:
        for pos, deleted_text, inserted_text in ops:
            deleted = deleted_text.encode()
            inserted = inserted_text.encode()
            if actor == actor_ and not deleted_ and not deleted and inserted_ and inserted \
                    and pos == pos_ + len(inserted_):
                inserted_ += inserted  # typing on
                continue
            if actor == actor_ and not inserted_ and not inserted and deleted_ and deleted:
                if pos == pos_:  # forward delete
                    deleted_ += deleted
                    continue
                if pos + len(deleted) == pos_:  # backspace
                    pos_, deleted_ = pos, deleted + deleted_
                    continue
            if actor_ is not None and (deleted_ or inserted_):
                yield actor_, pos_, deleted_, inserted_
            actor_, pos_, deleted_, inserted_ = actor, pos, deleted, inserted
    if actor_ is not None and (deleted_ or inserted_):
        yield actor_, pos_, deleted_, inserted_


def attributed_diff(
    base: str, events: Iterable[tuple[str, Sequence[Sequence[Any]]]]
) -> list[Change]:
    """Runs from the text `base` through each (actor, ops) event, in order."""
    runs = _Runs(base.encode())
    for actor, pos, deleted, inserted in coalesce(events):
        if deleted:
            runs.delete(pos, len(deleted), actor)
        if inserted:
            runs.insert(pos, inserted, actor)
    return runs.changes()
