"""Command routes: each parses its body, checks the caller's role, and hands one command to the
write side (server.write.handlers). The answer comes from the committed event."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.auth import RANK, Access
from server.errors import BadRequest, Forbidden
from server.events import DocumentCreated, DocumentRenamed, VersionNamed, decode
from server.http.params import body_int, json_body, path_doc_id
from server.http.query_routes import DOC, reply
from server.read.governance import GovernanceQueries
from server.read.queries import MAX_REVISION, Queries, iso
from server.write.commands import CreateDocument, NameVersion, RenameDocument, RestoreRevision
from server.write.handlers import WriteSide
from server.write.validation import check_doc_id


def new_document_id() -> str:
    return uuid.uuid4().hex[:12]


class CommandRoutes:
    def __init__(self, access: Access, write: WriteSide, queries: Queries,
                 governance: GovernanceQueries) -> None:
        self.access = access
        self.write = write
        self.queries = queries  # to name a revision's end seq for a restore by revision
        self.governance = governance  # the seq that answers for one a compaction absorbed

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/documents", self.create_document, methods=["POST"]),
            Route(DOC, self.rename_document, methods=["PATCH"]),
            Route(DOC + "/versions", self.name_version, methods=["POST"]),
            Route(DOC + "/restore", self.restore, methods=["POST"]),
        ]

    def _writer(self, request: Request) -> tuple[str, str]:
        doc_id = path_doc_id(request)
        return doc_id, self.access.require(request, doc_id, "write").actor

    async def create_document(self, request: Request) -> Response:
        principal = self.access.require(request, None)
        body = await json_body(request)
        doc_id = body.get("id")
        if doc_id is None:
            doc_id = new_document_id()
        check_doc_id(doc_id)  # before the grants: "doc1\n" matches a pattern like "doc*"
        role = principal.role_for(doc_id)
        if role is None or RANK[role] < RANK["write"]:
            raise Forbidden(f"the token may not create document {doc_id}")
        record = await self.write.execute(
            CreateDocument(title=body.get("title", ""), actor=principal.actor, doc_id=doc_id))
        event = decode(record)
        assert isinstance(event, DocumentCreated)
        return reply({"id": record.doc_id, "title": event.title, "seq": record.seq, "text": "",
                      "updated_at": iso(record.time), "status": "draft"}, record.seq,
                     status=201)

    async def rename_document(self, request: Request) -> Response:
        doc_id, actor = self._writer(request)
        body = await json_body(request)
        if "title" not in body:
            raise BadRequest("title is required")
        record = await self.write.execute(RenameDocument(doc_id, body["title"], actor))
        event = decode(record)
        assert isinstance(event, DocumentRenamed)
        return reply({"id": doc_id, "title": event.title, "seq": record.seq,
                      "updated_at": iso(record.time)}, record.seq)

    async def name_version(self, request: Request) -> Response:
        doc_id, actor = self._writer(request)
        body = await json_body(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise BadRequest("name must be a string")
        seq = (await self.governance.resolve(doc_id, body_int(body, "seq"))).seq
        record = await self.write.execute(NameVersion(doc_id, seq, name, actor))
        event = decode(record)
        assert isinstance(event, VersionNamed)
        return reply({"seq": event.seq, "name": event.name, "actor": actor,
                      "created_at": iso(record.time)}, record.seq, status=201)

    async def restore(self, request: Request) -> Response:
        doc_id, actor = self._writer(request)
        body = await json_body(request)
        revision: int | None = None
        if "revision" in body and "seq" not in body:
            revision = body_int(body, "revision", high=MAX_REVISION)
            seq = await self.queries.revision_end(doc_id, revision)
        else:
            seq = (await self.governance.resolve(doc_id, body_int(body, "seq"))).seq
        record = await self.write.execute(RestoreRevision(doc_id, seq, actor, revision))
        return reply({"seq": record.seq, "restored_from": seq}, record.seq)
