"""Queries of the review status read model: a document's status, its history, the published
text, and the statuses of every document (to filter and label the document list)."""

from __future__ import annotations

from typing import Any

from server.errors import NotFound
from server.read.insight_freshness import InsightFreshness
from server.read.queries import Queries, iso
from server.review_status import allowed_from
from storage.database import Database
from storage.status import status_row, statuses, transitions

Json = dict[str, Any]
DRAFT = "draft"


class StatusQueries:
    def __init__(self, db: Database, queries: Queries, freshness: InsightFreshness) -> None:
        self.db = db
        self.queries = queries
        self.freshness = freshness

    async def status(self, doc_id: str, min_seq: int | None = None) -> Json:
        seq = await self.freshness.seq(doc_id, min_seq)
        row = await status_row(self.db, doc_id)
        status = row.status if row is not None else DRAFT
        return {"id": doc_id, "status": status, "seq": seq,
                "changed_at": iso(row.changed_at) if row is not None else None,
                "changed_by": row.changed_by if row is not None else None,
                "published_seq": row.published_seq if row is not None else None,
                "since": row.seq if row is not None else 0,  # the transition into it
                "allowed": allowed_from(status)}

    async def status_of(self, doc_id: str) -> str:
        row = await status_row(self.db, doc_id)
        return row.status if row is not None else DRAFT

    async def all_statuses(self) -> dict[str, str]:
        """Every document not in draft (absent: draft)."""
        return await statuses(self.db)

    async def history(self, doc_id: str, min_seq: int | None = None) -> Json:
        seq = await self.freshness.seq(doc_id, min_seq)
        return {"items": [{"from": t.from_status, "to": t.to_status, "actor": t.actor,
                           "time": iso(t.time), "note": t.note, "seq": t.seq}
                          for t in await transitions(self.db, doc_id)],
                "seq": seq}

    async def published(self, doc_id: str, min_seq: int | None = None) -> Json:
        """The document as it was published last: its text at the publishing seq."""
        seq = await self.freshness.seq(doc_id, min_seq)
        row = await status_row(self.db, doc_id)
        if row is None or row.published_seq is None or row.published_at is None:
            raise NotFound(f"document {doc_id!r} has never been published")
        document = await self.queries.document_at(doc_id, row.published_seq)
        return {"id": doc_id, "seq": row.published_seq, "text": document["text"],
                "title": document["title"], "published_at": iso(row.published_at),
                "status": row.status, "document": document, "reflects": seq}
