"""`POST /api/documents/{id}/revoke {"user": ID}`: an admin cuts a user off a document.

Closes the user's live connections to the document with 4403 ("access revoked") on this node
and, through the bus, on every node with connections to it; tokens minted before the call are
refused from then on (see docs/protocol.md, Revocation, for the limits of that promise).
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.auth import require
from server.errors import BadRequest, PalimpsestError
from server.sessions import Sessions


def error_response(error: PalimpsestError) -> JSONResponse:
    return JSONResponse({"error": {"code": error.code, "message": error.message}},
                        status_code=error.status)


async def revoke_endpoint(request: Request) -> Response:
    doc_id = request.path_params["doc_id"]
    try:
        require(request, doc_id, "admin")
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise BadRequest("body is not JSON") from None
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, str) or not user:
            raise BadRequest('body must be {"user": "<user id>"}')
        sessions: Sessions = request.app.state.sessions
        closed, at = await sessions.revoke(doc_id, user)
    except PalimpsestError as exc:
        return error_response(exc)
    return JSONResponse({"doc_id": doc_id, "user": user, "revoked_at": at, "closed": closed})
