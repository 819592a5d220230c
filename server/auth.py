"""Who is connecting and what they may do.

With a secret configured (`PALIMPSEST_SECRET`), every WebSocket handshake and API call needs a
token (server.tokens): the `token` query parameter (what a stock WebsocketProvider's `params`
can carry) or an `Authorization: Bearer` header. The token names the user and a role per
document pattern; the user id is the actor recorded on every event, never anything the client
claims. Without a secret the server is open (the embedded default, loopback only): everyone is
an admin and the actor is the name the client gives (`?name=`), or "anonymous".

Roles, each including the ones before it: read (sync, see edits and presence, read the API),
write (change the document; the API also lets it create, rename, restore and name versions),
admin (revoke others: server.access_api). docs/protocol.md, "Access control", has the rest.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from server.errors import Forbidden
from server.settings import Settings
from server.tokens import ROLES, Claims, verify
from storage.errors import StorageError
from storage.revocations import Revocation, RevocationStore

log = logging.getLogger(__name__)

MAX_NAME = 100
RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
ANONYMOUS = "anonymous"
CLOCK_MARGIN = 300.0  # seconds: how far apart nodes' clocks (and commit delays) may be


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, and its role on the document it asked for (if any)."""

    actor: str
    user_id: str | None = None  # None when the server runs without a secret
    display_name: str = ANONYMOUS
    role: str = "admin"
    grants: dict[str, str] | None = None  # pattern -> role; None: everything (no secret)
    issued_at: float = 0.0
    expires_at: float | None = None

    @property
    def can_write(self) -> bool:
        return RANK[self.role] >= RANK["write"]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def role_for(self, doc_id: str) -> str | None:
        """This caller's role on another document (e.g. to filter a document list)."""
        return "admin" if self.grants is None else role_for(self.grants, doc_id)


@dataclass
class Revocations:
    """Revoked (document, user) pairs, with when: tokens minted before then are refused.

    Held in memory by each node, so checking one costs no query. With a log (the revocations
    table) they survive restarts: `load` reads them at start, `record` writes a revocation
    through before the revoke call answers, and `follow` re-reads the table now and then, so a
    node learns of revocations made on others even without connections to the document (the
    bus only reaches nodes with some). See docs/protocol.md (Revocation).
    """

    revoked: dict[tuple[str, str], float] = field(default_factory=dict)
    log: RevocationStore | None = None
    newest: float | None = None  # the latest revoked_at read from the log, once loaded

    def add(self, doc_id: str, user_id: str, at: float) -> None:
        key = (doc_id, user_id)
        self.revoked[key] = max(at, self.revoked.get(key, 0.0))

    def refuses(self, doc_id: str, claims: Claims) -> bool:
        at = self.revoked.get((doc_id, claims.user_id))
        return at is not None and claims.issued_at <= at

    async def record(self, doc_id: str, user_id: str, at: float) -> None:
        """Add a revocation and write it to the log (StorageError if that fails)."""
        self.add(doc_id, user_id, at)
        if self.log is not None:
            await self.log.add(doc_id, user_id, at)

    async def load(self) -> list[Revocation]:
        """Read the log: all of it the first time, then what was revoked since the newest
        seen (less CLOCK_MARGIN: nodes' clocks and commits are not in step). Returns the
        revocations this node did not know."""
        if self.log is None:
            return []
        rows = await self.log.since(None if self.newest is None
                                    else self.newest - CLOCK_MARGIN)
        new = [r for r in rows
               if self.revoked.get((r.doc_id, r.user_id), -1.0) < r.revoked_at]
        for r in new:
            self.add(r.doc_id, r.user_id, r.revoked_at)
        self.newest = max([self.newest or 0.0, *(r.revoked_at for r in rows)])
        return new

    async def follow(self, every: float, on_new: Callable[[str, str, float], Any]) -> None:
        """Re-read the log every `every` seconds until cancelled; on_new(doc, user, at) for
        each revocation learnt (to close that user's live connections)."""
        while True:
            await asyncio.sleep(every)
            try:
                for r in await self.load():
                    on_new(r.doc_id, r.user_id, r.revoked_at)
            except StorageError as exc:
                log.warning("could not re-read revocations: %s", exc)


