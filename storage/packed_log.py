"""The log as two tables: recent events as rows (`events`), sealed ones packed (`event_segments`).

Appends and live readers touch the hot tail, rows as before. Once a document's head is LAG
seqs past the end of an aligned range of SEGMENT seqs, that range's `update` events (nearly
all of a log) are moved into segments (storage.segments), one per run of consecutive events
of that kind: the chain runs through every event, so a run's `prev_hash` is the hash of the
event just before it, row or segment. Other kinds (creation, versions, governance, status,
rewrite audits: few, and read by kind through partial indexes) always stay rows.

Packing is lossless: a storage layout, not a log rewrite. It runs in a write transaction that
holds the document's row lock (the one appends and rewrites take), inserting the segments and
deleting their rows together. Readers that combine both tables must read them in one snapshot
(`Database.snapshot()`): on PostgreSQL at read committed, a reader querying segments and then
rows could otherwise miss a run moved in between. A rewrite (erasure, compaction) first
unpacks what it will touch (`unpack_from`), rewrites rows as before, then packs again.

SQL only; the byte format is storage.segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Text, and_, cast, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import chain
from storage.records import EventRecord
from storage.schema import documents, event_segments, events
from storage.segments import (
    SEGMENT,
    PackedSegment,
    RawEvent,
    pack_raw,
    segment_of,
    seq_times,
    unpack,
)

# Packed: the kinds that make up the bulk of a log (Yjs updates from editors). Spelled as in
# server.events (UPDATED); every other kind stays a row.
PACKED_KINDS = ("update",)
# How far behind the head a range must end before it is packed: the hot tail stays rows.
LAG = SEGMENT


def event_record(row: Any) -> EventRecord:
    return EventRecord(
        doc_id=row.doc_id, seq=int(row.seq), kind=row.kind, payload=bytes(row.payload),
        actor=row.actor, time=row.time, meta=row.meta or {}, hash=bytes(row.hash),
    )


def packed_segment(row: Any) -> PackedSegment:
    return PackedSegment(
        first_seq=int(row.first_seq), last_seq=int(row.last_seq), count=int(row.event_count),
        payload_bytes=int(row.payload_bytes), min_time=row.min_time, max_time=row.max_time,
        prev_hash=bytes(row.prev_hash), last_hash=bytes(row.last_hash), data=bytes(row.data),
    )


def due(first_seq: int, last_seq: int) -> bool:
    """Whether an append of seqs first_seq..last_seq moved the packable end past a range."""
    return (last_seq - LAG) // SEGMENT > (first_seq - 1 - LAG) // SEGMENT


# Reading (inside one snapshot: `Database.snapshot()`, or a write transaction). A segment
# lies within one aligned range, so one holding seq q starts after q - SEGMENT: the queries
# say so, which keeps them range scans of the primary key.


async def read_events(conn: AsyncConnection, doc_id: str, after: int, until: int | None,
                      limit: int, *, hashes: bool = True
                      ) -> tuple[list[EventRecord], int | None]:
    """Events with after < seq <= until, in seq order, about `limit` of them; and where to
    read on from (None: nothing more up to `until`). Without `hashes`, packed events come
    with an empty hash (for readers of kinds, actors, times and sizes: no SHA-256 each)."""
    s, e = event_segments.c, events.c
    seg_query = select(event_segments).where(s.doc_id == doc_id, s.last_seq > after,
                                             s.first_seq > after - SEGMENT)
    row_query = select(events).where(e.doc_id == doc_id, e.seq > after)
    if until is not None:
        seg_query = seg_query.where(s.first_seq <= until)
        row_query = row_query.where(e.seq <= until)
    max_segments = max(1, limit // SEGMENT)
    seg_rows = (await conn.execute(
        seg_query.order_by(s.first_seq).limit(max_segments))).all()
    rows = (await conn.execute(row_query.order_by(e.seq).limit(limit))).all()
    # Complete up to the last row read (if there may be more rows) and the last segment read
    # (if there may be more segments): neither table has anything before those ends unread.
    end: int | None = until
    if len(rows) == limit:
        end = int(rows[-1].seq)
    if len(seg_rows) == max_segments:
        last = int(seg_rows[-1].last_seq)
        end = last if end is None else min(end, last)
    found = [event_record(r) for r in rows]
    for seg in seg_rows:
        found.extend(unpack(doc_id, packed_segment(seg), hashes=hashes))
    found.sort(key=lambda r: r.seq)
    found = [r for r in found if r.seq > after and (end is None or r.seq <= end)]
    more = end is not None and (until is None or end < until) and (
        len(rows) == limit or len(seg_rows) == max_segments)
    return found, end if more else None


async def event_at(conn: AsyncConnection, doc_id: str, seq: int, *,
                   hashes: bool = True) -> EventRecord | None:
    row = (await conn.execute(
        select(events).where(events.c.doc_id == doc_id, events.c.seq == seq))).first()
    if row is not None:
        return event_record(row)
    seg = await _segment_holding(conn, doc_id, seq)
    if seg is None:
        return None
    return next((r for r in unpack(doc_id, seg, hashes=hashes) if r.seq == seq), None)


async def _segment_holding(conn: AsyncConnection, doc_id: str, seq: int) -> PackedSegment | None:
    s = event_segments.c
    row = (await conn.execute(
        select(event_segments).where(s.doc_id == doc_id, s.first_seq <= seq,
                                     s.first_seq > seq - SEGMENT, s.last_seq >= seq)
    )).first()
    return None if row is None else packed_segment(row)


async def event_at_or_after(conn: AsyncConnection, doc_id: str, seq: int) -> EventRecord | None:
    """The first event with a seq >= `seq` (hashes not computed for a packed one)."""
    s, e = event_segments.c, events.c
    row = (await conn.execute(
        select(events).where(e.doc_id == doc_id, e.seq >= seq).order_by(e.seq).limit(1)
    )).first()
    seg_row = (await conn.execute(
        select(event_segments).where(s.doc_id == doc_id, s.last_seq >= seq,
                                     s.first_seq > seq - SEGMENT)
        .order_by(s.first_seq).limit(1)
    )).first()
    if seg_row is not None and (row is None or int(seg_row.first_seq) < int(row.seq)):
        return next(r for r in unpack(doc_id, packed_segment(seg_row), hashes=False)
                    if r.seq >= seq)
    return None if row is None else event_record(row)


async def hash_before(conn: AsyncConnection, doc_id: str, seq: int) -> bytes:
    """The stored hash of the last event before `seq` (chain.GENESIS if none)."""
    s, e = event_segments.c, events.c
    row = (await conn.execute(
        select(e.seq, e.hash).where(e.doc_id == doc_id, e.seq < seq)
        .order_by(e.seq.desc()).limit(1))).first()
    seg_row = (await conn.execute(
        select(s.last_seq, s.last_hash).where(s.doc_id == doc_id, s.last_seq < seq,
                                              s.first_seq < seq)
        .order_by(s.first_seq.desc()).limit(1))).first()
    best: tuple[int, bytes] = (0, chain.GENESIS)
    if row is not None:
        best = (int(row.seq), bytes(row.hash))
    if seg_row is not None and int(seg_row.last_seq) > best[0]:
        best = (int(seg_row.last_seq), bytes(seg_row.last_hash))
    return best[1]


async def hash_at(conn: AsyncConnection, doc_id: str, seq: int) -> bytes | None:
    s = event_segments.c
    seg_row = (await conn.execute(
        select(s.last_hash).where(s.doc_id == doc_id, s.last_seq == seq,
                                  s.first_seq <= seq, s.first_seq > seq - SEGMENT))).first()
    if seg_row is not None:
        return bytes(seg_row.last_hash)
    record = await event_at(conn, doc_id, seq)
    return None if record is None else record.hash


async def stats(conn: AsyncConnection, doc_id: str | None = None) -> tuple[int, int]:
    """(events, payload bytes) in the log of `doc_id` (of every document when None)."""
    s, e = event_segments.c, events.c
    row_query = select(func.count(), func.coalesce(func.sum(func.length(e.payload)), 0))
    seg_query = select(func.coalesce(func.sum(s.event_count), 0),
                       func.coalesce(func.sum(s.payload_bytes), 0))
    if doc_id is not None:
        row_query = row_query.where(e.doc_id == doc_id)
        seg_query = seg_query.where(s.doc_id == doc_id)
    rows = (await conn.execute(row_query)).one()
    segs = (await conn.execute(seg_query)).one()
    return int(rows[0]) + int(segs[0]), int(rows[1]) + int(segs[1])


async def count(conn: AsyncConnection, doc_id: str | None = None) -> int:
    s = event_segments.c
    row_query = select(func.count()).select_from(events)
    seg_query = select(func.coalesce(func.sum(s.event_count), 0))
    if doc_id is not None:
        row_query = row_query.where(events.c.doc_id == doc_id)
        seg_query = seg_query.where(s.doc_id == doc_id)
    return int((await conn.execute(row_query)).scalar_one()) + int(
        (await conn.execute(seg_query)).scalar_one())


async def seq_before_time(conn: AsyncConnection, doc_id: str, time: float) -> int:
    """The last seq whose event's time is strictly before `time` (0 if none). Times need not
    be in seq order: the last segment that starts before `time` holds the answer, or a row."""
    s, e = event_segments.c, events.c
    row_best = (await conn.execute(
        select(func.max(e.seq)).where(e.doc_id == doc_id, e.time < time))).scalar_one()
    best = int(row_best or 0)
    seg_row = (await conn.execute(
        select(event_segments).where(s.doc_id == doc_id, s.min_time < time, s.last_seq > best)
        .order_by(s.last_seq.desc()).limit(1))).first()
    if seg_row is not None:
        seg = packed_segment(seg_row)
        if seg.max_time < time:
            best = max(best, seg.last_seq)
        else:
            seqs, times = seq_times(seg)
            best = max([best, *(q for q, t in zip(seqs, times, strict=True) if t < time)])
    return best


async def event_time(conn: AsyncConnection, doc_id: str, seq: int) -> float | None:
    row = (await conn.execute(
        select(events.c.time).where(events.c.doc_id == doc_id, events.c.seq == seq))).first()
    if row is not None:
        return float(row.time)
    seg = await _segment_holding(conn, doc_id, seq)
    if seg is None:
        return None
    seqs, times = seq_times(seg)
    return next((t for q, t in zip(seqs, times, strict=True) if q == seq), None)


# Packing and unpacking (inside a write transaction holding the document's row lock)


async def lock_document(conn: AsyncConnection, doc_id: str) -> int | None:
    """Take the document's row lock (as appends do); its head_seq, None if no document."""
    row = (await conn.execute(
        update(documents).where(documents.c.id == doc_id)
        .values(head_seq=documents.c.head_seq).returning(documents.c.head_seq))).first()
    return None if row is None else int(row.head_seq)


