"""The diff between two seqs, with the author of every inserted and deleted run.

What people read is `word_changes`: the word diff of the two texts (server.worddiff), its
runs attributed from the replay below when the range is short enough to replay (a revision
always is). The replay itself:

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

from server.worddiff import DELETE as WORD_DELETE
from server.worddiff import EQUAL, word_diff

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


def _authors_by_char(runs: Sequence[Change], old: str, new: str
                     ) -> tuple[list[str | None], list[str | None]] | None:
    """Who deleted each character of `old` and who inserted each of `new` (None: kept), from
    the replayed runs; None when the runs do not spell the two texts (a decoding edge)."""
    deleted_by: list[str | None] = []
    inserted_by: list[str | None] = []
    for run in runs:
        n = len(run.text)
        if run.op == KEEP:
            deleted_by.extend([None] * n)
            inserted_by.extend([None] * n)
        elif run.op == DELETE:
            deleted_by.extend([run.author] * n)
        else:
            inserted_by.extend([run.author] * n)
    if len(deleted_by) != len(old) or len(inserted_by) != len(new):
        return None
    return deleted_by, inserted_by


def _split_by_author(op: str, text: str, start: int, by: list[str | None]) -> list[Change]:
    """A word change cut where its author changes. A character the replay kept (the word
    diff replaced the whole word around it) goes to the author of the change beside it."""
    owners = by[start:start + len(text)]
    current = next((o for o in owners if o is not None), None)
    out: list[Change] = []
    begin = 0
    for i, owner in enumerate(owners):
        if owner is not None and owner != current:
            if i > begin:
                out.append(Change(op, text[begin:i], current))
            begin, current = i, owner
    out.append(Change(op, text[begin:], current))
    return out


def word_changes(old: str, new: str, runs: Sequence[Change] | None,
                 timeout: float = 0.02) -> list[Change]:
    """The changes from `old` to `new` in whole words (server.worddiff), each inserted or
    deleted run with its author when `runs` (the replay of the events between, from
    attributed_diff) says who; otherwise without authors."""
    authors = _authors_by_char(runs, old, new) if runs is not None else None
    out: list[Change] = []
    a = b = 0
    for op, text in word_diff(old, new, timeout=timeout):
        if op == EQUAL:
            out.append(Change(KEEP, text, None))
            a += len(text)
            b += len(text)
        elif op == WORD_DELETE:
            out += (_split_by_author(DELETE, text, a, authors[0]) if authors is not None
                    else [Change(DELETE, text, None)])
            a += len(text)
        else:
            out += (_split_by_author(INSERT, text, b, authors[1]) if authors is not None
                    else [Change(INSERT, text, None)])
            b += len(text)
    return out
