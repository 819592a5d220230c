"""Keeping the key order of JSON objects that yrs re-encodes.

A JSON object stored in a Y.Map or Y.Array (Yjs ContentAny) keeps its keys in the order its
writer gave them, and a Yjs client prints them in that order. yrs decodes such an object into
a hash map: whatever it encodes again (sync step 2 for a newcomer, a snapshot) has the keys in
another order, so a late joiner's JSON is not the writers' (issue 13).

So whoever applies updates remembers, per document, the key order of every object with two
keys or more (`learn`, from the updates as their writers sent them), by its content; and
whatever yrs encodes is passed through `restore`, which puts each object's keys back in the
order remembered for that content (the bytes of every value are kept; only the order of the
key-value pairs changes). A snapshot written restored, the order survives a reload. Two
objects with equal content and different orders are given the order learned last.
"""

from __future__ import annotations

import json
import re
import struct

from pycrdt import merge_updates

from server.ystructs import ANY, Reader, read_struct

OBJECT, ARRAY, STRING = 118, 117, 119
_OBJECT_TAG = bytes([OBJECT])
_ANY_INFO = re.compile(rb"[\x08\x28\x48\x68\x88\xa8\xc8\xe8]")  # ref 8, any flags


class _Value:
    """One Any value read from bytes: its raw bytes (keys reordered), and its content."""

    __slots__ = ("canonical", "raw")

    def __init__(self, raw: bytes, canonical: str) -> None:
        self.raw = raw
        self.canonical = canonical


def _uint_bytes(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


class KeyOrders:
    def __init__(self) -> None:
        self.orders: dict[str, tuple[str, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.orders)

    def _value(self, r: Reader, learn: bool) -> _Value:
        start = r.pos
        tag = r.data[r.pos]
        if tag == OBJECT:
            r.pos += 1
            pairs: list[tuple[str, bytes, str]] = []
            for _ in range(r.uint()):
                key_start = r.pos
                key = r.string()
                key_raw = r.data[key_start : r.pos]
                value = self._value(r, learn)
                pairs.append((key, key_raw + value.raw, value.canonical))
            canonical = json.dumps({k: c for k, _, c in sorted(pairs)}, sort_keys=True)
            if len(pairs) > 1:
                if learn:
                    self.orders[canonical] = tuple(k for k, _, _ in pairs)
                else:
                    order = self.orders.get(canonical)
                    if order is not None and len(order) == len(pairs):
                        rank = {k: i for i, k in enumerate(order)}
                        pairs.sort(key=lambda p: rank.get(p[0], len(rank)))
            raw = bytes([OBJECT]) + _uint_bytes(len(pairs)) + b"".join(p[1] for p in pairs)
            return _Value(raw, canonical)
        if tag == ARRAY:
            r.pos += 1
            items = [self._value(r, learn) for _ in range(r.uint())]
            raw = bytes([ARRAY]) + _uint_bytes(len(items)) + b"".join(i.raw for i in items)
            return _Value(raw, "[" + ",".join(i.canonical for i in items) + "]")
        r.any()
        raw = r.data[start : r.pos]
        return _Value(raw, _scalar(raw))

    def _walk(self, update: bytes, learn: bool) -> bytes | None:
        """Read every ContentAny of `update`: learn its orders, or give the update with
        the orders restored (None when nothing changed)."""
        r = Reader(update)
        out = bytearray()
        copied = 0
        changed = False
        try:
            for _ in range(r.uint()):
                n = r.uint()
                client = r.uint()
                clock = r.uint()
                for _ in range(n):
                    start = r.pos
                    struct = read_struct(r, client, clock)
                    clock += struct.length
                    if struct.ref != ANY:
                        continue
                    # Read the struct again, its values one by one.
                    end = r.pos
                    r.pos = start
                    _skip_header(r)
                    n_values = r.uint()
                    values_start = r.pos
                    values = [self._value(r, learn) for _ in range(n_values)]
                    if learn:
                        continue
                    # Reordering keeps every byte, so the values take the same room.
                    rebuilt = b"".join(v.raw for v in values)
                    if rebuilt != update[values_start:end]:
                        out += update[copied:values_start] + rebuilt
                        copied = end
                        changed = True
        except IndexError:
            raise ValueError("truncated Yjs update") from None
        if learn or not changed:
            return None
        out += update[copied:]
        return bytes(out)

    def learn(self, update: bytes) -> None:
        """Remember the key orders of the objects in an update as its writer sent it."""
        # No object without its tag byte, nor outside a ContentAny (an info byte with ref 8):
        # two byte searches spare most keystrokes the walk.
        if _OBJECT_TAG in update and _ANY_INFO.search(update) is not None:
            self._walk(update, learn=True)

    def restore(self, update: bytes) -> bytes:
        """`update` (as yrs encoded it) with every object's keys in the order learned."""
        if not self.orders:
            return update
        return self._walk(update, learn=False) or update


def merge_keeping_order(*updates: bytes) -> bytes:
    """pycrdt's merge_updates, with every JSON object's keys in its writer's order."""
    orders = KeyOrders()
    for update in updates:
        orders.learn(update)
    return orders.restore(merge_updates(*updates))


def _skip_header(r: Reader) -> None:
    """Move past a struct's info byte, origins, parent and parent sub (not its content)."""
    info = r.data[r.pos]
    r.pos += 1
    if info & 0x80:
        r.uint()
        r.uint()
    if info & 0x40:
        r.uint()
        r.uint()
    if not info & 0xC0:
        if r.uint() == 1:
            r.raw()
        else:
            r.uint()
            r.uint()
        if info & 0x20:
            r.raw()


def _scalar(raw: bytes) -> str:
    """A scalar's content, whatever its encoding: yrs writes every number as a float64
    where Yjs wrote a varInt, so numbers compare by value."""
    tag = raw[0]
    if tag == 125:  # varInt: sign in bit 6 of the first byte, 6 bits, then 7 bits a byte
        first = raw[1]
        value = first & 0x3F
        shift = 6
        for byte in raw[2:] if first & 0x80 else b"":
            value |= (byte & 0x7F) << shift
            shift += 7
        return repr(float(-value if first & 0x40 else value))
    if tag == 124:
        return repr(float(struct.unpack(">f", raw[1:5])[0]))
    if tag == 123:
        return repr(float(struct.unpack(">d", raw[1:9])[0]))
    if tag == 122:
        return repr(float(struct.unpack(">q", raw[1:9])[0]))
    return raw.hex()
