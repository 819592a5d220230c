"""A pure-Python pre-scan of a Yjs v1 update, run before pycrdt (yrs) ever sees it.

yrs trusts the counts and lengths an update declares. Measured here on pycrdt 0.14 / yrs 0.28
(docs/protocol.md, "Hostile updates"):

- an `Any` value nested 50,000 deep (100 kB) overflows the native stack: a segmentation fault
  that kills the whole server, in `get_state` as much as in `apply_update`;
- struct runs whose clocks pass 2**32 (yrs keeps clocks in 32 bits) panic inside integration,
  possibly halfway through a transaction;
- declared counts far beyond the bytes that follow ask for huge allocations up front.

So the scan walks the whole structure once, O(len(update)), allocating nothing per struct, and
raises InvalidUpdate when:

- a count (groups, structs, JSON or Any items, delete-set clients and ranges) is larger than
  the bytes left could possibly hold (every item takes at least one byte);
- a clock run (a struct's clock plus its length, a deleted range) ends past MAX_CLOCK;
- an `Any` value nests deeper than MAX_DEPTH;
- a content ref is unknown, or anything is truncated, or bytes are left over.

It checks shape, not meaning: pycrdt still decodes what passes. The scan itself costs about
3 us per typical edit and 0.4 ms per 1,000 structs; it gives up (TooLarge) past a CPU-time
budget (`PALIMPSEST_MAX_DECODE_MS`), and pycrdt decodes whatever passed in less time than
that, so no single update holds the event loop for longer than about that budget.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pycrdt import Doc

from server.errors import InvalidUpdate, TooLarge

MAX_CLOCK = 2**32 - 1  # yrs stores clocks as u32
MAX_DEPTH = 128  # nesting of Any values (arrays, objects); JSON in practice stays far below

# Content refs (the low 5 bits of a struct's info byte).
GC, DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, DOC, SKIP = range(11)
XML_ELEMENT, XML_HOOK = 3, 5  # type refs that carry a name

DeleteSet = dict[int, list[tuple[int, int]]]  # client -> [(clock, length)]


class _Bad(Exception):
    pass


# Every reader takes (data, pos) and returns the new pos (and a value): locals and plain
# functions, because this runs on every typed character.


def _uint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise _Bad("truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _Bad("variable-length integer too long")


def _skip_uint(data: bytes, pos: int) -> int:
    end = len(data)
    while True:
        if pos >= end:
            raise _Bad("truncated")
        if data[pos] < 0x80:
            return pos + 1
        pos += 1


def _skip_bytes(data: bytes, pos: int) -> tuple[int, int]:
    """Skip a varUint8Array / varString; returns (its length, pos)."""
    n, pos = _uint(data, pos)
    pos += n
    if pos > len(data):
        raise _Bad("truncated")
    return n, pos


def _count(data: bytes, pos: int, per_item: int = 1) -> tuple[int, int]:
    """A declared number of items, each at least `per_item` bytes: it must fit what is left."""
    n, pos = _uint(data, pos)
    if n * per_item > len(data) - pos:
        raise _Bad(f"declares {n} items but only {len(data) - pos} bytes follow")
    return n, pos


def _fixed(data: bytes, pos: int, n: int) -> int:
    pos += n
    if pos > len(data):
        raise _Bad("truncated")
    return pos


def _any(data: bytes, pos: int, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise _Bad(f"value nested deeper than {MAX_DEPTH}")
    if pos >= len(data):
        raise _Bad("truncated")
    tag = data[pos]
    pos += 1
    if tag in (127, 126, 121, 120):  # undefined, null, false, true
        return pos
    if tag == 125:  # varInt: the same continuation bit as a varUint
        return _skip_uint(data, pos)
    if tag == 124:  # float32
        return _fixed(data, pos, 4)
    if tag in (123, 122):  # float64, bigint64
        return _fixed(data, pos, 8)
    if tag in (119, 116):  # string, bytes
        return _skip_bytes(data, pos)[1]
    if tag == 118:  # object: n x (key, value)
        n, pos = _count(data, pos, 2)
        for _ in range(n):
            pos = _skip_bytes(data, pos)[1]
            pos = _any(data, pos, depth + 1)
        return pos
    if tag == 117:  # array
        n, pos = _count(data, pos)
        for _ in range(n):
            pos = _any(data, pos, depth + 1)
        return pos
    raise _Bad(f"unknown value type {tag}")


def _content(data: bytes, pos: int, ref: int) -> tuple[int, int]:
    """Skip an item's content (other than a string); returns (its clock length, pos)."""
    if ref == DELETED:
        return _uint(data, pos)
    if ref == JSON:
        n, pos = _count(data, pos)
        for _ in range(n):
            pos = _skip_bytes(data, pos)[1]
        return n, pos
    if ref == ANY:
        n, pos = _count(data, pos)
        for _ in range(n):
            pos = _any(data, pos, 1)
        return n, pos
    if ref in (BINARY, EMBED):
        pos = _skip_bytes(data, pos)[1]
    elif ref == FORMAT:
        pos = _skip_bytes(data, _skip_bytes(data, pos)[1])[1]
    elif ref == TYPE:
        type_ref, pos = _uint(data, pos)
        if type_ref in (XML_ELEMENT, XML_HOOK):
            pos = _skip_bytes(data, pos)[1]
    elif ref == DOC:
        pos = _any(data, _skip_bytes(data, pos)[1], 1)
    else:
        raise _Bad(f"unknown content type {ref}")
    return 1, pos


