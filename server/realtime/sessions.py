"""The live WebSocket sessions of this node: who is connected to which document, from where.

Sessions enforce what outlives one message: connections per document, per user of a document
and per address (refused with 4503, retried by stock clients), a document's size, the token's
expiry (a live connection is closed with 4403 when its token expires), and revocation (an
admin's call closes that user's connections to the document with 4403, here and, through the
bus, on every node that has connections to it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from server.auth import Principal, Revocations
from server.bus import REVOKE, Bus, BusMessage, Handler
from server.realtime.connection import Connection
from server.realtime.limits import ConnectionCounts, ConnectionRate, DocumentSize
from server.settings import Limits

log = logging.getLogger(__name__)

EXPIRED = (4403, "token expired")
REVOKED = (4403, "access revoked")


@dataclass(eq=False, slots=True)
class Session:
    doc_id: str
    address: str
    principal: Principal
    rate: ConnectionRate
    size: DocumentSize
    connection: Connection | None = None
    expiry: asyncio.TimerHandle | None = None
    # A read-only connection's first step 2 has its deletions compared with the document's
    # (costly); later writes that delete anything are refused without comparing.
    step2_compared: bool = False
    awareness_refused: bool = False  # an awareness entry was refused (logged once)


@dataclass(eq=False, slots=True)
class _Document:
    sessions: set[Session] = field(default_factory=set)
    size: DocumentSize = field(default_factory=DocumentSize)
    handler: Handler | None = None


class Sessions:
    def __init__(self, limits: Limits, bus: Bus, revocations: Revocations) -> None:
        self.limits = limits
        self.bus = bus
        self.counts = ConnectionCounts(limits)
        self.revocations = revocations
        self._documents: dict[str, _Document] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return sum(len(d.sessions) for d in self._documents.values())

    async def open(self, doc_id: str, address: str, principal: Principal) -> Session:
        """Admit a connection (AtCapacity if a connection count is full); pair with close()."""
        self.counts.admit(doc_id, address, principal.user_id)
        document = self._documents.get(doc_id)
        if document is None:
            document = self._documents[doc_id] = _Document()
            document.handler = self._handler(doc_id)
            try:
                await self.bus.subscribe(doc_id, document.handler)
            except BaseException:
                self._documents.pop(doc_id, None)
                self.counts.leave(doc_id, address, principal.user_id)
                raise
        session = Session(doc_id, address, principal, ConnectionRate(self.limits), document.size)
        document.sessions.add(session)
        return session

    def attach(self, session: Session, connection: Connection) -> None:
        """The session's connection is live: close it when its token expires."""
        session.connection = connection
        expires = session.principal.expires_at
        if expires is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, expires - time.time())
            session.expiry = loop.call_later(delay, connection.close, *EXPIRED)

    def close(self, session: Session) -> None:
        if session.expiry is not None:
            session.expiry.cancel()
        document = self._documents.get(session.doc_id)
        if document is None or session not in document.sessions:
            return
        document.sessions.discard(session)
        self.counts.leave(session.doc_id, session.address, session.principal.user_id)
        if not document.sessions:
            del self._documents[session.doc_id]
            if document.handler is not None:
                task = asyncio.ensure_future(self._unsubscribe(session.doc_id, document.handler))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _unsubscribe(self, doc_id: str, handler: Handler) -> None:
        try:
            await self.bus.unsubscribe(doc_id, handler)
        except Exception as exc:  # the bus is down: its reconnect drops stale handlers anyway
            log.warning("unsubscribe from %s failed: %r", doc_id, exc)

    # Revocation

    def revoke_here(self, doc_id: str, user_id: str, at: float) -> int:
        """Refuse the user's tokens minted before `at` for doc_id; close their live connections
        on this node. Returns how many were closed."""
        self.revocations.add(doc_id, user_id, at)
        document = self._documents.get(doc_id)
        closed = 0
        for session in list(document.sessions if document else ()):
            principal = session.principal
            if principal.user_id == user_id and principal.issued_at <= at:
                if session.connection is not None:
                    session.connection.close(*REVOKED)
                closed += 1
        return closed

    async def revoke(self, doc_id: str, user_id: str) -> tuple[int, float]:
        """Revoke on this node, then tell the others. Returns (closed here, revoked at)."""
        at = time.time()
        closed = self.revoke_here(doc_id, user_id, at)
        payload = json.dumps({"user": user_id, "at": at}).encode()  # REVOKE's payload
        await self.bus.publish(BusMessage(doc_id, REVOKE, self.bus.node_id, 0, "", payload))
        return closed, at

    def _handler(self, doc_id: str) -> Handler:
        def on_bus(message: BusMessage) -> None:
            if message.kind != REVOKE or message.origin == self.bus.node_id:
                return
            try:
                body = json.loads(message.payload)
                user_id, at = str(body["user"]), float(body["at"])
            except (ValueError, KeyError, TypeError):
                log.warning("dropped a malformed revocation for %s", doc_id)
                return
            self.revoke_here(doc_id, user_id, at)

        return on_bus
