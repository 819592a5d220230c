"""Sealed stretches of a log packed together: the byte format of `event_segments` rows.

A segment holds a run of consecutive `update` events of one document within one aligned range
of SEGMENT seqs (k*SEGMENT+1 .. (k+1)*SEGMENT), losslessly: unpacking gives exactly the
EventRecords the rows held (seq, kind, payload, actor, time, meta, hash). Inside, columns
compress far better than rows: seqs as offsets, kinds/actors/metas listed once with an index
per event, times as differences between their IEEE 754 bit patterns, payload lengths, then the
payloads; fixed-width columns byte-shuffled (all first bytes, then all second bytes...) so
the compressor sees runs; the whole xz-compressed.

The per-event chain hashes are not stored: they follow from the hash before the segment
(`prev_hash`, in the row) and the content (storage.chain). What integrity needs to say where
a chain breaks is kept: the first TAG bytes of every event's hash, and the whole hash of the
last event (`last_hash`, in the row). Unpacking recomputes the chain and checks both: from
the first event whose recomputed hash does not match what was stored (its content, or
something before it in the segment, was altered), events come out with BROKEN as their hash,
so `palimpsest verify`, export and erasure planning see the break where it is, as with rows.

Pure: no SQL (storage.packed_log stores and reads the rows). A stored format: the first byte
of `data` is its version; change the layout only under a new version.
"""

from __future__ import annotations

import json
import lzma
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from typing import Any

from storage import chain
from storage.records import EventRecord

SEGMENT = 1000
VERSION = 1
# xz (LZMA2) at preset 1: Yjs updates compress to ~70% of zlib's size at twice zlib-6's time
# (1,000 automerge-paper events: 5.9 kB in 2.3 ms against 8.3 kB in 1.0 ms); any preset reads
# back, so a migration may pack harder.
PRESET = 1
TAG = 2  # bytes of each event's hash kept, to name the event where a chain breaks
BROKEN = b"\xff" * 32  # the hash an altered event reads back with (never a SHA-256 output)
_U64 = 1 << 64


class CorruptSegment(ValueError):
    """The segment's bytes do not decode (altered or truncated); `first_seq` is its first."""

    def __init__(self, message: str, first_seq: int = 0) -> None:
        super().__init__(message)
        self.first_seq = first_seq


@dataclass(frozen=True, slots=True)
class PackedSegment:
    """One `event_segments` row, without its document id."""

    first_seq: int
    last_seq: int
    count: int
    payload_bytes: int
    min_time: float
    max_time: float
    prev_hash: bytes  # the chain's hash before first_seq (chain.GENESIS at the log's start)
    last_hash: bytes  # the hash of the event at last_seq
    data: bytes


def segment_of(seq: int) -> int:
    return (seq - 1) // SEGMENT


def _shuffle(raw: bytes, width: int) -> bytes:
    return b"".join(raw[i::width] for i in range(width))


def _unshuffle(data: bytes, width: int) -> bytes:
    n = len(data) // width
    out = bytearray(len(data))
    for i in range(width):
        out[i::width] = data[i * n : (i + 1) * n]
    return bytes(out)


def _column(values: Sequence[int], code: str) -> bytes:
    arr = array(code, values)
    if arr.itemsize > 1 and struct.pack("=H", 1) != struct.pack(">H", 1):
        arr.byteswap()  # big-endian on disk: high bytes first, the ones that repeat
    return _shuffle(arr.tobytes(), arr.itemsize)


def _uncolumn(data: bytes, code: str) -> list[int]:
    arr = array(code)
    arr.frombytes(_unshuffle(data, arr.itemsize))
    if arr.itemsize > 1 and struct.pack("=H", 1) != struct.pack(">H", 1):
        arr.byteswap()
    return arr.tolist()


def _index_build(values: Sequence[str]) -> tuple[list[str], list[int]]:
    distinct: dict[str, int] = {}
    refs = [distinct.setdefault(v, len(distinct)) for v in values]
    return list(distinct), refs


# An event as packing reads it: (seq, kind, payload, actor, time, meta as JSON text ("" for
# none), hash). The meta's text is stored as is: it decodes to what the JSON column gives.
RawEvent = tuple[int, str, bytes, str, float, str, bytes]


def pack(prev_hash: bytes, records: Sequence[EventRecord], preset: int = PRESET) -> PackedSegment:
    """Pack consecutive events of one log (seq ascending, hashes linked, all in one aligned
    range); `prev_hash` is the hash before the first of them."""
    return pack_raw(prev_hash, [
        (r.seq, r.kind, r.payload, r.actor, r.time, json.dumps(r.meta) if r.meta else "",
         r.hash) for r in records], preset)


def pack_raw(prev_hash: bytes, rows: Sequence[RawEvent], preset: int = PRESET) -> PackedSegment:
    """`pack` on events as read from the table's columns (no record built, no JSON decoded)."""
    if not rows:
        raise ValueError("an empty segment")
    seqs, kinds, payloads, actors, times, metas, hashes = zip(*rows, strict=True)
    base = segment_of(seqs[0]) * SEGMENT + 1
    if segment_of(seqs[-1]) != segment_of(seqs[0]):
        raise ValueError("events of two segments")
    kind_names, kind_refs = _index_build(kinds)
    actor_names, actor_refs = _index_build(actors)
    meta_texts, meta_refs = _index_build(metas)
    bits = array("Q")
    bits.frombytes(array("d", times).tobytes())
    deltas = [(b - p) % _U64 for b, p in zip(bits, [0, *bits[:-1]], strict=True)]
    head = json.dumps({"k": kind_names, "a": actor_names, "m": meta_texts},
                      separators=(",", ":")).encode()
    columns = [
        head,
        _column([q - base for q in seqs], "H"),
        _column(kind_refs, "B"),
        _column(actor_refs, "I"),
        _column(meta_refs, "I"),
        _column(deltas, "Q"),
        _column([len(p) for p in payloads], "I"),
        b"".join(payloads),
        b"".join(h[:TAG] for h in hashes),
    ]
    body = struct.pack(">I", len(rows)) + b"".join(
        struct.pack(">I", len(c)) + c for c in columns)
    return PackedSegment(
        first_seq=seqs[0], last_seq=seqs[-1], count=len(rows),
        payload_bytes=sum(len(p) for p in payloads), min_time=min(times), max_time=max(times),
        prev_hash=prev_hash, last_hash=hashes[-1],
        data=bytes([VERSION]) + lzma.compress(body, lzma.FORMAT_XZ, lzma.CHECK_NONE, preset),
    )