class _Budget:
    """CPU time allowed for one scan, looked at once per CHECK_EVERY bytes scanned.

    The clock starts at the first look: reading a thread's CPU clock is a real system call,
    and nearly every update is far smaller than CHECK_EVERY, so most scans never read it.
    Scanning the first CHECK_EVERY bytes takes well under a millisecond.
    """

    CHECK_EVERY = 32 * 1024

    __slots__ = ("deadline", "next_check", "seconds")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.deadline: float | None = None
        self.next_check = self.CHECK_EVERY

    def check(self, pos: int) -> None:
        self.next_check = pos + self.CHECK_EVERY
        if self.seconds is None:
            return
        now = time.thread_time()
        if self.deadline is None:
            self.deadline = now + self.seconds
        elif now > self.deadline:
            raise _OverBudget


class _OverBudget(Exception):
    pass


def _structs(data: bytes, budget: _Budget) -> tuple[int, bool]:
    """Skip the structs; returns (pos, whether any carries content other than text).

    The hot path of every keystroke: the origins (two varUints each) are skipped inline, and
    an index past the end raises IndexError, which scan() reports as truncation, instead of
    checking bounds before every byte.
    """
    end = len(data)
    rich = False
    groups, pos = _count(data, 0, 3)
    for _ in range(groups):
        n, pos = _count(data, pos)
        pos = _skip_uint(data, pos)  # client
        clock, pos = _uint(data, pos)
        for _ in range(n):
            if pos > budget.next_check:
                budget.check(pos)
            info = data[pos]
            pos += 1
            ref = info & 0x1F
            if ref == GC or ref == SKIP:
                length, pos = _uint(data, pos)
            else:
                if info & 0xC0:
                    for _ in range(2 if info & 0xC0 != 0xC0 else 4):  # origin, right origin
                        while data[pos] & 0x80:
                            pos += 1
                        pos += 1
                else:  # no origins: the parent is spelled out
                    parent_info, pos = _uint(data, pos)
                    if parent_info == 1:
                        pos = _skip_bytes(data, pos)[1]  # a root type's name
                    else:
                        pos = _skip_uint(data, _skip_uint(data, pos))
                    if info & 0x20:
                        pos = _skip_bytes(data, pos)[1]  # parent sub (a map key)
                if ref == STRING:  # most edits: UTF-8 bytes >= UTF-16 units, the clock length
                    length = data[pos]
                    if length < 0x80:
                        pos += 1
                    else:
                        length, pos = _uint(data, pos)
                    pos += length
                    if pos > end:
                        raise _Bad("truncated")
                else:
                    rich = rich or ref != DELETED
                    length, pos = _content(data, pos, ref)
            clock += length
            if clock > MAX_CLOCK:
                raise _Bad(f"clock passes {MAX_CLOCK}")
    return pos, rich


