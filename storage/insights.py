"""Saving the insight read models (status, activity, search): one batch, one transaction.

The insight follower (server.read.insights) folds a document's events into an `InsightBatch`
and saves it here with its checkpoint. The save is guarded by the checkpoint it started from:
when two nodes follow the same document, the second save of the same seqs fails with
`CheckpointMoved` and writes nothing, so every row counts each event once.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database
from storage.insight_schema import (
    INSIGHT_TABLES,
    activity_authors,
    activity_minutes,
    history_marks,
    history_words,
    insight_checkpoints,
    review_status,
    search_texts,
    status_history,
)
from storage.schema import documents


class CheckpointMoved(Exception):
    """Another follower saved this document's seqs first: nothing was written."""


@dataclass(frozen=True, slots=True)
class StatusRow:
    status: str
    seq: int
    changed_at: float
    changed_by: str
    published_seq: int | None
    published_at: float | None


@dataclass(frozen=True, slots=True)
class TransitionRow:
    seq: int
    from_status: str
    to_status: str
    actor: str
    time: float
    note: str


@dataclass(slots=True)
class ActivityCounts:
    events: int = 0
    inserted: int = 0
    deleted: int = 0
    words_added: int = 0
    words_removed: int = 0
    active_seconds: float = 0.0


@dataclass(slots=True)
class InsightBatch:
    doc_id: str
    from_seq: int
    to_seq: int
    reset_for: int | None = None  # a rewrite's audit seq: drop every row, start from 0
    status: StatusRow | None = None
    transitions: list[TransitionRow] = field(default_factory=list)
    activity: dict[tuple[int, str], ActivityCounts] = field(default_factory=dict)
    last_times: dict[str, float] = field(default_factory=dict)
    search: tuple[str, str] | None = None  # (title, text) now
    search_seq: int = 0  # the last event that changed them (a pure function of the log)
    marks: list[tuple[int, str]] = field(default_factory=list)
    # Per stretch of MARK_EVERY events, the lower-cased words its edits touched.
    words: dict[int, set[bytes]] = field(default_factory=dict)


