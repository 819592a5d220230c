"""The composition root: create_app(settings) builds every engine, client and task.

Nothing is built at import time; the lifespan starts and stops it all in order.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from server.access_api import revoke_endpoint
from server.errors import PalimpsestError
from server.http_guard import HttpGuard
from server.metrics import CountingEventStore, Metrics, metrics_endpoint
from server.read import openapi
from server.read.api import command_routes, error_response, not_found, query_routes
from server.read.freshness import Freshness
from server.read.projector import Projector
from server.read.queries import Queries
from server.realtime.bus import Bus, LocalBus
from server.realtime.rooms import RoomManager
from server.realtime.websocket import websocket_endpoint
from server.sessions import Sessions
from server.settings import Settings
from server.web import client_routes
from server.write.service import CommandService
from storage.database import is_sqlite, open_database
from storage.errors import StorageError
from storage.migrate import migrate, require_latest
from storage.read_model import ReadModel

log = logging.getLogger(__name__)

WRITE_ROLES = {"all", "write"}  # the WebSocket endpoint and the API's commands
READ_ROLES = {"all", "read"}  # the API's queries and the browser client
PROJECTOR_ROLES = {"all", "projector"}  # the projector task


def make_bus(settings: Settings, node_id: str) -> Bus:
    bus: Bus = LocalBus(node_id)
    if settings.redis_url:
        from server.realtime.redis_bus import RedisBus

        bus = RedisBus(settings.redis_url, node_id, prefix=settings.redis_prefix)
    if settings.test_bus_faults:
        from server.realtime.bus_faults import Faults, FaultyBus

        bus = FaultyBus(bus, Faults.parse(settings.test_bus_faults))
    return bus


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "node": request.app.state.node_id,
                         "role": request.app.state.settings.role})


async def openapi_schema(_request: Request) -> Response:
    return JSONResponse(openapi.schema())


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
        metrics: Metrics = app.state.metrics
        store = CountingEventStore(db, metrics)
        rooms = RoomManager(store, bus, settings)
        rooms.start()
        sessions = Sessions(settings.limits, bus)
        app.state.sessions = sessions
        app.state.revocations = sessions.revocations
        metrics.watch(lambda: rooms.open_rooms,
                      lambda: sum(len(o.room.connections) for o in rooms._rooms.values()))
        read_model = ReadModel(db)
        freshness = Freshness(read_model, timeout=settings.read_wait_seconds)
        app.state.db = db
        app.state.bus = bus
        app.state.store = store
        app.state.rooms = rooms
        app.state.read_model = read_model
        app.state.queries = Queries(store, read_model, freshness)
        app.state.commands = CommandService(store, rooms, bus)
        projector: Projector | None = None
        if settings.role in PROJECTOR_ROLES:
            projector = Projector(store, read_model, snapshot_every=settings.snapshot_every,
                                  coalesce_seconds=settings.projector_coalesce_seconds)
            projector.on_progress(freshness.notify)
            await projector.start(bus)
        app.state.projector = projector
        try:
            yield
        finally:
            if projector is not None:
                await projector.stop()
            await rooms.close()
            await bus.stop()
            await db.dispose()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/api/openapi.json", openapi_schema),
    ]
    if settings.role in WRITE_ROLES:
        routes.append(WebSocketRoute("/ws/{doc_id:path}", websocket_endpoint))
        routes.append(Route("/api/documents/{doc_id}/revoke", revoke_endpoint, methods=["POST"]))
        routes += command_routes()
    if settings.role in READ_ROLES:
        routes += query_routes()
        routes += client_routes(client_dist(settings))
    handlers: dict[Any, Any] = {
        PalimpsestError: error_response,
        StorageError: error_response,
        404: not_found,
        405: not_found,
    }
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers,
                    middleware=[Middleware(HttpGuard, settings=settings)])
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.node_id = node_id
    return app


def client_dist(settings: Settings) -> Path:
    return Path(settings.client_dist) if settings.client_dist else (
        Path(__file__).resolve().parent.parent / "client_web" / "dist"
    )