def _columns(data: bytes) -> tuple[int, list[bytes]]:
    if not data or data[0] != VERSION:
        raise CorruptSegment(f"segment format {data[:1].hex() or 'empty'} is not {VERSION}")
    try:
        body = lzma.decompress(data[1:], lzma.FORMAT_XZ)
        (count,) = struct.unpack_from(">I", body, 0)
        at, columns = 4, []
        while at < len(body):
            (size,) = struct.unpack_from(">I", body, at)
            columns.append(body[at + 4 : at + 4 + size])
            at += 4 + size
    except (lzma.LZMAError, struct.error) as exc:
        raise CorruptSegment(str(exc)) from None
    if len(columns) != 9 or at != len(body):
        raise CorruptSegment("wrong number of columns")
    return int(count), columns


@lru_cache(maxsize=256)
def _seq_times(data: bytes, base: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    count, cols = _columns(data)
    bits = array("Q", [b % _U64 for b in accumulate(_uncolumn(cols[5], "Q"))])
    times = array("d")
    times.frombytes(bits.tobytes())
    seqs = tuple(base + offset for offset in _uncolumn(cols[1], "H"))
    if len(seqs) != count or len(times) != count:
        raise CorruptSegment("columns of different lengths")
    return seqs, tuple(times)


def seq_times(seg: PackedSegment) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The seqs and times of the segment's events, without the rest (time lookups: `?at=`
    a time, the time of a seq); the last few segments asked about are kept decoded."""
    try:
        return _seq_times(seg.data, segment_of(seg.first_seq) * SEGMENT + 1)
    except (IndexError, ValueError, struct.error) as exc:
        raise CorruptSegment(f"the packed events {seg.first_seq}..{seg.last_seq} do not decode: "
                             f"{exc}", seg.first_seq) from None


def time_of(data: bytes, seq: int) -> float | None:
    """The time of event `seq` in the segment whose `data` this is (None if not in it)."""
    try:
        seqs, times = _seq_times(data, segment_of(seq) * SEGMENT + 1)
    except (IndexError, ValueError, struct.error):
        return None
    return next((t for q, t in zip(seqs, times, strict=True) if q == seq), None)


def unpack(doc_id: str, seg: PackedSegment, *, hashes: bool = True) -> list[EventRecord]:
    """The segment's events, in seq order. With `hashes`, each with its chain hash recomputed
    from `prev_hash` (BROKEN from the first one that does not match what was stored); without,
    with an empty hash (for readers of times and kinds only)."""
    try:
        count, cols = _columns(seg.data)
        head: dict[str, Any] = json.loads(cols[0])
        kinds: list[str] = head["k"]
        actors: list[str] = head["a"]
        meta_texts: list[str] = head["m"]
        base = segment_of(seg.first_seq) * SEGMENT + 1
        seqs = _uncolumn(cols[1], "H")
        kind_refs = _uncolumn(cols[2], "B")
        actor_refs = _uncolumn(cols[3], "I")
        meta_refs = _uncolumn(cols[4], "I")
        bits = array("Q", [b % _U64 for b in accumulate(_uncolumn(cols[5], "Q"))])
        times = array("d")
        times.frombytes(bits.tobytes())
        lengths = _uncolumn(cols[6], "I")
        payloads, tags = cols[7], cols[8]
        if not (len(seqs) == len(kind_refs) == len(actor_refs) == len(meta_refs)
                == len(times) == len(lengths) == count) or len(tags) != count * TAG:
            raise CorruptSegment("columns of different lengths")
        if sum(lengths) != len(payloads):
            raise CorruptSegment("payload lengths do not add up")
        metas = [(json.loads(m) or {}) if m else {} for m in meta_texts]
        canonical = [chain.canonical_meta(m) for m in metas]
        ends = list(accumulate(lengths))
        starts = [0, *ends[:-1]]
        records: list[EventRecord] = []
        current, broken, last = seg.prev_hash, not hashes, count - 1
        for i in range(count):
            seq, kind, actor = base + seqs[i], kinds[kind_refs[i]], actors[actor_refs[i]]
            payload, time = payloads[starts[i] : ends[i]], times[i]
            digest = b""
            if hashes:
                # The chain hash, recomputed (storage.chain); BROKEN from the first that
                # does not match what was stored.
                current = chain.event_hash_of_meta(current, seq, kind, payload, actor, time,
                                                   canonical[meta_refs[i]])
                if not broken and (current[:TAG] != tags[i * TAG : (i + 1) * TAG]
                                   or (i == last and current != seg.last_hash)):
                    broken = True
                digest = BROKEN if broken else current
            records.append(EventRecord(doc_id, seq, kind, payload, actor, time,
                                       dict(metas[meta_refs[i]]), digest))
        return records
    except (KeyError, IndexError, TypeError, ValueError, struct.error) as exc:
        raise CorruptSegment(f"the packed events {seg.first_seq}..{seg.last_seq} do not decode: "
                             f"{exc}", seg.first_seq) from None

