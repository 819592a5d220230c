"""Query routes: JSON answers from the read side (server.read.queries), nothing written."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from server.auth import Access
from server.errors import BadRequest, Gone, Unavailable
from server.http.errors import error_json
from server.http.params import limit, path_doc_id, query_int, required_int
from server.read.feed import Feed
from server.read.governance import GovernanceQueries
from server.read.queries import Json, Queries
from server.read.status import StatusQueries
from server.read.workers import ReadsBusy
from server.review_status import DRAFT, clean_target

DOC = "/api/documents/{doc_id}"


def reply(data: dict[str, Any], seq: int | None = None, status: int = 200) -> Response:
    headers = {"X-Palimpsest-Seq": str(seq)} if seq is not None else None
    return JSONResponse(data, status_code=status, headers=headers)


async def heavy(read: Awaitable[Json]) -> Json | Response:
    """A read that runs in the read workers (the text at a seq, a diff): when they are all
    busy, 503 with Retry-After."""
    try:
        return await read
    except ReadsBusy as exc:
        response = error_json(exc)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


HEARTBEAT_SECONDS = 15.0  # a comment line on a quiet feed, so proxies and clients see it live
MAX_FEED_READERS = 10_000  # per node


def markdown_filename(title: str, seq: int | None) -> str:
    """A Content-Disposition value naming the download after the title (ASCII fallback plus
    the UTF-8 name), with the seq for an old version."""
    base = title.strip() or "Untitled document"
    if seq is not None:
        base += f" (change {seq})"
    ascii_name = re.sub(r"[^A-Za-z0-9 ._()-]+", "_", base)[:120] or "document"
    return (f'attachment; filename="{ascii_name}.md"; '
            f"filename*=UTF-8''{quote(base[:120] + '.md', safe='')}")


class QueryRoutes:
    def __init__(self, access: Access, queries: Queries, governance: GovernanceQueries,
                 feed: Feed | None = None, statuses: StatusQueries | None = None) -> None:
        self.access = access
        self.queries = queries
        self.governance = governance
        self.feed = feed
        self.statuses = statuses  # the review status each document answer carries

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/documents", self.list_documents, methods=["GET"]),
            Route(DOC, self.get_document, methods=["GET"]),
            Route(DOC + "/revisions", self.list_revisions, methods=["GET"]),
            Route(DOC + "/versions", self.list_versions, methods=["GET"]),
            Route(DOC + "/diff", self.get_diff, methods=["GET"]),
            Route(DOC + "/events", self.list_events, methods=["GET"]),
            Route(DOC + "/markdown", self.download_markdown, methods=["GET"]),
            Route(DOC + "/feed", self.follow_feed, methods=["GET"]),
            Route(DOC + "/content", self.get_content, methods=["GET"]),
            Route(DOC + "/diff/roots", self.get_roots_diff, methods=["GET"]),
        ]

    async def _readable(self, request: Request) -> str:
        """The document asked for, if the caller may read it: a deleted one is Gone (410) to
        everyone but its admins."""
        doc_id = path_doc_id(request)
        principal = self.access.require(request, doc_id, "read")
        if not principal.is_admin and await self.governance.deleted(doc_id) is not None:
            raise Gone(f"document {doc_id!r} was deleted")
        return doc_id

    async def list_documents(self, request: Request) -> Response:
        principal = self.access.require(request, None)
        if flag(request, "deleted"):
            # The deleted documents, for their admins only.
            deleted = await self.governance.deleted_documents()
            return reply({"items": [item for item in deleted
                                    if principal.role_for(item["id"]) == "admin"],
                          "next": None})
        hidden = {item["id"] for item in await self.governance.deleted_documents()}
        statuses = await self.statuses.all_statuses() if self.statuses is not None else {}
        wanted = request.query_params.get("status")
        if wanted is not None:
            clean_target(wanted)
        # Only the documents this caller may read, none deleted, filtered before paginating:
        # neither the items nor the opaque `next` cursor name any other (a page may come out
        # short).
        readable: Callable[[str], bool] | None = None
        if principal.grants is not None or hidden or wanted is not None:
            def readable(doc_id: str) -> bool:
                return (doc_id not in hidden and principal.role_for(doc_id) is not None
                        and (wanted is None or statuses.get(doc_id, DRAFT) == wanted))
        answer = await self.queries.list_documents(
            limit(request), request.query_params.get("cursor") or None, readable)
        for item in answer["items"]:
            item["status"] = statuses.get(item["id"], DRAFT)
        return reply(answer)

    async def get_document(self, request: Request) -> Response:
        doc_id = await self._readable(request)
        at = query_int(request, "at")
        at_time = request.query_params.get("at_time")
        min_seq = query_int(request, "min_seq")
        if at is not None and at_time:
            raise BadRequest("give at or at_time, not both")
        absorbed = None
        if at is not None:
            # A seq a compaction absorbed answers with the state at the end of its run.
            resolved = await self.governance.resolve(doc_id, at)
            answer = await heavy(self.queries.document_at(doc_id, resolved.seq))
            absorbed = resolved.absorbed
        elif at_time:
            answer = await heavy(self.queries.document_at_time(doc_id, at_time))
        else:
            answer = await self.queries.document(doc_id, min_seq)
        if isinstance(answer, Response):
            return answer
        if absorbed is not None:
            answer["absorbed"] = absorbed
        answer["head_hash"] = await self.governance.hash_at(doc_id, answer["seq"])
        deletion = await self.governance.deletion(doc_id)
        if deletion is not None:  # only its admins get this far
            answer["deleted"] = deletion
        if self.statuses is not None:
            answer["status"] = await self.statuses.status_of(doc_id)
        return reply(answer, answer["seq"])

    async def list_revisions(self, request: Request) -> Response:
        doc_id = await self._readable(request)
        answer = await self.queries.revisions(
            doc_id, limit(request), request.query_params.get("cursor") or None,
            query_int(request, "min_seq"))
        return reply(answer, answer["seq"])

    async def list_versions(self, request: Request) -> Response:
        doc_id = await self._readable(request)
        answer = await self.queries.versions(doc_id, query_int(request, "min_seq"))
        return reply(answer, answer["seq"])

    async def get_diff(self, request: Request) -> Response:
        doc_id = await self._readable(request)
        start = await self.governance.resolve(doc_id, required_int(request, "from"))
        end = await self.governance.resolve(doc_id, required_int(request, "to"))
        answer = await heavy(self.queries.diff(doc_id, start.seq, end.seq))
        if isinstance(answer, Response):
            return answer
        absorbed = [r.absorbed for r in (start, end) if r.absorbed is not None]
        if absorbed:
            answer["absorbed"] = absorbed
        return reply(answer, answer["to"])

    async def list_events(self, request: Request) -> Response:
        doc_id = await self._readable(request)
        after = query_int(request, "after", 0)
        assert after is not None
        answer = await self.queries.events(doc_id, after, limit(request))
        return reply(answer, answer["seq"])

    async def download_markdown(self, request: Request) -> Response:
        """The text (now, or at `?at=SEQ`) as a Markdown file to save."""
        doc_id = await self._readable(request)
        at = query_int(request, "at")
        if at is not None:
            resolved = await self.governance.resolve(doc_id, at)
            answer = await heavy(self.queries.document_at(doc_id, resolved.seq))
        else:
            answer = await self.queries.document(doc_id)
        if isinstance(answer, Response):
            return answer
        return Response(answer["text"], media_type="text/markdown; charset=utf-8", headers={
            "Content-Disposition": markdown_filename(answer["title"], at),
            "X-Palimpsest-Seq": str(answer["seq"])})

    async def follow_feed(self, request: Request) -> Response:
        """Server-sent events: each rename, restore and change to a named version of the
        document, as it is committed on any node (server.read.feed)."""
        doc_id = await self._readable(request)
        feed = self.feed
        if feed is None:
            raise Unavailable("this node does not serve document feeds")
        if feed.reader_count() >= MAX_FEED_READERS:
            raise Unavailable("too many feed readers on this node; retry shortly")
        await self.queries.document(doc_id)  # NotFound before the stream starts
        queue = feed.join(doc_id)

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": following\n\n"
                while True:
                    try:
                        async with asyncio.timeout(HEARTBEAT_SECONDS):
                            told = await queue.get()
                    except TimeoutError:
                        yield ": still here\n\n"
                        continue
                    yield f"data: {json.dumps(told)}\n\n"
            finally:
                feed.leave(doc_id, queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={
            "Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def get_content(self, request: Request) -> Response:
        """The whole document at ?seq= (the head when absent): state and every root type."""
        doc_id = await self._readable(request)
        seq = query_int(request, "seq")
        absorbed = None
        if seq is not None:
            resolved = await self.governance.resolve(doc_id, seq)
            seq, absorbed = resolved.seq, resolved.absorbed
        answer = await heavy(self.queries.content(doc_id, seq))
        if isinstance(answer, Response):
            return answer
        if absorbed is not None:
            answer["absorbed"] = absorbed
        return reply(answer, answer["seq"])

    async def get_roots_diff(self, request: Request) -> Response:
        """What changed in every root type between ?from= and ?to=."""
        doc_id = await self._readable(request)
        start = await self.governance.resolve(doc_id, required_int(request, "from"))
        end = await self.governance.resolve(doc_id, required_int(request, "to"))
        answer = await heavy(self.queries.roots_diff(doc_id, start.seq, end.seq))
        if isinstance(answer, Response):
            return answer
        return reply(answer, answer["to"])
