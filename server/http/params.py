"""Reading a request's parameters and JSON body, with a clear 400 for anything off."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from server.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Seqs and counts are stored as 64-bit integers: anything larger cannot name one.
MAX_INT = 2**63 - 1


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
        upper = f" and at most {high}" if high != MAX_INT else " and below 2^63"
        raise BadRequest(f"{name} must be at least {low}{upper}")
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


def body_int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer")
    if value < 0 or value > MAX_INT:
        raise BadRequest(f"{name} must be 0 or more, and below 2^63")
    return value
