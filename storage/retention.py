"""What compaction planning and absorbed-seq reads need from the log and the read models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from storage.database import Database
from storage.packing import chunk_of, unpack_changes
from storage.schema import events, revisions, text_change_chunks, versions

BATCH = 20_000


@dataclass(frozen=True, slots=True)
class LogEntry:
    """An event without its payload, with what the projector found it changed (None when it
    changed no text or is not projected)."""

    seq: int
    kind: str
    actor: str
    time: float
    meta: dict[str, Any]
    inserted: int | None
    deleted: int | None


async def log_entries(db: Database, doc_id: str, until_seq: int) -> list[LogEntry]:
    """Every event up to `until_seq`, in seq order, without payloads."""
    e, c = events.c, text_change_chunks.c
    async with db.read() as conn:
        chunks = (await conn.execute(
            select(c.chunk, c.data)
            .where(c.doc_id == doc_id, c.chunk <= chunk_of(max(until_seq, 1)))
            .order_by(c.chunk, c.first_seq)
        )).all()
    counted: dict[int, tuple[int, int]] = {}
    for chunk in chunks:
        for change in unpack_changes(int(chunk.chunk), bytes(chunk.data)):
            counted[change.seq] = (sum(len(op[2]) for op in change.ops),
                                   sum(len(op[1]) for op in change.ops))
    found: list[LogEntry] = []
    last = 0
    while True:
        query = (
            select(e.seq, e.kind, e.actor, e.time, e.meta)
            .where(e.doc_id == doc_id, e.seq > last, e.seq <= until_seq)
            .order_by(e.seq).limit(BATCH)
        )
        async with db.read() as conn:
            rows = (await conn.execute(query)).all()
        for r in rows:
            inserted, deleted = counted.get(int(r.seq), (None, None))
            found.append(LogEntry(int(r.seq), r.kind, r.actor, r.time, r.meta or {}, inserted,
                                  deleted))
        if len(rows) < BATCH:
            return found
        last = int(rows[-1].seq)


async def kept_seqs(db: Database, doc_id: str) -> tuple[set[int], set[int]]:
    """(the last seq of every revision, every seq a version names)."""
    async with db.read() as conn:
        ends = (await conn.execute(
            select(revisions.c.to_seq).where(revisions.c.doc_id == doc_id))).all()
        named = (await conn.execute(
            select(versions.c.seq).where(versions.c.doc_id == doc_id))).all()
    return {int(r.to_seq) for r in ends}, {int(r.seq) for r in named}


async def event_at_or_after(db: Database, doc_id: str,
                            seq: int) -> tuple[int, str, dict[str, Any]] | None:
    """(seq, kind, meta) of the first event at or after `seq`."""
    async with db.read() as conn:
        row = (await conn.execute(
            select(events.c.seq, events.c.kind, events.c.meta)
            .where(events.c.doc_id == doc_id, events.c.seq >= seq)
            .order_by(events.c.seq).limit(1)
        )).first()
    return None if row is None else (int(row.seq), row.kind, row.meta or {})
