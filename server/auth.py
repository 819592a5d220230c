"""Who is connecting and what they may do.

Until access control lands this allows everyone to write; the actor is the display name the
client gives (`?name=`), or "anonymous". The server, never the client's Yjs id, names the actor.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from server.settings import Settings

MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class Principal:
    actor: str
    can_write: bool = True
    is_admin: bool = False


def authenticate(conn: HTTPConnection, doc_id: str | None, settings: Settings) -> Principal:
    """The principal of a WebSocket handshake or an HTTP request."""
    name = (conn.query_params.get("name") or conn.headers.get("x-palimpsest-name") or "").strip()
    return Principal(actor=name[:MAX_NAME] or "anonymous")
