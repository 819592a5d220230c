"""Reading the activity read model: sums of per-minute rows into minute, hour or day buckets."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, literal, select

from storage.database import Database
from storage.insight_schema import activity_minutes


@dataclass(frozen=True, slots=True)
class ActivityRow:
    doc_id: str
    start: int
    author: str
    events: int
    inserted: int
    deleted: int
    words_added: int
    words_removed: int
    active_seconds: float


MAX_ROWS = 100_000  # rows one answer may sum (a day bucket over years of minutes stays far under)


async def activity(db: Database, bucket: int, since: float, doc_id: str | None = None
                   ) -> list[ActivityRow]:
    """Per document, bucket start and author, since `since` (epoch seconds), oldest first."""
    a = activity_minutes.c
    start = (a.start / literal(bucket)) * literal(bucket)
    query = (
        select(a.doc_id, start.label("bucket"), a.author, func.sum(a.events),
               func.sum(a.inserted), func.sum(a.deleted), func.sum(a.words_added),
               func.sum(a.words_removed), func.sum(a.active_seconds))
        .where(a.start >= (int(since) // bucket) * bucket)
        .group_by(a.doc_id, start, a.author)
        .order_by(start, a.doc_id, a.author).limit(MAX_ROWS)
    )
    if doc_id is not None:
        query = query.where(a.doc_id == doc_id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [ActivityRow(str(r[0]), int(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5]),
                        int(r[6]), int(r[7]), float(r[8])) for r in rows]
