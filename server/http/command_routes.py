"""Command routes: each parses its body, checks the caller's role, and hands one command to the
write side (server.write.handlers). The answer comes from the committed event."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.auth import RANK, Access
from server.errors import BadRequest, Forbidden, Gone
from server.events import (
    DocumentCreated,
    DocumentRenamed,
    VersionNamed,
    VersionRenamed,
    decode,
)
from server.http.params import MAX_INT, body_int, json_body, path_doc_id
from server.http.query_routes import DOC, reply
from server.read.governance import GovernanceQueries
from server.read.queries import MAX_REVISION, Queries, iso
from server.write.commands import (
    CopyDocument,
    CreateDocument,
    DeleteVersion,
    NameVersion,
    RenameDocument,
    RenameVersion,
    RestoreRevision,
)
from server.write.handlers import WriteSide
from server.write.validation import MAX_TITLE, check_doc_id


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
            Route(DOC + "/versions/{version}", self.rename_version, methods=["PATCH"]),
            Route(DOC + "/versions/{version}", self.delete_version, methods=["DELETE"]),
            Route(DOC + "/copy", self.copy_document, methods=["POST"]),
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
        return reply({"id": record.seq, "seq": event.seq, "name": event.name, "actor": actor,
                      "created_at": iso(record.time)}, record.seq, status=201)

    async def _version(self, request: Request, doc_id: str) -> int:
        """The version of the path, if its name still stands (NotFound otherwise)."""
        raw = request.path_params["version"]
        if not raw.isdigit() or not 0 < int(raw) <= MAX_INT:
            raise BadRequest("the version must be its id, a positive integer")
        version = int(raw)
        await self.queries.version(doc_id, version)
        return version

    async def rename_version(self, request: Request) -> Response:
        doc_id, actor = self._writer(request)
        version = await self._version(request, doc_id)
        body = await json_body(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise BadRequest("name must be a string")
        record = await self.write.execute(RenameVersion(doc_id, version, name, actor))
        event = decode(record)
        assert isinstance(event, VersionRenamed)
        return reply({"id": version, "name": event.name, "seq": record.seq}, record.seq)

    async def delete_version(self, request: Request) -> Response:
        """The name goes; the history it named stays."""
        doc_id, actor = self._writer(request)
        version = await self._version(request, doc_id)
        record = await self.write.execute(DeleteVersion(doc_id, version, actor))
        return reply({"id": version, "deleted": True, "seq": record.seq}, record.seq)

    async def copy_document(self, request: Request) -> Response:
        """A new document with this one's text at `seq` (default: now)."""
        source = path_doc_id(request)
        principal = self.access.require(request, source, "read")
        body = await json_body(request)
        doc_id = body.get("id")
        if doc_id is None:
            doc_id = new_document_id()
        check_doc_id(doc_id)
        role = principal.role_for(doc_id)
        if role is None or RANK[role] < RANK["write"]:
            raise Forbidden(f"the token may not create document {doc_id}")
        if await self.governance.deleted(source) is not None and not principal.is_admin:
            raise Gone(f"document {source!r} was deleted")
        if "seq" in body:
            seq = (await self.governance.resolve(source, body_int(body, "seq"))).seq
        else:
            seq = (await self.queries.document(source))["seq"]
        title = body.get("title")
        if title is None:
            original = (await self.queries.document(source))["title"] or "Untitled document"
            title = f"Copy of {original}"[:MAX_TITLE]
        record = await self.write.execute(
            CopyDocument(source, seq, doc_id, title, principal.actor))
        event = decode(record)
        assert isinstance(event, DocumentCreated)
        return reply({"id": doc_id, "title": event.title, "copied_from": {"id": source,
                      "seq": seq}}, None, status=201)

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
