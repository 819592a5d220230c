"""The `/ws/{doc_id}` endpoint: one y-websocket connection, from handshake to close.

It admits the connection (origin, token, limits, and a reader only to a document that exists),
joins the document's room, and turns each message into what it means: sync reads answered from
the write side's live document, updates turned into `ApplyUpdate` commands for the write side,
presence checked (server.realtime.awareness) and relayed. A connection over its message or byte
rate is slowed down, not closed. Why every connection ended is logged here, at INFO, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.auth import Access, Principal, origin_allowed
from server.errors import NotFound, PalimpsestError, TextFrame, TooLarge
from server.realtime import protocol
from server.realtime.awareness import Rules
from server.realtime.connection import Connection
from server.realtime.protocol import (
    AwarenessUpdate,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    parse_message,
)
from server.realtime.rooms import Room, Rooms
from server.realtime.sessions import Session, Sessions
from server.settings import Settings
from server.write.commands import ApplyUpdate
from server.write.documents import LiveDocuments, OpenDocument
from server.write.fanout import Origin
from server.write.handlers import WriteSide
from server.write.read_only import READ_ONLY_MESSAGE, would_change
from server.write.validation import valid_doc_id, validate_update
from storage.errors import StorageError
from storage.event_store import EventStore

log = logging.getLogger(__name__)

STORAGE_DOWN = (1013, "storage unavailable; retry")
PATH_PREFIX = "/ws/"  # then the document id, whole (newlines included: refused as invalid)


@dataclass(slots=True)
class _Ending:
    """How one connection ended, for its log line."""

    doc_id: str
    address: str
    user: str | None = None
    code: int | None = None
    reason: str = ""
    by: str = "server"
    note: str = ""

    def set(self, code: int, reason: str, by: str = "server") -> None:
        if self.code is None:
            self.code, self.reason, self.by = code, reason, by

    def log(self) -> None:
        log.info("websocket closed: code=%s by=%s reason=%r doc=%r user=%r address=%s%s",
                 self.code, self.by, self.reason, self.doc_id, self.user, self.address,
                 f" ({self.note})" if self.note else "")


class DocumentSocket:
    """The endpoint, with its collaborators named (built by the composition root)."""

    def __init__(self, settings: Settings, access: Access, sessions: Sessions,
                 documents: LiveDocuments, rooms: Rooms, write: WriteSide,
                 store: EventStore) -> None:
        self.settings = settings
        self.access = access
        self.sessions = sessions
        self.documents = documents
        self.rooms = rooms
        self.write = write
        self.store = store
        self.awareness_rules = Rules.from_limits(settings.limits)

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The endpoint as a plain ASGI app for `/ws/...` (server.app serves it before the
        framework's routing and middleware: a connection lives for hours, and every frame of
        the stack that dispatched it lives as long, a few KB each)."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        scope["path_params"] = {"doc_id": path[len(PATH_PREFIX):]}
        websocket = WebSocket(scope, receive, send)
        ending = _Ending(websocket.path_params["doc_id"], _address(websocket))
        try:
            await self._connect(websocket, ending)
        except PalimpsestError as exc:  # e.g. deleted while it loaded: the code clients act on
            ending.set(exc.close_code, exc.reason)
            with contextlib.suppress(Exception):  # unless a close went out already
                await websocket.close(exc.close_code, exc.reason)
        except BaseException as exc:
            ending.set(1011, f"internal error: {exc!r}"[:123])
            raise
        finally:
            ending.log()

    async def endpoint(self, websocket: WebSocket) -> None:
        """The same, as a starlette route's endpoint."""
        await self.asgi(websocket.scope, websocket._receive, websocket._send)

    async def _refuse(self, websocket: WebSocket, ending: _Ending, code: int, reason: str,
                      *, accept: bool = True) -> None:
        """Close at the handshake. Accepted first, so a browser sees the code and reason;
        without accepting, uvicorn answers the handshake with HTTP 403."""
        ending.set(code, reason)
        if accept:
            await websocket.accept()
        await websocket.close(code, reason)

    async def _connect(self, websocket: WebSocket, ending: _Ending) -> None:
        doc_id = ending.doc_id
        if not valid_doc_id(doc_id):
            await self._refuse(websocket, ending, 4400, "invalid document id")
            return
        if not origin_allowed(websocket, self.settings):
            # Before accept: the handshake is answered with HTTP 403 (cross-site hijacking).
            await self._refuse(websocket, ending, 4403, "origin not allowed", accept=False)
            return
        try:
            principal = self.access.authenticate(websocket, doc_id)
            ending.user = principal.user_id or principal.actor
            await self._must_exist_for(principal, doc_id)
            session = await self.sessions.open(doc_id, ending.address, principal)
        except PalimpsestError as exc:
            await self._refuse(websocket, ending, exc.close_code, exc.reason)
            return
        except StorageError as exc:
            log.warning("cannot look up %s: %s", doc_id, exc)
            await self._refuse(websocket, ending, *STORAGE_DOWN)
            return
        try:
            await websocket.accept()
            try:
                opened = await self.documents.acquire(doc_id)
            except StorageError as exc:
                log.warning("cannot open %s: %s", doc_id, exc)
                ending.set(*STORAGE_DOWN)
                # The client may have given up meanwhile (a pool wait lasts 30 s).
                with contextlib.suppress(WebSocketDisconnect):
                    await websocket.close(*STORAGE_DOWN)
                return
            await self._live(websocket, principal, session, opened, ending)
        finally:
            self.sessions.close(session)

    async def _must_exist_for(self, principal: Principal, doc_id: str) -> None:
        """Only a writer creates a document by connecting to it (the HTTP API refuses readers
        too): for anyone else a document that does not exist is 4404, before anything loads
        it. A document open on this node exists: no query then."""
        if principal.can_write or self.documents.get(doc_id) is not None:
            return
        if await self.store.document(doc_id) is None:
            raise NotFound("no such document")

    async def _live(self, websocket: WebSocket, principal: Principal, session: Session,
                    opened: OpenDocument, ending: _Ending) -> None:
        limits = self.settings.limits
        conn = Connection(
            websocket,
            ending.doc_id,
            principal.actor,
            can_write=principal.can_write,
            wants_ack=websocket.query_params.get("ack") == "1",
            max_queue=limits.outbound_queue,
            max_queue_bytes=limits.outbound_queue_bytes,
            send_timeout=limits.send_timeout,
            user=principal.user_id,
        )
        _release_handshake(websocket)
        self.sessions.attach(session, conn)
        conn.start()
        room: Room | None = None
        left: tuple[int, str] | None = None
        try:
            room = await self.rooms.join(conn, self.awareness_rules)
            left = await self._serve(conn, room, opened, session)
        finally:
            if room is not None:
                await self.rooms.leave(room, conn)
            self.documents.release(opened)
            conn.close(1000, "")
            await conn.wait_closed()
            status = conn.close_status
            if left is not None and (status == (1000, "") or status is None):
                ending.set(*left, by="client")
            elif status is not None:
                ending.set(*status)
            if conn.aborted:
                ending.note = f"transport aborted: {conn.aborted}"
            if conn.dropped_bytes:
                ending.note += (", " if ending.note else "") + (
                    f"{conn.dropped_bytes} unsent bytes dropped")

    async def _serve(self, conn: Connection, room: Room, opened: OpenDocument,
                     session: Session) -> tuple[int, str] | None:
        """Read and handle messages until the connection ends. The client's close code and
        reason when it left, None when the server closed it."""
        conn.send(protocol.sync_step1(await opened.writer.state_vector()))
        known = room.presence_frame()
        if known is not None:
            conn.send(known)
        limits = self.settings.limits
        websocket = conn.websocket
        # The server's receive itself, not starlette's wrapper: one coroutine frame less
        # waiting for every idle connection (accepted: only receive or disconnect come now).
        receive = websocket._receive
        while not conn.closing:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                websocket.client_state = WebSocketState.DISCONNECTED
                return int(message.get("code") or 1005), str(message.get("reason") or "")
            frame = message.get("bytes")
            try:
                if frame is None:
                    raise TextFrame("text frames are not part of the y-websocket protocol")
                if len(frame) > limits.frame_bytes:
                    raise TooLarge(f"frame over the {limits.frame_bytes}-byte limit")
                wait = session.rate.delay(len(frame))
                if wait > 0:
                    # Over its rate: handle it later, and read nothing meanwhile (uvicorn stops
                    # reading the socket once its small queue is full: TCP backpressure).
                    await asyncio.sleep(wait)
                    if conn.closing:
                        return None
                await self._handle(conn, room, opened, parse_message(frame), session)
            except PalimpsestError as exc:
                conn.close_for(exc)
                return None
        return None

    async def _handle(self, conn: Connection, room: Room, opened: OpenDocument,
                      message: protocol.Message, session: Session) -> None:
        writer = opened.writer
        if isinstance(message, SyncStep1):
            conn.send(room.sync_step2(await writer.missing_from(message.state_vector)))
        elif isinstance(message, SyncStep2 | SyncUpdate):
            limits = self.settings.limits
            text_only = validate_update(message.update, limits)
            if not conn.can_write or writer.document.read_only:
                # Invariant 7: never applied nor stored. A step 2 that adds nothing (a reader's
                # answer to our step 1) is accepted silently; anything else is answered. A
                # published or archived document is read-only for everyone.
                compare = isinstance(message, SyncStep2) and not session.step2_compared
                session.step2_compared = session.step2_compared or compare
                if would_change(writer.document.doc, message.update, compare_deletions=compare):
                    conn.send(protocol.permission_denied(READ_ONLY_MESSAGE))
                return
            session.size.check(len(message.update), limits.document_bytes,
                               lambda: len(writer.document.state()))
            conn.writes_received += 1
            # Even an empty update goes through the writer, so acks stay in message order.
            self.write.propose_update(
                writer, ApplyUpdate(conn.doc_id, message.update, conn.actor, text_only),
                Origin(conn.id, conn.writes_received))
        elif isinstance(message, AwarenessUpdate):
            applied = room.awareness.apply(conn.id, message.payload, user=conn.user)
            if applied.refused and not session.awareness_refused:
                session.awareness_refused = True  # once per connection: the log stays readable
                client, why = applied.refused[0]
                log.info("awareness dropped on %s from connection %s (%s): client %s: %s",
                         conn.doc_id, conn.id, conn.user or conn.actor, client, why)
            await room.presence_from(conn, applied)
        elif isinstance(message, QueryAwareness):
            known = room.presence_frame()
            if known is not None:
                conn.send(known)


def _release_handshake(websocket: WebSocket) -> None:
    """The handshake's headers and query were read (host, origin, token, options) and are not
    read again; a connection lives for hours, so let them go (about 2 KB each)."""
    websocket.scope["headers"] = []
    for cached in ("_headers", "_query_params", "_url", "_cookies"):
        websocket.__dict__.pop(cached, None)


def _address(websocket: WebSocket) -> str:
    return websocket.client.host if websocket.client is not None else "unknown"
