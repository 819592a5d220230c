"""The revocations table: (document, user) pairs an admin cut off, with when.

The server keeps them in memory (server.auth.Revocations) to check every handshake and API
call without a query; this table is what it loads at start, writes through on every revoke,
and re-reads now and then to learn of revocations made on other nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.database import Database
from storage.schema import revocations


@dataclass(frozen=True, slots=True)
class Revocation:
    doc_id: str
    user_id: str
    revoked_at: float


class RevocationStore:
    """SQL of the revocations table. Owns no engine: the Database is handed in."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, doc_id: str, user_id: str, revoked_at: float) -> None:
        """Record a revocation; a pair revoked twice keeps the later time."""
        upsert: Any
        if self.db.dialect == "postgresql":
            pg = postgresql.insert(revocations).values(
                doc_id=doc_id, user_id=user_id, revoked_at=revoked_at)
            upsert = pg.on_conflict_do_update(
                index_elements=["doc_id", "user_id"],
                set_={"revoked_at": func.greatest(revocations.c.revoked_at,
                                                  pg.excluded.revoked_at)})
        else:
            lite = sqlite.insert(revocations).values(
                doc_id=doc_id, user_id=user_id, revoked_at=revoked_at)
            upsert = lite.on_conflict_do_update(
                index_elements=["doc_id", "user_id"],
                set_={"revoked_at": func.max(revocations.c.revoked_at,
                                             lite.excluded.revoked_at)})
        async with self.db.write() as conn:
            await conn.execute(upsert)

    async def since(self, revoked_after: float | None = None) -> list[Revocation]:
        """Every revocation, or those revoked after a time."""
        query = select(revocations.c.doc_id, revocations.c.user_id, revocations.c.revoked_at)
        if revoked_after is not None:
            query = query.where(revocations.c.revoked_at > revoked_after)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [Revocation(r.doc_id, r.user_id, float(r.revoked_at)) for r in rows]
