"""The HTTP API: JSON in and out, at the paths of DESIGN.md ("The read side").

Handlers only parse parameters, call a query (server.read.queries) or a command
(server.write.service) and shape the answer. Every error becomes
`{"error": {"code", "message"}}` in `error_response`, the one place that does so.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.websockets import WebSocket

from server.auth import RANK, require
from server.errors import BadRequest, Forbidden, PalimpsestError, Unavailable
from server.read.queries import Queries, iso
from server.write.service import (
    CommandService,
    CreateDocument,
    NameVersion,
    RenameDocument,
    RestoreRevision,
    new_document_id,
)
from storage.errors import StorageUnavailable

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_BODY = 64 * 1024


async def error_response(conn: Request | WebSocket, exc: Exception) -> Response | None:
    """The one translation of errors into HTTP answers (and close frames, on a WebSocket)."""
    if isinstance(exc, StorageUnavailable):
        exc = Unavailable("storage unavailable; retry shortly")
    if not isinstance(exc, PalimpsestError):
        log.error("unhandled error in the API", exc_info=exc)
        exc = PalimpsestError("internal error")
    if isinstance(conn, WebSocket):
        await conn.close(exc.close_code, exc.reason)
        return None
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}},
                        status_code=exc.status)


async def not_found(_request: Request, exc: Exception) -> Response:
    detail = getattr(exc, "detail", None) or "not found"
    status = int(getattr(exc, "status_code", 404))
    code = "not_found" if status == 404 else "method_not_allowed" if status == 405 else "http"
    return JSONResponse({"error": {"code": code, "message": str(detail)}}, status_code=status)


def _int(request: Request, name: str, default: int | None = None, *, low: int = 0,
         high: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw!r}") from None
    if value < low or (high is not None and value > high):
        upper = f" and at most {high}" if high is not None else ""
        raise BadRequest(f"{name} must be at least {low}{upper}")
    return value


def _required_int(request: Request, name: str) -> int:
    value = _int(request, name)
    if value is None:
        raise BadRequest(f"{name} is required")
    return value


def _limit(request: Request) -> int:
    value = _int(request, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    assert value is not None
    return value


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest("request body too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise BadRequest("request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _body_int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer")
    if value < 0:
        raise BadRequest(f"{name} must be 0 or more")
    return value


def _queries(request: Request) -> Queries:
    queries: Queries = request.app.state.queries
    return queries


def _commands(request: Request) -> CommandService:
    commands: CommandService = request.app.state.commands
    return commands


def _actor(request: Request, doc_id: str | None, *, write: bool) -> str:
    """The caller's actor name, once it holds the role the request needs (server.auth)."""
    return require(request, doc_id, "write" if write else "read").actor


def _reply(data: dict[str, Any], seq: int | None = None, status: int = 200) -> Response:
    headers = {"X-Palimpsest-Seq": str(seq)} if seq is not None else None
    return JSONResponse(data, status_code=status, headers=headers)


# Queries

async def list_documents(request: Request) -> Response:
    principal = require(request, None)
    answer = await _queries(request).list_documents(
        _limit(request), request.query_params.get("cursor") or None)
    # Only the documents this caller may read (a page may come out short; `next` still works).
    answer["items"] = [item for item in answer["items"]
                       if principal.role_for(item["id"]) is not None]
    return _reply(answer)


async def get_document(request: Request) -> Response:
    doc_id = request.path_params["doc_id"]
    _actor(request, doc_id, write=False)
    queries = _queries(request)
    at = _int(request, "at")
    at_time = request.query_params.get("at_time")
    min_seq = _int(request, "min_seq")
    if at is not None and at_time:
        raise BadRequest("give at or at_time, not both")
    if at is not None:
        answer = await queries.document_at(doc_id, at)
    elif at_time:
        answer = await queries.document_at_time(doc_id, at_time)
    else:
        answer = await queries.document(doc_id, min_seq)
    return _reply(answer, answer["seq"])


async def list_revisions(request: Request) -> Response:
    doc_id = request.path_params["doc_id"]
    _actor(request, doc_id, write=False)
    answer = await _queries(request).revisions(
        doc_id, _limit(request), request.query_params.get("cursor") or None,
        _int(request, "min_seq"))
    return _reply(answer, answer["seq"])


