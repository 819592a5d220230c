"""The review status of documents: the read model's rows, and the log's latest `status` event.

The write side needs the status in force when it loads a live document: it reads the latest
`status` event at or before the seq it loaded, through the partial index `ix_events_status`
(a handful of rows however long the log). Everyone else reads the read model.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from storage.database import Database
from storage.insight_schema import STATUS_KIND, review_status, status_history
from storage.insights import StatusRow, TransitionRow
from storage.schema import events


async def status_in_log(db: Database, doc_id: str, until_seq: int) -> str | None:
    """The target of the latest status event at or before `until_seq` (None: never moved)."""
    async with db.read() as conn:
        row = (await conn.execute(
            select(events.c.meta).where(events.c.doc_id == doc_id,
                                        events.c.kind == STATUS_KIND,
                                        events.c.seq <= until_seq)
            .order_by(events.c.seq.desc()).limit(1))).first()
    if row is None:
        return None
    target = (row[0] or {}).get("to")
    return str(target) if target else None


def _status(r: Any) -> StatusRow:
    return StatusRow(r.status, int(r.seq), r.changed_at, r.changed_by,
                     None if r.published_seq is None else int(r.published_seq), r.published_at)


async def status_row(db: Database, doc_id: str) -> StatusRow | None:
    async with db.read() as conn:
        row = (await conn.execute(select(review_status).where(
            review_status.c.doc_id == doc_id))).first()
    return None if row is None else _status(row)


async def statuses(db: Database) -> dict[str, str]:
    """Every document whose status is not draft (no row means draft)."""
    async with db.read() as conn:
        rows = (await conn.execute(select(review_status.c.doc_id, review_status.c.status)
                                   .where(review_status.c.status != "draft"))).all()
    return {str(r[0]): str(r[1]) for r in rows}


async def transitions(db: Database, doc_id: str) -> list[TransitionRow]:
    async with db.read() as conn:
        rows = (await conn.execute(select(status_history).where(
            status_history.c.doc_id == doc_id).order_by(status_history.c.seq))).all()
    return [TransitionRow(int(r.seq), r.from_status, r.to_status, r.actor, r.time, r.note)
            for r in rows]
