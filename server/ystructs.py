"""Reading the structure of a Yjs v1 update: its structs, and the root types they belong to.

Both sides need what pycrdt does not expose. A root type that arrives in an update has no type
until someone asks for it with one (`doc.get(name, type=Text)`): pycrdt lists its name with no
type, and asking with the wrong type would misread it. The update does say what each root
holds, though: map entries (a key), characters, formats and embeds (text), XML elements and
XML texts (an XML fragment), anything else in a sequence (an array). `root_types` reads that
from an encoded state. And the write side finds where an update cuts between the two halves of
a surrogate pair (`server/write/surrogates.py`) from the strings and ids read here. Where
yrs and Yjs integrate differently, `split_ready` (clock gaps) and `unseen_deletions`
(deletions of items not held yet) say what `server/ydoc.PendingUpdates` must hold or track.

Input must have passed the pre-scan (`server/write/update_guard.scan`) or come from the log or
from pycrdt's own encoder: truncation raises ValueError, nothing more is checked.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from pycrdt import get_state, get_update

# Content refs (the low 5 bits of a struct's info byte), as in update_guard.
GC, DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, DOC, SKIP = range(11)
# Type refs of ContentType.
Y_ARRAY, Y_MAP, Y_TEXT, Y_XML_ELEMENT, Y_XML_FRAGMENT, Y_XML_HOOK, Y_XML_TEXT = range(7)

TEXT, MAP, ARRAY, XML = "text", "map", "array", "xml"

Id = tuple[int, int]  # (client, clock)


@dataclass(frozen=True, slots=True)
class Struct:
    client: int
    clock: int
    length: int  # in clock units: UTF-16 code units for a string
    ref: int
    origin: Id | None = None
    right: Id | None = None
    root: str | None = None  # the root type's name, when the parent is spelled out as one
    parent: Id | None = None  # the parent type's id, when spelled out as one
    key: str | None = None  # the map key (parent sub), when spelled out
    text: str | None = None  # a string's content
    type_ref: int | None = None  # a ContentType's type


class Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def uint(self) -> int:
        # Locals, not attributes, in the loop: every update is read here once or twice.
        data = self.data
        pos = self.pos
        byte = data[pos]
        pos += 1
        value = byte & 0x7F
        shift = 7
        while byte >= 0x80:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
        self.pos = pos
        return value

    def raw(self) -> bytes:
        n = self.uint()
        end = self.pos + n
        if end > len(self.data):
            raise IndexError
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def string(self) -> str:
        return self.raw().decode("utf-8", "surrogatepass")

    def any(self) -> None:
        tag = self.data[self.pos]
        self.pos += 1
        if tag in (127, 126, 121, 120):
            return
        if tag == 125:
            self.uint()
        elif tag == 124:
            self.pos += 4
        elif tag in (123, 122):
            self.pos += 8
        elif tag in (119, 116):
            self.raw()
        elif tag == 118:
            for _ in range(self.uint()):
                self.raw()
                self.any()
        elif tag == 117:
            for _ in range(self.uint()):
                self.any()
        else:
            raise ValueError(f"unknown value type {tag}")


def utf16_length(text: str) -> int:
    """The length Yjs gives a string: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def read_struct(r: Reader, client: int, clock: int) -> Struct:
    """The struct at r.pos (its clock given by the group), r moved past it."""
    info = r.data[r.pos]
    r.pos += 1
    ref = info & 0x1F
    if ref in (GC, SKIP):
        return Struct(client, clock, r.uint(), ref)
    origin = right = parent = None
    root = key = text = None
    type_ref = None
    if info & 0x80:
        origin = (r.uint(), r.uint())
    if info & 0x40:
        right = (r.uint(), r.uint())
    if not info & 0xC0:
        if r.uint() == 1:
            root = r.string()
        else:
            parent = (r.uint(), r.uint())
        if info & 0x20:
            key = r.string()
    length = 1
    if ref == STRING:
        text = r.string()
        length = utf16_length(text)
    elif ref == DELETED:
        length = r.uint()
    elif ref == JSON:
        length = r.uint()
        for _ in range(length):
            r.raw()
    elif ref == ANY:
        length = r.uint()
        for _ in range(length):
            r.any()
    elif ref in (BINARY, EMBED):
        r.raw()
    elif ref == FORMAT:
        r.raw()
        r.raw()
    elif ref == TYPE:
        type_ref = r.uint()
        if type_ref in (Y_XML_ELEMENT, Y_XML_HOOK):
            r.raw()
    elif ref == DOC:
        r.raw()
        r.any()
    else:
        raise ValueError(f"unknown content type {ref}")
    return Struct(client, clock, length, ref, origin, right, root, parent, key, text, type_ref)