async def list_versions(request: Request) -> Response:
    doc_id = request.path_params["doc_id"]
    _actor(request, doc_id, write=False)
    answer = await _queries(request).versions(doc_id, _int(request, "min_seq"))
    return _reply(answer, answer["seq"])


async def get_diff(request: Request) -> Response:
    doc_id = request.path_params["doc_id"]
    _actor(request, doc_id, write=False)
    answer = await _queries(request).diff(
        doc_id, _required_int(request, "from"), _required_int(request, "to"))
    return _reply(answer, answer["to"])


async def list_events(request: Request) -> Response:
    doc_id = request.path_params["doc_id"]
    _actor(request, doc_id, write=False)
    after = _int(request, "after", 0)
    assert after is not None
    answer = await _queries(request).events(doc_id, after, _limit(request))
    return _reply(answer, answer["seq"])


# Commands

async def create_document(request: Request) -> Response:
    principal = require(request, None)
    body = await _body(request)
    doc_id = body.get("id")
    if doc_id is None:
        doc_id = new_document_id()
    if not isinstance(doc_id, str):
        raise BadRequest("id must be a string")
    role = principal.role_for(doc_id)
    if role is None or RANK[role] < RANK["write"]:
        raise Forbidden(f"the token may not create document {doc_id}")
    record = await _commands(request).create(
        CreateDocument(title=body.get("title", ""), actor=principal.actor, doc_id=doc_id))
    title = record.meta["title"]
    return _reply({"id": record.doc_id, "title": title, "seq": record.seq, "text": "",
                   "updated_at": iso(record.time)}, record.seq, status=201)


async def rename_document(request: Request) -> Response:
    doc_id = request.path_params["doc_id"]
    actor = _actor(request, doc_id, write=True)
    body = await _body(request)
    if "title" not in body:
        raise BadRequest("title is required")
    record = await _commands(request).rename(RenameDocument(doc_id, body["title"], actor))
    return _reply({"id": doc_id, "title": record.meta["title"], "seq": record.seq,
                   "updated_at": iso(record.time)}, record.seq)


async def name_version(request: Request) -> Response:
    doc_id = request.path_params["doc_id"]
    actor = _actor(request, doc_id, write=True)
    body = await _body(request)
    name = body.get("name")
    if not isinstance(name, str):
        raise BadRequest("name must be a string")
    record = await _commands(request).name_version(
        NameVersion(doc_id, _body_int(body, "seq"), name, actor))
    return _reply({"seq": record.meta["seq"], "name": record.meta["name"], "actor": actor,
                   "created_at": iso(record.time)}, record.seq, status=201)


async def restore(request: Request) -> Response:
    doc_id = request.path_params["doc_id"]
    actor = _actor(request, doc_id, write=True)
    body = await _body(request)
    revision: int | None = None
    if "revision" in body and "seq" not in body:
        revision = _body_int(body, "revision")
        seq = await _queries(request).revision_end(doc_id, revision)
    else:
        seq = _body_int(body, "seq")
    record = await _commands(request).restore(RestoreRevision(doc_id, seq, actor, revision))
    return _reply({"seq": record.seq, "restored_from": seq}, record.seq)


DOC = "/api/documents/{doc_id}"


def query_routes() -> list[BaseRoute]:
    return [
        Route("/api/documents", list_documents, methods=["GET"]),
        Route(DOC, get_document, methods=["GET"]),
        Route(DOC + "/revisions", list_revisions, methods=["GET"]),
        Route(DOC + "/versions", list_versions, methods=["GET"]),
        Route(DOC + "/diff", get_diff, methods=["GET"]),
        Route(DOC + "/events", list_events, methods=["GET"]),
    ]


def command_routes() -> list[BaseRoute]:
    return [
        Route("/api/documents", create_document, methods=["POST"]),
        Route(DOC, rename_document, methods=["PATCH"]),
        Route(DOC + "/versions", name_version, methods=["POST"]),
        Route(DOC + "/restore", restore, methods=["POST"]),
    ]
