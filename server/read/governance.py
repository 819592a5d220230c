"""What the read side answers about a document's governance: whether it is deleted (and so
hidden), the chain hash at a seq, and which seq answers for a seq a compaction absorbed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.events import UPDATED
from server.read.queries import iso
from storage.database import Database
from storage.integrity import hash_at
from storage.lifecycle import DeletedRow, deleted_row, deleted_rows
from storage.retention import event_at_or_after

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resolved:
    seq: int  # the seq that answers
    absorbed: Json | None  # {"seq", "from_seq", "to_seq"} when `seq` was asked for another


class GovernanceQueries:
    def __init__(self, db: Database, deleted_retention_days: float) -> None:
        self.db = db
        self.deleted_retention_days = deleted_retention_days

    async def deleted(self, doc_id: str) -> DeletedRow | None:
        """The document's deletion, as the read side has projected it (None: not deleted)."""
        return await deleted_row(self.db, doc_id)

    def _deleted_json(self, row: DeletedRow) -> Json:
        purge_after = row.deleted_at + self.deleted_retention_days * 86_400.0
        return {"id": row.doc_id, "title": row.title, "deleted_at": iso(row.deleted_at),
                "deleted_by": row.deleted_by, "seq": row.seq, "purge_after": iso(purge_after)}

    async def deleted_documents(self) -> list[Json]:
        """Every deleted document, most recently deleted first."""
        return [self._deleted_json(row) for row in await deleted_rows(self.db)]

    async def deletion(self, doc_id: str) -> Json | None:
        row = await self.deleted(doc_id)
        return None if row is None else self._deleted_json(row)

    async def hash_at(self, doc_id: str, seq: int) -> str | None:
        """The hash chain's value after event `seq`, in hex."""
        found = await hash_at(self.db, doc_id, seq)
        return None if found is None else found.hex()

    async def resolve(self, doc_id: str, seq: int) -> Resolved:
        """A seq a compaction absorbed answers with the event that absorbed it (the state at
        the end of its run); any other seq answers for itself."""
        if seq <= 0:
            return Resolved(seq, None)
        found = await event_at_or_after(self.db, doc_id, seq)
        if found is None or found[0] == seq or found[1] != UPDATED:
            return Resolved(seq, None)
        absorbed = found[2].get("absorbed")
        if not absorbed or int(absorbed["from_seq"]) > seq:
            return Resolved(seq, None)
        return Resolved(found[0], {"seq": seq, "from_seq": int(absorbed["from_seq"]),
                                   "to_seq": found[0]})