def structs(update: bytes) -> Iterator[Struct]:
    """Every struct of a v1 update, in order (the delete set is not read)."""
    r = Reader(update)
    try:
        for _ in range(r.uint()):
            n = r.uint()
            client = r.uint()
            clock = r.uint()
            for _ in range(n):
                struct = read_struct(r, client, clock)
                yield struct
                clock += struct.length
    except IndexError:
        raise ValueError("truncated Yjs update") from None


def structs_and_deletions(update: bytes) -> tuple[list[Struct], dict[int, list[tuple[int, int]]]]:
    """Every struct and the delete set (client -> [(clock, length)]), in one pass."""
    r = Reader(update)
    out: list[Struct] = []
    deleted: dict[int, list[tuple[int, int]]] = {}
    try:
        for _ in range(r.uint()):
            n = r.uint()
            client = r.uint()
            clock = r.uint()
            for _ in range(n):
                struct = read_struct(r, client, clock)
                out.append(struct)
                clock += struct.length
        for _ in range(r.uint()):
            client = r.uint()
            deleted[client] = [(r.uint(), r.uint()) for _ in range(r.uint())]
    except IndexError:
        raise ValueError("truncated Yjs update") from None
    return out, deleted


def _kind(s: Struct, key: str | None) -> str | None:
    """What a root's direct child says about the root's type (None: nothing)."""
    if key is not None:
        return MAP
    if s.ref in (STRING, EMBED, FORMAT):
        return TEXT
    if s.ref == TYPE and s.type_ref in (Y_XML_ELEMENT, Y_XML_TEXT, Y_XML_HOOK):
        return XML
    if s.ref in (JSON, ANY, BINARY, DOC, TYPE):
        return ARRAY
    return None  # deleted content says nothing


def root_types(update: bytes) -> dict[str, str | None]:
    """Every root type named in `update` (a document's whole state, best), with what it
    holds: TEXT, MAP, ARRAY or XML, or None when nothing left says (only deleted children).

    An item whose parent is implied by an origin belongs where that origin's item belongs,
    so parents are resolved through origins, left then right, until nothing changes."""
    items = [s for s in structs(update) if s.ref not in (GC, SKIP)]
    by_client: dict[int, list[Struct]] = {}
    for s in items:
        by_client.setdefault(s.client, []).append(s)
    starts = {c: [s.clock for s in ss] for c, ss in by_client.items()}

    def find(id_: Id) -> Struct | None:
        ss = by_client.get(id_[0])
        if ss is None:
            return None
        i = bisect_right(starts[id_[0]], id_[1]) - 1
        if i >= 0 and ss[i].clock <= id_[1] < ss[i].clock + ss[i].length:
            return ss[i]
        return None

    # Each item's (root name or parent id) and map key, once known.
    place: dict[Id, tuple[str | Id, str | None]] = {}
    todo: list[Struct] = []
    for s in items:
        if s.root is not None:
            place[(s.client, s.clock)] = (s.root, s.key)
        elif s.parent is not None:
            place[(s.client, s.clock)] = (s.parent, s.key)
        else:
            todo.append(s)
    while todo:
        left: list[Struct] = []
        for s in todo:
            found = None
            for ref in (s.origin, s.right):
                other = find(ref) if ref is not None else None
                if other is not None and (other.client, other.clock) in place:
                    found = place[(other.client, other.clock)]
                    break
            if found is None:
                left.append(s)
            else:
                place[(s.client, s.clock)] = found
        if len(left) == len(todo):
            break  # the rest hang on items this update does not hold
        todo = left
    roots: dict[str, str | None] = {}
    for s in items:
        where = place.get((s.client, s.clock))
        if where is None or not isinstance(where[0], str):
            continue
        kind = _kind(s, where[1])
        if roots.get(where[0]) is None:
            roots[where[0]] = kind
    return roots


def _state_vector(encoded: bytes) -> dict[int, int]:
    r = Reader(encoded)
    return {r.uint(): r.uint() for _ in range(r.uint())}


def _write_uint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)


