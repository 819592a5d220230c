"""Routes of the review status, activity and search: one command (a status transition) and the
queries of the insight read models (server.read.status, .activity, .search)."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from server.auth import Access, Principal
from server.errors import BadRequest, Gone
from server.events import StatusChanged, decode
from server.http.params import json_body, limit, path_doc_id, query_int
from server.http.query_routes import DOC, reply
from server.read.activity import ActivityQueries, ActivityStream, bucket_seconds, since_time
from server.read.governance import GovernanceQueries
from server.read.queries import iso
from server.read.search import SearchQueries
from server.read.status import StatusQueries
from server.review_status import clean_target, required_role
from server.write.commands import ChangeStatus
from server.write.handlers import WriteSide

WhoIsWhere = Callable[[], dict[str, list[str]]]


class StatusCommandRoutes:
    """`POST /api/documents/{id}/status`: a transition, decided under the document's lock."""

    def __init__(self, access: Access, write: WriteSide) -> None:
        self.access = access
        self.write = write

    def routes(self) -> list[BaseRoute]:
        return [Route(DOC + "/status", self.change_status, methods=["POST"])]

    async def change_status(self, request: Request) -> Response:
        doc_id = path_doc_id(request)
        self.access.require(request, doc_id, "read")
        body = await json_body(request)
        target = clean_target(body.get("to"))
        actor = self.access.require(request, doc_id, required_role(target)).actor
        record = await self.write.execute(ChangeStatus(doc_id, target, actor,
                                                       body.get("note") or ""))
        event = decode(record)
        assert isinstance(event, StatusChanged)
        return reply({"id": doc_id, "status": event.to_status, "from": event.from_status,
                      "note": event.note, "seq": record.seq, "actor": record.actor,
                      "time": iso(record.time)}, record.seq)


class InsightRoutes:
    def __init__(self, access: Access, governance: GovernanceQueries, status: StatusQueries,
                 activity: ActivityQueries, stream: ActivityStream, search: SearchQueries,
                 who_is_where: WhoIsWhere | None) -> None:
        self.access = access
        self.governance = governance
        self.status = status
        self.activity = activity
        self.stream = stream
        self.search = search
        self.who_is_where = who_is_where

    def routes(self) -> list[BaseRoute]:
        return [
            Route(DOC + "/status", self.get_status, methods=["GET"]),
            Route(DOC + "/status-history", self.status_history, methods=["GET"]),
            Route(DOC + "/published", self.published, methods=["GET"]),
            Route(DOC + "/activity", self.document_activity, methods=["GET"]),
            Route(DOC + "/history-search", self.history_search, methods=["GET"]),
            Route("/api/activity", self.all_activity, methods=["GET"]),
            Route("/api/activity/presence", self.presence, methods=["GET"]),
            Route("/api/activity/stream", self.activity_stream, methods=["GET"]),
            Route("/api/search", self.search_documents, methods=["GET"]),
        ]

    async def _readable(self, request: Request) -> str:
        doc_id = path_doc_id(request)
        principal = self.access.require(request, doc_id, "read")
        if not principal.is_admin and await self.governance.deleted(doc_id) is not None:
            raise Gone(f"document {doc_id!r} was deleted")
        return doc_id

    async def _reader(self, request: Request) -> Callable[[str], bool]:
        """Which documents this caller may read (none deleted): filters every answer that
        spans documents, before anything of them is shown."""
        principal: Principal = self.access.require(request, None)
        hidden = {item["id"] for item in await self.governance.deleted_documents()}

        def readable(doc_id: str) -> bool:
            return doc_id not in hidden and principal.role_for(doc_id) is not None

        return readable

    async def get_status(self, request: Request) -> Response:
        doc_id = await self._readable(request)
        answer = await self.status.status(doc_id, query_int(request, "min_seq"))
        return reply(answer, answer["seq"])

    async def status_history(self, request: Request) -> Response:
        doc_id = await self._readable(request)
        answer = await self.status.history(doc_id, query_int(request, "min_seq"))
        return reply(answer, answer["seq"])

    async def published(self, request: Request) -> Response:
        doc_id = await self._readable(request)
        answer = await self.status.published(doc_id, query_int(request, "min_seq"))
        return reply(answer, answer["seq"])

    async def document_activity(self, request: Request) -> Response:
        doc_id = await self._readable(request)
        params = request.query_params
        answer = await self.activity.document(
            doc_id, bucket_seconds(params.get("bucket")),
            since_time(params.get("since"), time.time()), query_int(request, "min_seq"))
        return reply(answer, answer["seq"])

    async def all_activity(self, request: Request) -> Response:
        readable = await self._reader(request)
        params = request.query_params
        answer = await self.activity.across(
            bucket_seconds(params.get("bucket")), since_time(params.get("since"), time.time()),
            readable)
        return reply(answer)

    async def presence(self, request: Request) -> Response:
        readable = await self._reader(request)
        everyone = self.who_is_where() if self.who_is_where is not None else {}
        return reply({"items": [{"id": doc_id, "users": users}
                                for doc_id, users in everyone.items() if readable(doc_id)]})

    async def activity_stream(self, request: Request) -> Response:
        readable = await self._reader(request)
        return StreamingResponse(self.stream.messages(readable), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    async def search_documents(self, request: Request) -> Response:
        readable = await self._reader(request)
        answer = await self.search.search(request.query_params.get("q") or "", limit(request),
                                          readable)
        return reply(answer)

    async def history_search(self, request: Request) -> Response:
        doc_id = await self._readable(request)
        phrase = request.query_params.get("q")
        if phrase is None:
            raise BadRequest("q is required")
        answer = await self.search.history(doc_id, phrase, query_int(request, "min_seq"))
        return reply(answer, answer["seq"])
