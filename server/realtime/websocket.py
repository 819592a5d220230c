"""The `/ws/{doc_id}` endpoint: one y-websocket connection, from handshake to close.

It admits the connection (origin, token, limits), joins the document's room, and turns each
message into what it means: sync reads answered from the write side's live document, updates
turned into `ApplyUpdate` commands for the write side, presence relayed.
"""

from __future__ import annotations

import logging

from starlette.websockets import WebSocket

from server.auth import Access, origin_allowed
from server.errors import PalimpsestError, TextFrame, TooLarge
from server.realtime import protocol
from server.realtime.connection import Connection
from server.realtime.limits import check_awareness_clients
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
from server.write.read_only import would_change
from server.write.validation import valid_doc_id, validate_update
from storage.errors import StorageError

log = logging.getLogger(__name__)


class DocumentSocket:
    """The endpoint, with its collaborators named (built by the composition root)."""

    def __init__(self, settings: Settings, access: Access, sessions: Sessions,
                 documents: LiveDocuments, rooms: Rooms, write: WriteSide) -> None:
        self.settings = settings
        self.access = access
        self.sessions = sessions
        self.documents = documents
        self.rooms = rooms
        self.write = write

    async def endpoint(self, websocket: WebSocket) -> None:
        doc_id = websocket.path_params["doc_id"]
        if not valid_doc_id(doc_id):
            await websocket.close(4400, "invalid document id")
            return
        if not origin_allowed(websocket, self.settings):
            # Before accept: the handshake is answered with HTTP 403 (cross-site hijacking).
            await websocket.close(4403, "origin not allowed")
            return
        try:
            principal = self.access.authenticate(websocket, doc_id)
            session = await self.sessions.open(doc_id, _address(websocket), principal)
        except PalimpsestError as exc:
            # After accept, so a browser sees the close code and reason, not a bare failure.
            await websocket.accept()
            await websocket.close(exc.close_code, exc.reason)
            return
        try:
            await websocket.accept()
            try:
                opened = await self.documents.acquire(doc_id)
            except StorageError as exc:
                log.warning("cannot open %s: %s", doc_id, exc)
                await websocket.close(1013, "storage unavailable; retry")
                return
            conn = Connection(
                websocket,
                doc_id,
                principal.actor,
                can_write=principal.can_write,
                wants_ack=websocket.query_params.get("ack") == "1",
                max_queue=self.settings.limits.outbound_queue,
            )
            self.sessions.attach(session, conn)
            conn.start()
            room = await self.rooms.join(conn)
            try:
                await self._serve(conn, room, opened, session)
            finally:
                await self.rooms.leave(room, conn)
                self.documents.release(opened)
                conn.close(1000, "")
                await conn.closed.wait()
        finally:
            self.sessions.close(session)

    async def _serve(self, conn: Connection, room: Room, opened: OpenDocument,
                     session: Session) -> None:
        conn.send(protocol.sync_step1(await opened.writer.state_vector()))
        known = room.awareness.snapshot()
        if known is not None:
            conn.send(protocol.awareness(known))
        limits = self.settings.limits
        websocket = conn.websocket
        while not conn.closing:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("bytes")
            try:
                if frame is None:
                    raise TextFrame("text frames are not part of the y-websocket protocol")
                if len(frame) > limits.frame_bytes:
                    raise TooLarge(f"frame over the {limits.frame_bytes}-byte limit")
                session.rate.check(len(frame))
                await self._handle(conn, room, opened, parse_message(frame), session)
            except PalimpsestError as exc:
                conn.close_for(exc)
                return

    async def _handle(self, conn: Connection, room: Room, opened: OpenDocument,
                      message: protocol.Message, session: Session) -> None:
        writer = opened.writer
        if isinstance(message, SyncStep1):
            conn.send(protocol.sync_step2(await writer.missing_from(message.state_vector)))
        elif isinstance(message, SyncStep2 | SyncUpdate):
            limits = self.settings.limits
            text_only = validate_update(message.update, limits)
            if not conn.can_write:
                # Invariant 7: never applied nor stored. A step 2 that adds nothing (a reader's
                # answer to our step 1) is accepted silently; anything else is answered.
                compare = isinstance(message, SyncStep2) and not session.step2_compared
                session.step2_compared = session.step2_compared or compare
                if would_change(writer.document.doc, message.update, compare_deletions=compare):
                    conn.send(protocol.permission_denied("read-only access to this document"))
                return
            session.size.check(len(message.update), limits.document_bytes,
                               lambda: len(writer.document.state()))
            conn.writes_received += 1
            # Even an empty update goes through the writer, so acks stay in message order.
            self.write.propose_update(
                writer, ApplyUpdate(conn.doc_id, message.update, conn.actor, text_only),
                Origin(conn.id, conn.writes_received))
        elif isinstance(message, AwarenessUpdate):
            fresh, present = room.awareness.apply(message.payload)
            conn.awareness_clients.update(present)
            check_awareness_clients(len(conn.awareness_clients), self.settings.limits)
            if fresh:
                await room.share_presence(fresh, exclude=conn)
        elif isinstance(message, QueryAwareness):
            known = room.awareness.snapshot()
            if known is not None:
                conn.send(protocol.awareness(known))


def _address(websocket: WebSocket) -> str:
    return websocket.client.host if websocket.client is not None else "unknown"