def _insert(conn: AsyncConnection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


class InsightStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def behind(self) -> list[tuple[str, int, int]]:
        """(doc_id, head, checkpoint) of every document whose log is past its checkpoint."""
        checkpoint = func.coalesce(insight_checkpoints.c.seq, 0)
        async with self.db.read() as conn:
            rows = (await conn.execute(
                select(documents.c.id, documents.c.head_seq, checkpoint)
                .select_from(documents.outerjoin(
                    insight_checkpoints, insight_checkpoints.c.doc_id == documents.c.id))
                .where(documents.c.head_seq > checkpoint).order_by(documents.c.id)
            )).all()
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    async def checkpoint(self, doc_id: str) -> int:
        async with self.db.read() as conn:
            value = (await conn.execute(select(insight_checkpoints.c.seq).where(
                insight_checkpoints.c.doc_id == doc_id))).scalar()
        return int(value or 0)

    async def rewritten_at(self, doc_id: str) -> int:
        async with self.db.read() as conn:
            value = (await conn.execute(select(insight_checkpoints.c.rewritten_at).where(
                insight_checkpoints.c.doc_id == doc_id))).scalar()
        return int(value or 0)

    async def last_times(self, doc_id: str) -> dict[str, float]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(activity_authors.c.author,
                                              activity_authors.c.last_time)
                                       .where(activity_authors.c.doc_id == doc_id))).all()
        return {str(r[0]): float(r[1]) for r in rows}

    async def resume_point(self, doc_id: str) -> tuple[str, int]:
        """The title kept for search and the seq of the latest history mark."""
        async with self.db.read() as conn:
            title = (await conn.execute(select(search_texts.c.title).where(
                search_texts.c.doc_id == doc_id))).scalar()
            mark = (await conn.execute(select(func.max(history_marks.c.seq)).where(
                history_marks.c.doc_id == doc_id))).scalar()
        return str(title or ""), int(mark or 0)

    async def save(self, batch: InsightBatch) -> None:
        async with self.db.write() as conn:
            await self._guard(conn, batch)
            if batch.reset_for is not None:
                await forget_document(conn, batch.doc_id, keep_checkpoint=True)
                return
            await self._save_status(conn, batch)
            await self._save_activity(conn, batch)
            await self._save_search(conn, batch)
            if batch.marks:
                await conn.execute(insert(history_marks), [
                    {"doc_id": batch.doc_id, "seq": seq, "text": zlib.compress(t.encode(), 6)}
                    for seq, t in batch.marks])
            await self._save_words(conn, batch)

    async def _save_words(self, conn: AsyncConnection, batch: InsightBatch) -> None:
        """Merge the batch's words into each stretch's row: sorted and distinct, so the rows
        do not depend on where batches begin and end (a rebuild gives the same bytes)."""
        for stretch, words in sorted(batch.words.items()):
            key = (history_words.c.doc_id == batch.doc_id,
                   history_words.c.stretch == stretch)
            kept = (await conn.execute(select(history_words.c.words).where(*key))).scalar()
            merged = set(words)
            if kept is not None:
                merged.update(w for w in zlib.decompress(kept).split(b"\n") if w)
            data = zlib.compress(b"\n".join(sorted(merged)), 6)
            if kept is None:
                await conn.execute(insert(history_words).values(
                    doc_id=batch.doc_id, stretch=stretch, words=data))
            else:
                await conn.execute(update(history_words).where(*key).values(words=data))

    async def _guard(self, conn: AsyncConnection, batch: InsightBatch) -> None:
        await conn.execute(_insert(conn, insight_checkpoints).values(
            doc_id=batch.doc_id, seq=0).on_conflict_do_nothing())
        moved = await conn.execute(
            update(insight_checkpoints)
            .where(insight_checkpoints.c.doc_id == batch.doc_id,
                   insight_checkpoints.c.seq == batch.from_seq)
            .values(seq=batch.to_seq) if batch.reset_for is None
            else update(insight_checkpoints)
            .where(insight_checkpoints.c.doc_id == batch.doc_id,
                   insight_checkpoints.c.seq == batch.from_seq)
            .values(seq=0, rewritten_at=batch.reset_for))
        if moved.rowcount != 1:
            raise CheckpointMoved(batch.doc_id)

    async def _save_status(self, conn: AsyncConnection, batch: InsightBatch) -> None:
        if batch.transitions:
            await conn.execute(insert(status_history), [
                {"doc_id": batch.doc_id, "seq": t.seq, "from_status": t.from_status,
                 "to_status": t.to_status, "actor": t.actor, "time": t.time, "note": t.note}
                for t in batch.transitions])
        row = batch.status
        if row is not None:
            values = {"status": row.status, "seq": row.seq, "changed_at": row.changed_at,
                      "changed_by": row.changed_by, "published_seq": row.published_seq,
                      "published_at": row.published_at}
            await conn.execute(_insert(conn, review_status).values(doc_id=batch.doc_id, **values)
                               .on_conflict_do_update(index_elements=["doc_id"], set_=values))

    async def _save_activity(self, conn: AsyncConnection, batch: InsightBatch) -> None:
        if batch.activity:
            stmt = _insert(conn, activity_minutes)
            added = {name: getattr(activity_minutes.c, name) + getattr(stmt.excluded, name)
                     for name in ("events", "inserted", "deleted", "words_added",
                                  "words_removed", "active_seconds")}
            await conn.execute(
                stmt.on_conflict_do_update(index_elements=["doc_id", "start", "author"],
                                           set_=added),
                [{"doc_id": batch.doc_id, "start": start, "author": author,
                  "events": c.events, "inserted": c.inserted, "deleted": c.deleted,
                  "words_added": c.words_added, "words_removed": c.words_removed,
                  "active_seconds": c.active_seconds}
                 for (start, author), c in sorted(batch.activity.items())])
        if batch.last_times:
            stmt = _insert(conn, activity_authors)
            await conn.execute(
                stmt.on_conflict_do_update(index_elements=["doc_id", "author"],
                                           set_={"last_time": stmt.excluded.last_time}),
                [{"doc_id": batch.doc_id, "author": a, "last_time": t}
                 for a, t in sorted(batch.last_times.items())])

    async def _save_search(self, conn: AsyncConnection, batch: InsightBatch) -> None:
        if batch.search is None:
            return
        title, body = batch.search
        values = {"title": title, "body": body, "seq": batch.search_seq}
        await conn.execute(_insert(conn, search_texts).values(doc_id=batch.doc_id, **values)
                           .on_conflict_do_update(index_elements=["doc_id"], set_=values))
        if conn.dialect.name != "postgresql":
            # FTS5 has no upsert: replace the document's row.
            await conn.execute(text("DELETE FROM search_fts WHERE doc_id = :d"),
                               {"d": batch.doc_id})
            await conn.execute(
                text("INSERT INTO search_fts (doc_id, title, body) VALUES (:d, :t, :b)"),
                {"d": batch.doc_id, "t": title, "b": body})

    async def reset(self) -> None:
        """Drop every insight row (for `palimpsest rebuild`)."""
        async with self.db.write() as conn:
            for table in INSIGHT_TABLES:
                await conn.execute(delete(table))
            if conn.dialect.name != "postgresql":
                await conn.execute(text("DELETE FROM search_fts"))

    async def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every insight row in key order (a rebuild must give the same)."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        async with self.db.read() as conn:
            for table in INSIGHT_TABLES:
                rows = (await conn.execute(select(table).order_by(
                    *table.primary_key.columns))).all()
                out[table.name] = [
                    tuple(zlib.decompress(v).decode() if isinstance(v, bytes) else v
                          for v in r) for r in rows]
        return out


async def forget_document(conn: AsyncConnection, doc_id: str, *,
                          keep_checkpoint: bool = False) -> None:
    """Delete every insight row of a document (a rewrite starts it again; a purge ends it)."""
    tables: Sequence[Any] = INSIGHT_TABLES[1:] if keep_checkpoint else INSIGHT_TABLES
    for table in tables:
        await conn.execute(delete(table).where(table.c.doc_id == doc_id))
    if conn.dialect.name != "postgresql":
        await conn.execute(text("DELETE FROM search_fts WHERE doc_id = :d"), {"d": doc_id})




async def restart_document(conn: AsyncConnection, doc_id: str, rewritten_at: int) -> None:
    """Inside a history rewrite's transaction: drop the document's insight rows (they may hold
    erased text) and start its follower again from 0, knowing this rewrite already."""
    await forget_document(conn, doc_id)
    await conn.execute(insert(insight_checkpoints).values(doc_id=doc_id, seq=0,
                                                          rewritten_at=rewritten_at))
    if conn.dialect.name != "postgresql":
        # FTS5 keeps a deleted row's terms in its index segments until they are merged: merge
        # now, so the scrub that follows an erasure finds no byte of it in use.
        await conn.execute(text("INSERT INTO search_fts(search_fts) VALUES ('optimize')"))
