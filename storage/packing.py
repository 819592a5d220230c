"""How the read side's bulky rows are stored compactly: compressed snapshots and text changes
packed a chunk of seqs to a row.

A stored format (migration 0009 writes it): change one only with a migration.

Snapshot texts and Yjs states are zlib-compressed (texts as UTF-8; any level reads back).

Text changes: one row per document and CHUNK seqs, chunk k holding the events with seq in
k*CHUNK+1 .. (k+1)*CHUNK, as zlib-compressed compact JSON
`{"a": [actor, ...], "e": [[seq - base, actor index, pos delta, deleted, inserted, ...], ...]}`.
Each op's position is stored as the difference from the previous op's (within the chunk):
typing moves it by a few bytes, which compresses to almost nothing. The characters inserted
and deleted are not stored: they are counted from the ops when read.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CHUNK = 1000
LEVEL = 6
# States: zlib's fastest level. A state is encoded with every snapshot (the latest is what
# loading starts from) and most are dropped at the next one; level 6 took twice the time
# for 11% less (a 170 kB state at 100,000 events: 2.8 ms to 55 kB, against 5.3 ms to 49 kB).
STATE_LEVEL = 1


def pack_text(text: str) -> bytes:
    return zlib.compress(text.encode(), LEVEL)


def unpack_text(data: bytes) -> str:
    return zlib.decompress(data).decode()


def pack_state(state: bytes) -> bytes:
    return zlib.compress(state, STATE_LEVEL)


def unpack_state(data: bytes) -> bytes:
    return zlib.decompress(data)


def chunk_of(seq: int) -> int:
    """The chunk holding `seq` (seqs start at 1)."""
    return (seq - 1) // CHUNK


@dataclass(frozen=True, slots=True)
class PackedChange:
    """One event's text change as a chunk holds it: ops are [pos, deleted, inserted]."""

    seq: int
    actor: str
    ops: list[Any]


def pack_changes(chunk: int, changes: Iterable[PackedChange]) -> bytes:
    base = chunk * CHUNK
    actors: dict[str, int] = {}
    entries: list[list[Any]] = []
    pos = 0
    for change in changes:
        index = actors.setdefault(change.actor, len(actors))
        entry: list[Any] = [change.seq - base, index]
        for op_pos, deleted, inserted in change.ops:
            entry += (op_pos - pos, deleted, inserted)
            pos = op_pos
        entries.append(entry)
    body = {"a": list(actors), "e": entries}
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), LEVEL)


def unpack_changes(chunk: int, data: bytes) -> list[PackedChange]:
    body = json.loads(zlib.decompress(data))
    base = chunk * CHUNK
    actors: Sequence[str] = body["a"]
    out: list[PackedChange] = []
    pos = 0
    for entry in body["e"]:
        ops: list[Any] = []
        for i in range(2, len(entry), 3):
            pos += entry[i]
            ops.append([pos, entry[i + 1], entry[i + 2]])
        out.append(PackedChange(base + entry[0], actors[entry[1]], ops))
    return out
