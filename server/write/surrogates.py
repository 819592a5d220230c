"""Refusing updates that cut a character between its two UTF-16 halves.

Yjs counts text in UTF-16 code units, so a client may delete one half of an emoji, insert
between its halves, or format from the middle of it. Yjs then writes U+FFFD for each half;
yrs (pycrdt) keeps the whole character on one side. The server's copy would differ from its
clients', newcomers would get a third text, and stock clients could fail to load the server's
sync step 2 (issue 13). Rewriting such updates the Yjs way is not possible from outside yrs,
so they are refused before they are stored (SplitsSurrogatePair, close code 4423, final: the
same client would send the same cut again), and live clients, newcomers and history agree.

The index knows, per client, the clocks of the second halves of every character above
U+FFFF that client ever inserted (its clock counts UTF-16 units). An update cuts a pair when a
deleted range starts or ends at one, or an item's left origin is the first half of a pair
(the origin's next clock is a second half) or its right origin is a second half. Documents
without such characters pay one byte search per update.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from server.errors import SplitsSurrogatePair
from server.ystructs import STRING, Struct, structs, structs_and_deletions

_ASTRAL = re.compile(rb"[\xf0-\xf4][\x80-\xbf]{3}")  # a 4-byte UTF-8 character (or bytes like it)


def _second_halves(found: dict[int, set[int]], items: list[Struct]) -> None:
    for s in items:
        if s.ref != STRING or s.text is None or s.text.isascii():
            continue
        unit = s.clock
        for char in s.text:
            if ord(char) > 0xFFFF:
                found.setdefault(s.client, set()).add(unit + 1)
                unit += 2
            else:
                unit += 1


class SurrogateIndex:
    def __init__(self) -> None:
        self.halves: dict[int, set[int]] = {}
        self._checked: tuple[bytes, dict[int, set[int]]] | None = None  # check() for add()

    def _own(self, update: bytes, items: list[Struct] | None = None) -> dict[int, set[int]]:
        found: dict[int, set[int]] = {}
        if _ASTRAL.search(update) is not None:
            _second_halves(found, items if items is not None else list(structs(update)))
        return found

    def add(self, update: bytes) -> None:
        """Remember the pairs an applied update inserted."""
        checked, self._checked = self._checked, None
        own = checked[1] if checked is not None and checked[0] is update else \
            self._own(update)
        for client, clocks in own.items():
            self.halves.setdefault(client, set()).update(clocks)

    def add_all(self, updates: Iterable[bytes]) -> None:
        for update in updates:
            self.add(update)

    def check(self, update: bytes) -> None:
        """SplitsSurrogatePair if `update` cuts a pair this document (or it) holds."""
        if not self.halves and _ASTRAL.search(update) is None:
            self._checked = (update, {})
            return  # no pair anywhere: nothing to cut (most documents, every keystroke)
        items, deleted = structs_and_deletions(update)
        own = self._own(update, items)
        self._checked = (update, own)
        halves = self.halves

        def second(client: int, clock: int) -> bool:
            return clock in halves.get(client, ()) or clock in own.get(client, ())

        for client, ranges in deleted.items():
            for clock, length in ranges:
                if second(client, clock) or second(client, clock + length):
                    raise _refused("deletes half of a character")
        for s in items:
            if s.origin is not None and second(s.origin[0], s.origin[1] + 1):
                raise _refused("inserts or formats between the halves of a character")
            if s.right is not None and second(*s.right):
                raise _refused("inserts or formats between the halves of a character")


def _refused(what: str) -> SplitsSurrogatePair:
    return SplitsSurrogatePair(f"this update {what} (a UTF-16 surrogate pair); Yjs and the "
                               "server would disagree, so it is refused")
