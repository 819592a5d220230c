"""The one translation of errors into HTTP answers: `{"error": {"code", "message"}}`."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from server.errors import InvalidTransition, PalimpsestError, Unavailable
from storage.errors import StorageUnavailable

log = logging.getLogger(__name__)


def error_json(exc: PalimpsestError) -> JSONResponse:
    body: dict[str, object] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, InvalidTransition):
        body["allowed"] = exc.allowed
    return JSONResponse({"error": body}, status_code=exc.status)


async def error_response(conn: Request | WebSocket, exc: Exception) -> Response | None:
    """Every error a route raises becomes a JSON answer here (a close frame on a WebSocket)."""
    if isinstance(exc, StorageUnavailable):
        exc = Unavailable("storage unavailable; retry shortly")
    if not isinstance(exc, PalimpsestError):
        log.error("unhandled error in the API", exc_info=exc)
        exc = PalimpsestError("internal error")
    if isinstance(conn, WebSocket):
        await conn.close(exc.close_code, exc.reason)
        return None
    return error_json(exc)


async def not_found(_request: Request, exc: Exception) -> Response:
    detail = getattr(exc, "detail", None) or "not found"
    status = int(getattr(exc, "status_code", 404))
    code = "not_found" if status == 404 else "method_not_allowed" if status == 405 else "http"
    return JSONResponse({"error": {"code": code, "message": str(detail)}}, status_code=status)
