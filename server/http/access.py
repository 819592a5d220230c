"""`POST /api/documents/{id}/revoke {"user": ID}`: an admin cuts a user off a document.

Closes the user's live connections to the document with 4403 ("access revoked") on this node
and, through the bus, on every node with connections to it; tokens minted before the call are
refused from then on, on every node and after restarts (the revocations table; see
docs/protocol.md, Revocation, for the limits of that promise).

The live connections are the realtime side's: this route reaches them through the `Revoker`
port, which the composition root fills with the realtime side's sessions.
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.auth import Access
from server.errors import BadRequest
from server.http.params import json_body, path_doc_id
from server.http.query_routes import DOC


class Revoker(Protocol):
    async def revoke(self, doc_id: str, user_id: str) -> tuple[int, float]:
        """Refuse the user's current tokens for the document and close their connections
        everywhere; returns (connections closed on this node, when it was revoked)."""
        ...


class AccessRoutes:
    def __init__(self, access: Access, revoker: Revoker) -> None:
        self.access = access
        self.revoker = revoker

    def routes(self) -> list[BaseRoute]:
        return [Route(DOC + "/revoke", self.revoke, methods=["POST"])]

    async def revoke(self, request: Request) -> Response:
        doc_id = path_doc_id(request)
        self.access.require(request, doc_id, "admin")
        body = await json_body(request)
        user = body.get("user")
        if not isinstance(user, str) or not user:
            raise BadRequest('body must be {"user": "<user id>"}')
        closed, at = await self.revoker.revoke(doc_id, user)
        # Kept across restarts (and read by the other nodes) before the call answers.
        await self.access.revocations.record(doc_id, user, at)
        return JSONResponse({"doc_id": doc_id, "user": user, "revoked_at": at,
                             "closed": closed})
