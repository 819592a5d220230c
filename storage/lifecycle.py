"""What a document is, beside its content: deleted or not, its retention policy, and purging.

The log is the truth: the latest `delete`/`undelete` event says whether a document is deleted,
the latest `retention` event its policy; both are read through a partial index
(`ix_events_governance`). The read model `document_lifecycle` (a row per deleted document,
kept by the projector) is what the queries honour. Purging removes every row of a document
whose deletion is older than the period, after checking the log under the row lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import packed_log
from storage.database import Database
from storage.event_store import event_record
from storage.insights import forget_document
from storage.records import EventRecord
from storage.schema import (
    READ_MODEL_TABLES,
    document_lifecycle,
    documents,
    events,
    snapshots,
)

DELETED = "delete"
UNDELETED = "undelete"
RETENTION = "retention"
# Spelled exactly as the partial index's predicate, so the planners use it.
_GOVERNANCE = text("events.kind IN ('delete', 'undelete', 'retention')")


@dataclass(frozen=True, slots=True)
class Deletion:
    deleted_at: float
    deleted_by: str
    seq: int  # of the DocumentDeleted event


@dataclass(frozen=True, slots=True)
class DeletedRow:
    doc_id: str
    deleted_at: float
    deleted_by: str
    seq: int
    title: str


async def _latest(conn: AsyncConnection, doc_id: str, kinds: tuple[str, ...]) -> EventRecord | None:
    row = (await conn.execute(
        select(events).where(events.c.doc_id == doc_id, _GOVERNANCE, events.c.kind.in_(kinds))
        .order_by(events.c.seq.desc()).limit(1)
    )).first()
    return None if row is None else event_record(row)


async def latest_event(db: Database, doc_id: str, kinds: tuple[str, ...]) -> EventRecord | None:
    """The document's latest event of one of `kinds` (governance kinds only)."""
    async with db.read() as conn:
        return await _latest(conn, doc_id, kinds)


async def deletion(db: Database, doc_id: str) -> EventRecord | None:
    """The delete event in force (None when the document is not deleted), from the log."""
    latest = await latest_event(db, doc_id, (DELETED, UNDELETED))
    return latest if latest is not None and latest.kind == DELETED else None


# The read model (written by the projector, read by the queries)


async def save_deletion(conn: AsyncConnection, doc_id: str, row: Deletion | None) -> None:
    """Inside a projector save: the document is deleted (row) or not (None)."""
    await conn.execute(delete(document_lifecycle).where(document_lifecycle.c.doc_id == doc_id))
    if row is not None:
        await conn.execute(document_lifecycle.insert().values(
            doc_id=doc_id, deleted_at=row.deleted_at, deleted_by=row.deleted_by, seq=row.seq))


async def deleted_row(db: Database, doc_id: str) -> DeletedRow | None:
    async with db.read() as conn:
        row = (await conn.execute(
            select(document_lifecycle, documents.c.title)
            .join(documents, documents.c.id == document_lifecycle.c.doc_id)
            .where(document_lifecycle.c.doc_id == doc_id)
        )).first()
    return None if row is None else DeletedRow(row.doc_id, row.deleted_at, row.deleted_by,
                                               int(row.seq), row.title)


async def deleted_rows(db: Database) -> list[DeletedRow]:
    """Every deleted document, most recently deleted first."""
    async with db.read() as conn:
        rows = (await conn.execute(
            select(document_lifecycle, documents.c.title)
            .join(documents, documents.c.id == document_lifecycle.c.doc_id)
            .order_by(document_lifecycle.c.deleted_at.desc(), document_lifecycle.c.doc_id)
        )).all()
    return [DeletedRow(r.doc_id, r.deleted_at, r.deleted_by, int(r.seq), r.title) for r in rows]


# Purging


async def deleted_before(db: Database, cutoff: float) -> list[str]:
    """Documents whose deletion (still in force) happened before `cutoff`, from the log."""
    async with db.read() as conn:
        candidates = (await conn.execute(
            select(events.c.doc_id).where(_GOVERNANCE, events.c.kind == DELETED).distinct()
        )).all()
        found = []
        for (doc_id,) in candidates:
            latest = await _latest(conn, doc_id, (DELETED, UNDELETED))
            if latest is not None and latest.kind == DELETED and latest.time < cutoff:
                found.append(str(doc_id))
    return sorted(found)


async def purge(db: Database, doc_id: str, cutoff: float) -> int:
    """Remove every row of a document deleted before `cutoff`; the events removed, or -1 if
    it is not such a document (any more: an undelete may have come first)."""
    async with db.write() as conn:
        # The row lock every append takes: an undelete in flight commits first, or waits.
        locked = (await conn.execute(
            update(documents).where(documents.c.id == doc_id)
            .values(head_seq=documents.c.head_seq).returning(documents.c.head_seq)
        )).first()
        if locked is None:
            return -1
        latest = await _latest(conn, doc_id, (DELETED, UNDELETED))
        if latest is None or latest.kind != DELETED or latest.time >= cutoff:
            return -1
        removed = await packed_log.delete_document(conn, doc_id)
        for table in (snapshots, *READ_MODEL_TABLES):
            await conn.execute(delete(table).where(table.c.doc_id == doc_id))
        await forget_document(conn, doc_id)  # status, activity and search rows too
        await conn.execute(delete(documents).where(documents.c.id == doc_id))
    return removed
