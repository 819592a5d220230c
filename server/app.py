"""The composition root: create_app(settings) builds every engine, client and task.

Nothing is built at import time; the lifespan starts and stops it all in order.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from server.access_api import revoke_endpoint
from server.realtime.bus import Bus, LocalBus
from server.realtime.rooms import RoomManager
from server.realtime.websocket import websocket_endpoint
from server.sessions import Sessions
from server.settings import Settings
from storage.database import is_sqlite, open_database
from storage.event_store import EventStore
from storage.migrate import migrate, require_latest

log = logging.getLogger(__name__)

WRITE_ROLES = {"all", "write"}


def make_bus(settings: Settings, node_id: str) -> Bus:
    if settings.redis_url:
        from server.realtime.redis_bus import RedisBus  # type: ignore[import-not-found,unused-ignore]

        bus: Bus = RedisBus(settings.redis_url, node_id, prefix=settings.redis_prefix)
        return bus
    return LocalBus(node_id)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "node": request.app.state.node_id})


def create_app(settings: Settings) -> Starlette:
    node_id = uuid.uuid4().hex[:12]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if is_sqlite(settings.database_url):
            await migrate(settings.database_url)
        else:
            await require_latest(settings.database_url)
        db = open_database(settings.database_url)
        bus = make_bus(settings, node_id)
        await bus.start()
        store = EventStore(db)
        rooms = RoomManager(store, bus, settings)
        sessions = Sessions(settings.limits, bus)
        app.state.sessions = sessions
        app.state.revocations = sessions.revocations
        app.state.db = db
        app.state.bus = bus
        app.state.store = store
        app.state.rooms = rooms
        try:
            yield
        finally:
            await rooms.close()
            await bus.stop()
            await db.dispose()

    routes: list[BaseRoute] = [Route("/healthz", healthz)]
    if settings.role in WRITE_ROLES:
        routes.append(WebSocketRoute("/ws/{doc_id:path}", websocket_endpoint))
        routes.append(Route("/api/documents/{doc_id}/revoke", revoke_endpoint, methods=["POST"]))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    app.state.node_id = node_id
    return app


def client_dist(settings: Settings) -> Path:
    return Path(settings.client_dist) if settings.client_dist else (
        Path(__file__).resolve().parent.parent / "client_web" / "dist"
    )
