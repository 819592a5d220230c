"""Governance commands, for a document's admins: delete, undelete, erase, retention policy.

Each hands one command to the write side (server.write.handlers). A deletion is answered once
the read side hides the document (or after the read wait); an erasure once the log is
rewritten and every live copy dropped (the read side then rebuilds the document: `?min_seq=`
the answer's seq waits for it).
"""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.auth import Access
from server.errors import BadRequest, ReadSideBehind
from server.http.params import body_int, json_body
from server.http.query_routes import DOC, reply
from server.read.governance import GovernanceQueries
from server.read.queries import Queries, iso
from server.write.commands import (
    DeleteDocument,
    EraseHistory,
    SetRetention,
    UndeleteDocument,
)
from server.write.handlers import WriteSide

DAY = 86_400.0


class GovernanceRoutes:
    def __init__(self, access: Access, write: WriteSide, queries: Queries,
                 governance: GovernanceQueries) -> None:
        self.access = access
        self.write = write
        self.queries = queries
        self.governance = governance

    def routes(self) -> list[BaseRoute]:
        return [
            Route(DOC, self.delete_document, methods=["DELETE"]),
            Route(DOC + "/undelete", self.undelete_document, methods=["POST"]),
            Route(DOC + "/erase", self.erase, methods=["POST"]),
            Route(DOC + "/retention", self.set_retention, methods=["PUT"]),
        ]

    def _admin(self, request: Request) -> tuple[str, str]:
        doc_id: str = request.path_params["doc_id"]
        return doc_id, self.access.require(request, doc_id, "admin").actor

    async def _read_side_reaches(self, doc_id: str, seq: int) -> None:
        with contextlib.suppress(ReadSideBehind):
            await self.queries.freshness.wait(doc_id, seq)

    async def delete_document(self, request: Request) -> Response:
        doc_id, actor = self._admin(request)
        body = await json_body(request)
        reason = body.get("reason", "")
        if not isinstance(reason, str):
            raise BadRequest("reason must be a string")
        record = await self.write.execute(DeleteDocument(doc_id, actor, reason))
        await self._read_side_reaches(doc_id, record.seq)
        purge_after = record.time + self.governance.deleted_retention_days * DAY
        return reply({"id": doc_id, "seq": record.seq, "deleted_at": iso(record.time),
                      "deleted_by": actor, "purge_after": iso(purge_after)}, record.seq)

    async def undelete_document(self, request: Request) -> Response:
        doc_id, actor = self._admin(request)
        record = await self.write.execute(UndeleteDocument(doc_id, actor))
        await self._read_side_reaches(doc_id, record.seq)
        return reply({"id": doc_id, "seq": record.seq, "undeleted_at": iso(record.time)},
                     record.seq)

    async def erase(self, request: Request) -> Response:
        doc_id, actor = self._admin(request)
        body = await json_body(request)
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise BadRequest("reason is required: why this content is erased (it is recorded)")
        selection: dict[str, Any]
        if "actor" in body:
            erased = body["actor"]
            if not isinstance(erased, str) or not erased:
                raise BadRequest("actor must be a non-empty string")
            if "from_seq" in body or "to_seq" in body:
                raise BadRequest("give from_seq and to_seq, or actor, not both")
            command = EraseHistory(doc_id, actor, reason, erased_actor=erased)
            selection = {"actor": erased}
        else:
            from_seq, to_seq = body_int(body, "from_seq"), body_int(body, "to_seq")
            command = EraseHistory(doc_id, actor, reason, from_seq, to_seq)
            selection = {"from_seq": from_seq, "to_seq": to_seq}
        record = await self.write.execute(command)
        self.queries.forget(doc_id)
        meta = record.meta
        return reply({"id": doc_id, "seq": record.seq, **selection, "erased": meta["events"],
                      "rechained_from": meta["rechained_from"], "head_hash": record.hash.hex(),
                      "erased_at": iso(record.time)}, record.seq)

    async def set_retention(self, request: Request) -> Response:
        doc_id, actor = self._admin(request)
        body = await json_body(request)
        if "keep_days" not in body:
            raise BadRequest('body must be {"keep_days": <days> or null}')
        keep = body["keep_days"]
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int | float)):
            raise BadRequest("keep_days must be a number of days, or null")
        record = await self.write.execute(
            SetRetention(doc_id, None if keep is None else float(keep), actor))
        return reply({"id": doc_id, "seq": record.seq, "keep_days": keep}, record.seq)
