"""What compaction planning and absorbed-seq reads need from the log and the read models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from storage import packed_log
from storage.database import Database
from storage.packing import chunk_of, unpack_changes
from storage.schema import revisions, text_change_chunks, versions

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
    c = text_change_chunks.c
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
    last: int | None = 0
    while last is not None:
        async with db.snapshot() as conn:
            batch, last = await packed_log.read_events(conn, doc_id, last, until_seq, BATCH,
                                                       hashes=False)
        for r in batch:
            inserted, deleted = counted.get(r.seq, (None, None))
            found.append(LogEntry(r.seq, r.kind, r.actor, r.time, r.meta, inserted, deleted))
    return found


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
    async with db.snapshot() as conn:
        record = await packed_log.event_at_or_after(conn, doc_id, seq)
    return None if record is None else (record.seq, record.kind, record.meta)