def _delete_set(data: bytes, pos: int, keep: DeleteSet | None, budget: _Budget) -> int:
    clients, pos = _count(data, pos, 2)
    for _ in range(clients):
        if pos > budget.next_check:
            budget.check(pos)
        client, pos = _uint(data, pos)
        n, pos = _count(data, pos, 2)
        ranges: list[tuple[int, int]] = []
        for _ in range(n):
            clock, pos = _uint(data, pos)
            length, pos = _uint(data, pos)
            if clock + length > MAX_CLOCK + 1:
                raise _Bad(f"deleted range passes clock {MAX_CLOCK}")
            if keep is not None:
                ranges.append((clock, length))
        if ranges and keep is not None:
            keep.setdefault(client, []).extend(ranges)
    return pos


# The two shapes nearly every keystroke takes, matched by the regex engine (C) in well under a
# microsecond; anything else takes the full scan. Both keep every clock below 2**28 + 2**28.
_VAR = rb"[\x80-\xff]{0,9}[\x00-\x7f]"  # any varUint (at most 10 bytes)
_SMALL = rb"[\x80-\xff]{0,3}[\x00-\x7f]"  # a varUint below 2**28
# One group, one item from the client typing: origin and/or right origin, a string under 128
# bytes; the delete set (empty) is checked by length below.
_INSERT = re.compile(rb"\x01\x01" + _VAR + _SMALL
                     + rb"(?:[\x84\x44]" + _VAR * 2 + rb"|\xc4" + _VAR * 4 + rb")([\x00-\x7f])",
                     re.DOTALL)
# No structs, one client, one deleted range.
_DELETE = re.compile(rb"\x00\x01" + _VAR + rb"\x01" + _SMALL + _SMALL, re.DOTALL)


def keystroke(update: bytes) -> bool:
    """True if `update` has one of the two keystroke shapes (one string item placed by its
    neighbours, or one deleted range): it can bring no new root type and no JSON object."""
    insert = _INSERT.match(update)
    if insert is not None:
        return (insert.end() + update[insert.end() - 1] + 1 == len(update)
                and update[-1] == 0)
    return _DELETE.fullmatch(update) is not None


def scan(update: bytes, budget_seconds: float | None = None) -> bool:
    """Raise InvalidUpdate unless the update's declared structure fits its bytes and bounds;
    TooLarge if scanning it takes more than `budget_seconds` of CPU time.

    Returns whether it carries only text, deletions and gaps (see `only_text`)."""
    insert = _INSERT.match(update)
    if insert is not None and insert.end() + update[insert.end() - 1] + 1 == len(update) \
            and update[-1] == 0:
        return True
    if _DELETE.fullmatch(update) is not None:
        return True
    budget = _Budget(budget_seconds)
    try:
        pos, rich = _structs(update, budget)
        pos = _delete_set(update, pos, None, budget)
    except _Bad as exc:
        raise InvalidUpdate(f"malformed Yjs update: {exc}") from None
    except IndexError:
        raise InvalidUpdate("malformed Yjs update: truncated") from None
    except RecursionError:
        raise InvalidUpdate("malformed Yjs update: nested too deep") from None
    except _OverBudget:
        raise TooLarge(f"update too costly to decode (over {(budget_seconds or 0) * 1000:.0f} "
                       "ms of CPU); send it in smaller parts") from None
    if pos != len(update):
        raise InvalidUpdate("malformed Yjs update: bytes left over after the delete set")
    return not rich


def delete_set(update: bytes) -> DeleteSet:
    """The delete set of an update (which scan() has passed): client -> [(clock, length)]."""
    ranges: DeleteSet = {}
    budget = _Budget(None)
    try:
        _delete_set(update, _structs(update, budget)[0], ranges, budget)
    except (_Bad, IndexError, RecursionError) as exc:
        raise InvalidUpdate(f"malformed Yjs update: {exc}") from None
    return ranges


def only_text(update: bytes) -> bool:
    """True if the update carries nothing but text, deletions and gaps (every keystroke):
    the content yrs encodes on every edit, which the re-encode check may skip."""
    try:
        return not _structs(update, _Budget(None))[1]
    except (_Bad, IndexError, RecursionError):
        return False


def reencodes(doc: Doc[Any], state_before: bytes) -> bool:
    """Can `doc` still encode what was applied since `state_before` (its state vector then)?

    Encodes only the new structs (plus the delete set), so it costs O(batch + delete set),
    not O(document).
    """
    try:
        doc.get_update(state_before)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException:  # a yrs panic surfaces as a BaseException
        return False
    return True
