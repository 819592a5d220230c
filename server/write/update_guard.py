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

It checks shape, not meaning: pycrdt still decodes what passes.
"""

from __future__ import annotations

from server.errors import InvalidUpdate

MAX_CLOCK = 2**32 - 1  # yrs stores clocks as u32
MAX_DEPTH = 128  # nesting of Any values (arrays, objects); JSON in practice stays far below

# Content refs (the low 5 bits of a struct's info byte).
GC, DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, DOC, SKIP = range(11)
XML_ELEMENT, XML_HOOK = 3, 5  # type refs that carry a name

DeleteSet = dict[int, list[tuple[int, int]]]  # client -> [(clock, length)]


class _Bad(Exception):
    pass


class _Scanner:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def uint(self) -> int:
        data, pos = self.data, self.pos
        if pos >= self.end:
            raise _Bad("truncated")
        byte = data[pos]
        if byte < 0x80:  # the common case: one byte
            self.pos = pos + 1
            return byte
        value, shift = 0, 0
        while True:
            if pos >= self.end:
                raise _Bad("truncated")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return value
            shift += 7
            if shift > 63:
                raise _Bad("variable-length integer too long")

    def count(self, per_item: int = 1) -> int:
        """A declared number of items, each at least `per_item` bytes: must fit what is left."""
        n = self.uint()
        if n * per_item > self.end - self.pos:
            raise _Bad(f"declares {n} items but only {self.end - self.pos} bytes follow")
        return n

    def skip_bytes(self) -> int:
        n = self.uint()
        pos = self.pos + n
        if pos > self.end:
            raise _Bad("truncated")
        self.pos = pos
        return n

    def skip_signed(self) -> None:
        data = self.data
        while True:
            if self.pos >= self.end:
                raise _Bad("truncated")
            byte = data[self.pos]
            self.pos += 1
            if byte < 0x80:
                return

    def fixed(self, n: int) -> None:
        if self.pos + n > self.end:
            raise _Bad("truncated")
        self.pos += n

    def any(self, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _Bad(f"value nested deeper than {MAX_DEPTH}")
        if self.pos >= self.end:
            raise _Bad("truncated")
        tag = self.data[self.pos]
        self.pos += 1
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:  # varInt
            self.skip_signed()
        elif tag == 124:  # float32
            self.fixed(4)
        elif tag in (123, 122):  # float64, bigint64
            self.fixed(8)
        elif tag in (119, 116):  # string, bytes
            self.skip_bytes()
        elif tag == 118:  # object: n x (key, value)
            for _ in range(self.count(2)):
                self.skip_bytes()
                self.any(depth + 1)
        elif tag == 117:  # array
            for _ in range(self.count()):
                self.any(depth + 1)
        else:
            raise _Bad(f"unknown value type {tag}")

    def content_length(self, ref: int) -> int:
        """Skip an item's content; its length in clock units (an upper bound for strings)."""
        if ref == DELETED:
            return self.uint()
        if ref == STRING:
            return self.skip_bytes()  # UTF-8 bytes >= UTF-16 units, the clock length
        if ref == JSON:
            n = self.count()
            for _ in range(n):
                self.skip_bytes()
            return n
        if ref == ANY:
            n = self.count()
            for _ in range(n):
                self.any(1)
            return n
        if ref in (BINARY, EMBED):
            self.skip_bytes()
        elif ref == FORMAT:
            self.skip_bytes()
            self.skip_bytes()
        elif ref == TYPE:
            if self.uint() in (XML_ELEMENT, XML_HOOK):
                self.skip_bytes()
        elif ref == DOC:
            self.skip_bytes()
            self.any(1)
        else:
            raise _Bad(f"unknown content type {ref}")
        return 1

    def structs(self) -> None:
        # The hot path: every typed character passes here. Locals instead of attributes, and
        # the content ref most edits carry (a string) handled inline.
        data, end = self.data, self.end
        uint, skip_bytes = self.uint, self.skip_bytes
        for _ in range(self.count(3)):
            n = self.count()
            uint()  # client
            clock = uint()
            for _ in range(n):
                pos = self.pos
                if pos >= end:
                    raise _Bad("truncated")
                info = data[pos]
                self.pos = pos + 1
                ref = info & 0x1F
                if ref == GC or ref == SKIP:
                    length = uint()
                else:
                    if info & 0x80:  # origin
                        uint()
                        uint()
                    if info & 0x40:  # right origin
                        uint()
                        uint()
                    if not info & 0xC0:  # no origins: the parent is spelled out
                        if uint() == 1:
                            skip_bytes()  # a root type's name
                        else:
                            uint()
                            uint()
                        if info & 0x20:
                            skip_bytes()  # parent sub (a map key)
                    if ref == STRING:
                        length = skip_bytes()  # UTF-8 bytes >= UTF-16 units, the clock length
                    else:
                        length = self.content_length(ref)
                clock += length
                if clock > MAX_CLOCK:
                    raise _Bad(f"clock passes {MAX_CLOCK}")

    def delete_set(self, keep: DeleteSet | None) -> None:
        for _ in range(self.count(2)):
            client = self.uint()
            ranges: list[tuple[int, int]] | None = [] if keep is not None else None
            for _ in range(self.count(2)):
                clock = self.uint()
                length = self.uint()
                if clock + length > MAX_CLOCK + 1:
                    raise _Bad(f"deleted range passes clock {MAX_CLOCK}")
                if ranges is not None:
                    ranges.append((clock, length))
            if keep is not None and ranges:
                keep.setdefault(client, []).extend(ranges)


def scan(update: bytes) -> None:
    """Raise InvalidUpdate unless the update's declared structure fits its bytes and bounds."""
    scanner = _Scanner(update)
    try:
        scanner.structs()
        scanner.delete_set(None)
    except _Bad as exc:
        raise InvalidUpdate(f"malformed Yjs update: {exc}") from None
    except RecursionError:
        raise InvalidUpdate("malformed Yjs update: nested too deep") from None
    if scanner.pos != scanner.end:
        raise InvalidUpdate("malformed Yjs update: bytes left over after the delete set")


def delete_set(update: bytes) -> DeleteSet:
    """The delete set of an update (which scan() has passed): client -> [(clock, length)]."""
    scanner = _Scanner(update)
    try:
        scanner.structs()
        ranges: DeleteSet = {}
        scanner.delete_set(ranges)
    except (_Bad, RecursionError) as exc:
        raise InvalidUpdate(f"malformed Yjs update: {exc}") from None
    return ranges