def split_ready(update: bytes, state_vector: bytes) -> tuple[bytes | None, bytes | None]:
    """(what Yjs would integrate now, what it would hold back) of `update` for a doc whose
    encoded state vector is `state_vector`; None for an empty part, `update` itself when
    nothing is held.

    Yjs integrates a client's structs in clock order only: a struct whose clock is past what
    the doc holds of that client waits, and every later one of that client with it, until
    the gap is filled. yrs integrates such a struct at once when its origins are there, so a
    doc fed a reconnecting client's new keystrokes before that client's offline edits shows
    text no Yjs client shows (issue 13). Holding those structs back before yrs sees them
    keeps the two the same."""
    if update[:1] == b"\x00":
        return update, None  # no structs (a deletion): nothing to hold
    state = _state_vector(state_vector)
    r = Reader(update)
    if update[:1] == b"\x01" and b"\x0a" not in update:
        # One client, no gap inside (a Skip's info byte is 0x0a): the first clock decides.
        # Nearly every keystroke takes this path.
        r.pos = 1
        r.uint()  # structs
        client = r.uint()
        if r.uint() <= state.get(client, 0):
            return update, None
        if update.endswith(b"\x00"):
            return None, update  # an empty delete set ends the update: nothing else to apply
        # Held structs, but their deletions (of other items) apply now, as Yjs applies them:
        # the full parse below separates the two.
    r.pos = 0
    ready: list[tuple[int, int, list[bytes]]] = []
    held: list[tuple[int, int, list[bytes]]] = []
    try:
        for _ in range(r.uint()):
            n = r.uint()
            client = r.uint()
            clock = r.uint()
            expected = state.get(client, 0)
            ready_parts: list[bytes] = []
            held_parts: list[bytes] = []
            ready_clock = held_clock = None
            for _ in range(n):
                start = r.pos
                struct = read_struct(r, client, clock)
                raw = update[start : r.pos]
                if held_parts or (clock > expected and struct.ref != SKIP):
                    if held_clock is None:
                        held_clock = clock
                    held_parts.append(raw)
                elif struct.ref != SKIP:
                    if ready_clock is None:
                        ready_clock = clock
                    ready_parts.append(raw)
                    expected = max(expected, clock + struct.length)
                clock += struct.length
            if ready_parts and ready_clock is not None:
                ready.append((client, ready_clock, ready_parts))
            if held_parts and held_clock is not None:
                held.append((client, held_clock, held_parts))
    except IndexError:
        raise ValueError("truncated Yjs update") from None
    if not held:
        return update, None
    delete_set = update[r.pos :]
    return (_encode(ready, delete_set) if ready or delete_set != b"\x00" else None,
            _encode(held, b"\x00"))


def _delete_set(update: bytes) -> dict[int, list[tuple[int, int]]]:
    if update.endswith(b"\x00"):
        return {}  # an empty delete set ends the update (a range's length is never 0)
    if update[:1] != b"\x00":
        # Structs first: yrs drops them (diffed against the update's own state vector) far
        # faster than reading them here (a snapshot holds thousands).
        update = get_update(update, get_state(update))
        if update[:1] != b"\x00":  # structs past a gap stay in: read them here
            return structs_and_deletions(update)[1]
    r = Reader(update)
    r.pos = 1
    try:
        return {r.uint(): [(r.uint(), r.uint()) for _ in range(r.uint())]
                for _ in range(r.uint())}
    except IndexError:
        raise ValueError("truncated Yjs update") from None


def unseen_deletions(update: bytes, state_vector: bytes) -> bytes | None:
    """The deletions in `update` of items a doc at `state_vector` does not hold yet, as an
    update (None if there are none).

    Both Yjs and yrs keep such deletions pending and apply them when the items arrive (a
    reconnecting client's backspace can reach the server before the offline edit it erases).
    yrs leaves them out of every state it encodes, so whoever snapshots or answers a newcomer
    adds them back, and an update made only of them changed nothing yet but must be stored."""
    deletions = _delete_set(update)
    if not deletions:
        return None
    state = _state_vector(state_vector)
    unseen = {client: kept for client, ranges in deletions.items()
              if (kept := [(clock, n) for clock, n in ranges if clock + n > state.get(client, 0)])}
    if not unseen:
        return None
    out = bytearray(b"\x00")
    _write_uint(out, len(unseen))
    for client, ranges in unseen.items():
        _write_uint(out, client)
        _write_uint(out, len(ranges))
        for clock, n in ranges:
            _write_uint(out, clock)
            _write_uint(out, n)
    return bytes(out)


def _encode(groups: list[tuple[int, int, list[bytes]]], delete_set: bytes) -> bytes:
    out = bytearray()
    _write_uint(out, len(groups))
    for client, clock, parts in groups:
        _write_uint(out, len(parts))
        _write_uint(out, client)
        _write_uint(out, clock)
        for part in parts:
            out += part
    out += delete_set
    return bytes(out)
