"""Reading a request's parameters and JSON body, with a clear 400 for anything off."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from server.errors import BadRequest
from server.read.queries import MAX_REVISION
from server.write.validation import valid_doc_id

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Seqs and counts are stored as 64-bit integers: anything larger cannot name one. Revision
# numbers are 32-bit (MAX_REVISION). Every integer a request carries, in its query or its
# body, goes through query_int or body_int: past these bounds it is a 400, never a database
# error or an OverflowError.
MAX_INT = 2**63 - 1


def path_doc_id(request: Request) -> str:
    """The document id of the path, matched whole: "doc1\n" is not "doc1" (400)."""
    doc_id: str = request.path_params["doc_id"]
    if not valid_doc_id(doc_id):
        raise BadRequest("invalid document id: 1 to 200 letters, digits, '.', '_', '~' or '-', "
                         "starting with a letter or digit")
    return doc_id


def query_int(request: Request, name: str, default: int | None = None, *, low: int = 0,
              high: int = MAX_INT) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {raw[:40]!r}") from None
    if value < low or value > high:
        raise BadRequest(f"{name} must be at least {low} and {_bound(high)}")
    return value


def required_int(request: Request, name: str) -> int:
    value = query_int(request, name)
    if value is None:
        raise BadRequest(f"{name} is required")
    return value


def limit(request: Request) -> int:
    value = query_int(request, "limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    assert value is not None
    return value


async def json_body(request: Request) -> dict[str, Any]:
    # Its size and content type were checked before any route ran (server/http/guard.py).
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise BadRequest("request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _bound(high: int) -> str:
    return "below 2^63" if high == MAX_INT else "below 2^31" if high == MAX_REVISION \
        else f"at most {high}"


def body_int(body: dict[str, Any], name: str, *, high: int = MAX_INT) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer")
    if value < 0 or value > high:
        raise BadRequest(f"{name} must be 0 or more, and {_bound(high)}")
    return value