def role_for(grants: dict[str, str], doc_id: str) -> str | None:
    """The role a token's grants give on doc_id: an exact id wins over patterns, and among
    matching patterns the longest (the most specific) wins."""
    exact = grants.get(doc_id)
    if exact is not None:
        return exact
    best: tuple[int, str] | None = None
    for pattern, role in grants.items():
        if fnmatch.fnmatchcase(doc_id, pattern) and (best is None or len(pattern) > best[0]):
            best = (len(pattern), role)
    return None if best is None else best[1]


def token_of(conn: HTTPConnection) -> str:
    token = conn.query_params.get("token")
    if token:
        return token
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    return ""


def anonymous(conn: HTTPConnection) -> Principal:
    name = (conn.query_params.get("name") or conn.headers.get("x-palimpsest-name") or "").strip()
    name = name[:MAX_NAME] or ANONYMOUS
    return Principal(actor=name, display_name=name)


def authenticate(conn: HTTPConnection, doc_id: str | None, settings: Settings,
                 revocations: Revocations | None = None, *,
                 now: float | None = None) -> Principal:
    """The principal of a WebSocket handshake or an HTTP request.

    Raises Unauthorised (no, malformed, forged or expired token) or Forbidden (the token does
    not grant doc_id, or its access was revoked). With doc_id None the token must be valid but
    its role is left to the caller (`role` is then "read" as a floor, grants tell the rest).
    """
    if settings.secret is None:
        return anonymous(conn)
    claims = verify(token_of(conn), settings.secret,
                    now=time.time() if now is None else now)
    role = "read"
    if doc_id is not None:
        granted = role_for(claims.docs, doc_id)
        if granted is None:
            raise Forbidden(f"token does not grant access to document {doc_id}")
        role = granted
        if revocations is not None and revocations.refuses(doc_id, claims):
            raise Forbidden(f"access to document {doc_id} was revoked")
    return Principal(
        actor=claims.user_id,
        user_id=claims.user_id,
        display_name=claims.display_name[:MAX_NAME],
        role=role,
        grants=claims.docs,
        issued_at=claims.issued_at,
        expires_at=claims.expires_at,
    )


@dataclass(frozen=True)
class Access:
    """Who may do what: the settings' secret and grants, and the revocations so far. Built once
    at the composition root and handed to the edges that check callers."""

    settings: Settings
    revocations: Revocations

    def authenticate(self, conn: HTTPConnection, doc_id: str | None) -> Principal:
        return authenticate(conn, doc_id, self.settings, self.revocations)

    def require(self, conn: HTTPConnection, doc_id: str | None, role: str = "read") -> Principal:
        """The caller, if it holds at least `role` on doc_id (any valid token when doc_id is
        None). Raises Unauthorised (401) or Forbidden (403)."""
        principal = self.authenticate(conn, doc_id)
        if doc_id is not None and RANK[principal.role] < RANK[role]:
            raise Forbidden(f"this needs the {role} role on document {doc_id}; "
                            f"the token grants {principal.role}")
        return principal


def origin_allowed(conn: HTTPConnection, settings: Settings) -> bool:
    """Cross-site WebSocket hijacking guard: is the handshake's Origin allowed?

    No Origin (a server-side client, never a browser) is judged by its token alone. By default
    the only allowed origin is the server's own (an Origin whose host:port is the Host the
    request was sent to); PALIMPSEST_ALLOWED_ORIGINS lists others ("*" allows any).
    """
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    allowed = settings.allowed_origins
    if "*" in allowed:
        return True
    normalised = origin.strip().rstrip("/").lower()
    if normalised in (o.rstrip("/").lower() for o in allowed):
        return True
    if allowed:
        return False
    host = conn.headers.get("host", "").lower()
    parts = urlsplit(normalised)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host
