"""The `/ws/{doc_id}` endpoint: one y-websocket connection, from handshake to close."""

from __future__ import annotations

import logging
import re

from starlette.websockets import WebSocket

from server.auth import authenticate, origin_allowed
from server.errors import PalimpsestError, TextFrame, TooLarge
from server.realtime import protocol
from server.realtime.bus import AWARENESS, BusMessage
from server.realtime.connection import Connection
from server.realtime.protocol import (
    AwarenessUpdate,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    parse_message,
)
from server.realtime.rooms import OpenRoom, RoomManager
from server.sessions import Session, Sessions
from server.settings import Settings
from server.write.commands import ApplyUpdate
from server.write.limits import check_awareness_clients
from server.write.read_only import would_change
from server.write.validation import validate_update
from storage.errors import StorageError

log = logging.getLogger(__name__)

DOC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$")


async def websocket_endpoint(websocket: WebSocket) -> None:
    state = websocket.app.state
    settings: Settings = state.settings
    rooms: RoomManager = state.rooms
    doc_id = websocket.path_params["doc_id"]
    if not DOC_ID.match(doc_id):
        await websocket.close(4400, "invalid document id")
        return
    if not origin_allowed(websocket, settings):
        # Before accept: the handshake is answered with HTTP 403 (cross-site hijacking guard).
        await websocket.close(4403, "origin not allowed")
        return
    sessions: Sessions = state.sessions
    try:
        principal = authenticate(websocket, doc_id, settings, sessions.revocations)
        session = await sessions.open(doc_id, _address(websocket), principal)
    except PalimpsestError as exc:
        # After accept, so a browser sees the close code and reason, not a bare failure.
        await websocket.accept()
        await websocket.close(exc.close_code, exc.reason)
        return
    try:
        await websocket.accept()
        try:
            opened = await rooms.acquire(doc_id)
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
            max_queue=settings.limits.outbound_queue,
        )
        sessions.attach(session, conn)
        conn.start()
        try:
            await _serve(conn, opened, settings, session)
        finally:
            await _leave(conn, opened)
            rooms.release(opened)
            conn.close(1000, "")
            await conn.closed.wait()
    finally:
        sessions.close(session)


def _address(websocket: WebSocket) -> str:
    return websocket.client.host if websocket.client is not None else "unknown"


async def _serve(conn: Connection, opened: OpenRoom, settings: Settings,
                 session: Session) -> None:
    room = opened.room
    room.connections.add(conn)
    async with room.lock:
        conn.send(protocol.sync_step1(room.doc.get_state()))
    known = room.awareness.snapshot()
    if known is not None:
        conn.send(protocol.awareness(known))
    websocket = conn.websocket
    while not conn.closing:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        frame = message.get("bytes")
        try:
            if frame is None:
                raise TextFrame("text frames are not part of the y-websocket protocol")
            if len(frame) > settings.limits.frame_bytes:
                raise TooLarge(f"frame over the {settings.limits.frame_bytes}-byte limit")
            session.rate.check(len(frame))
            await _handle(conn, opened, parse_message(frame), settings, session)
        except PalimpsestError as exc:
            conn.close_for(exc)
            return


async def _handle(conn: Connection, opened: OpenRoom, message: protocol.Message,
                  settings: Settings, session: Session) -> None:
    room = opened.room
    if isinstance(message, SyncStep1):
        async with room.lock:
            reply = room.sync_step2_for(message.state_vector)
        conn.send(reply)
    elif isinstance(message, SyncStep2 | SyncUpdate):
        text_only = validate_update(message.update, settings.limits)
        if not conn.can_write:
            # Invariant 7: never applied nor stored. A step 2 that adds nothing (a reader's
            # answer to our step 1) is accepted silently; anything else is answered.
            compare = isinstance(message, SyncStep2) and not session.step2_compared
            session.step2_compared = session.step2_compared or compare
            if would_change(room.doc, message.update, compare_deletions=compare):
                conn.send(protocol.permission_denied("read-only access to this document"))
            return
        session.size.check(len(message.update), settings.limits.document_bytes,
                           lambda: len(room.state()))
        conn.writes_received += 1
        # Even an empty update goes through the writer, so acks stay in message order.
        opened.writer.submit(
            ApplyUpdate(room.doc_id, message.update, conn.actor, conn, conn.writes_received,
                        text_only=text_only)
        )
    elif isinstance(message, AwarenessUpdate):
        fresh, present = room.awareness.apply(message.payload)
        conn.awareness_clients.update(present)
        check_awareness_clients(len(conn.awareness_clients), settings.limits)
        if fresh:
            room.broadcast(protocol.awareness(fresh), exclude=conn)
            await opened.writer.bus.publish(_awareness_message(opened, fresh))
    elif isinstance(message, QueryAwareness):
        known = room.awareness.snapshot()
        if known is not None:
            conn.send(protocol.awareness(known))


def _awareness_message(opened: OpenRoom, payload: bytes) -> BusMessage:
    return BusMessage(opened.room.doc_id, AWARENESS, opened.writer.bus.node_id, 0, "", payload)


async def _leave(conn: Connection, opened: OpenRoom) -> None:
    room = opened.room
    room.connections.discard(conn)
    gone = room.awareness.remove(conn.awareness_clients)
    if gone is not None:
        room.broadcast(protocol.awareness(gone))
        await opened.writer.bus.publish(_awareness_message(opened, gone))