def _runs(rows: Sequence[RawEvent]) -> list[list[RawEvent]]:
    """Maximal runs of consecutive packed-kind events (the rows are in log order)."""
    runs: list[list[RawEvent]] = []
    current: list[RawEvent] = []
    for row in rows:
        if row[1] in PACKED_KINDS:
            current.append(row)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


async def pack_due(conn: AsyncConnection, doc_id: str, head_seq: int) -> int:
    """Pack every range that ends at least LAG seqs behind `head_seq`; the events moved."""
    packable_end = ((head_seq - LAG) // SEGMENT) * SEGMENT
    if packable_end <= 0:
        return 0
    e = events.c
    first = (await conn.execute(
        select(func.min(e.seq)).where(e.doc_id == doc_id, e.kind.in_(PACKED_KINDS),
                                      e.seq <= packable_end))).scalar_one()
    if first is None:
        return 0
    moved = 0
    for k in range(segment_of(int(first)), packable_end // SEGMENT):
        moved += await _pack_range(conn, doc_id, k * SEGMENT + 1, (k + 1) * SEGMENT)
    return moved


async def _pack_range(conn: AsyncConnection, doc_id: str, low: int, high: int) -> int:
    e = events.c
    # The columns as stored (the meta as its JSON text), unpacked by position: no record
    # built, nothing decoded (this runs once per 1,000 appended events).
    result = await conn.execute(
        select(e.seq, e.kind, e.payload, e.actor, e.time, cast(e.meta, Text), e.hash)
        .where(e.doc_id == doc_id, e.seq >= low, e.seq <= high).order_by(e.seq))
    rows: list[RawEvent] = [
        (seq, kind, payload if type(payload) is bytes else bytes(payload), actor, when,
         meta or "", digest if type(digest) is bytes else bytes(digest))
        for seq, kind, payload, actor, when, meta, digest in result]
    runs = _runs(rows)
    if not runs:
        return 0
    position = {row[0]: i for i, row in enumerate(rows)}
    outside = await hash_before(conn, doc_id, low) if position[runs[0][0][0]] == 0 else b""
    segments = []
    for run in runs:
        at = position[run[0][0]]
        segments.append(pack_raw(rows[at - 1][6] if at > 0 else outside, run))
    await conn.execute(event_segments.insert(), [
        {"doc_id": doc_id, "first_seq": s.first_seq, "last_seq": s.last_seq,
         "event_count": s.count, "payload_bytes": s.payload_bytes, "min_time": s.min_time,
         "max_time": s.max_time, "prev_hash": s.prev_hash, "last_hash": s.last_hash,
         "data": s.data}
        for s in segments
    ])
    await conn.execute(delete(events).where(
        e.doc_id == doc_id, e.seq >= low, e.seq <= high, e.kind.in_(PACKED_KINDS)))
    return sum(s.count for s in segments)


async def unpack_from(conn: AsyncConnection, doc_id: str, seq: int) -> int:
    """Move every segment holding events at or after `seq` back into rows; the events moved.
    (Each with its hash as stored: recomputed, or BROKEN where the segment was altered.)"""
    s = event_segments.c
    seg_rows = (await conn.execute(
        select(event_segments).where(s.doc_id == doc_id, s.last_seq >= seq)
        .order_by(s.first_seq))).all()
    moved = 0
    for seg_row in seg_rows:
        records = unpack(doc_id, packed_segment(seg_row))
        await conn.execute(events.insert(), [
            {"doc_id": doc_id, "seq": r.seq, "kind": r.kind, "payload": r.payload,
             "actor": r.actor, "time": r.time, "meta": r.meta, "hash": r.hash}
            for r in records
        ])
        moved += len(records)
    if seg_rows:
        await conn.execute(delete(event_segments).where(
            and_(s.doc_id == doc_id, s.last_seq >= seq)))
    return moved


async def delete_document(conn: AsyncConnection, doc_id: str) -> int:
    """Delete every event of the document, rows and segments; how many."""
    s = event_segments.c
    packed = int((await conn.execute(
        select(func.coalesce(func.sum(s.event_count), 0)).where(s.doc_id == doc_id))).scalar_one())
    await conn.execute(delete(event_segments).where(s.doc_id == doc_id))
    removed = (await conn.execute(delete(events).where(events.c.doc_id == doc_id))).rowcount
    return packed + int(removed or 0)
