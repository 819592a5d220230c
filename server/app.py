"""The composition root: create_app(settings) builds every engine, client, side and task.

Nothing is built at import time. The three sides meet only here: the write side gets the
realtime side's rooms as its fan-out port, the HTTP edge gets the realtime side's sessions as
its revocation port, and each edge gets its collaborators by name. The lifespan starts and
stops it all in order. `build_projector` is the read side's half, shared with the rebuild.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from server.auth import Access, Revocations
from server.bus import Bus, LocalBus
from server.errors import PalimpsestError
from server.http import openapi
from server.http.access import AccessRoutes
from server.http.command_routes import CommandRoutes
from server.http.errors import error_response, not_found
from server.http.governance_routes import GovernanceRoutes
from server.http.guard import HttpGuard
from server.http.insight_routes import InsightRoutes, StatusCommandRoutes
from server.http.query_routes import QueryRoutes
from server.maintenance import Maintenance
from server.metrics import CountingEventStore, Metrics
from server.read.activity import ActivityQueries, ActivityStream
from server.read.cursors import CursorCodec
from server.read.feed import Feed
from server.read.freshness import Freshness
from server.read.governance import GovernanceQueries
from server.read.insight_freshness import InsightFreshness
from server.read.insights import InsightFollower
from server.read.projector import Projector
from server.read.queries import Queries, worker_queries
from server.read.search import SearchQueries
from server.read.snapshot_cache import RewriteAwareTextCache
from server.read.status import StatusQueries
from server.read.workers import KINDS, ReadPool
from server.realtime.outbound import Outbound
from server.realtime.presence_board import PresenceBoard
from server.realtime.rooms import Rooms
from server.realtime.sessions import Sessions
from server.realtime.websocket import PATH_PREFIX, DocumentSocket
from server.settings import Settings
from server.supervision import Supervisor
from server.web import client_routes
from server.write.documents import DocumentSettings, LiveDocuments
from server.write.fanout import Committed, FanOut, Tee
from server.write.handlers import WriteSide
from server.write.live_document import LiveDocument
from storage.database import is_sqlite, open_database
from storage.errors import StorageError
from storage.event_store import EventStore
from storage.insights import InsightStore
from storage.migrate import migrate, require_latest
from storage.read_model import ReadModel
from storage.revocations import RevocationStore

log = logging.getLogger(__name__)

WRITE_ROLES = {"all", "write"}  # the WebSocket endpoint and the API's commands
READ_ROLES = {"all", "read"}  # the API's queries and the browser client
PROJECTOR_ROLES = {"all", "projector"}  # the projector task


class WholePath(PathConvertor):
    """`path`, newlines included. Starlette's `path` is `.*` inside `^...$`, and `$` matches
    before a final newline: "/ws/doc1%0A" would reach document "doc1". With this convertor
    the endpoint sees the id whole ("doc1\n") and refuses it as invalid."""

    regex = r"[\s\S]*"


register_url_convertor("whole", WholePath())


class PalimpsestApp(Starlette):
    """Starlette, with the document sockets (`/ws/...`) served before its middleware and
    routing, through the same host check (HttpGuard) and the same endpoint: thousands of
    connections stay open for hours, and each would keep the whole dispatching stack's frames
    alive (ServerErrorMiddleware, ExceptionMiddleware, the router, the route's session
    wrappers), about 6 KB a connection. The route stays in `routes` (OpenAPI, tests)."""

    socket_front: tuple[HttpGuard, ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.socket_front
        if front is not None and scope["type"] == "websocket" and _route_path(
                scope).startswith(PATH_PREFIX):
            guard, serve = front
            if not await guard.refused_host(scope, send):  # checked, not wrapped: no frame kept
                try:
                    await serve(scope, receive, send)
                except Exception as exc:  # as the framework's handlers answer the route's
                    with contextlib.suppress(Exception):  # already closed: nothing to say
                        await error_response(WebSocket(scope, receive, send), exc)
            return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def make_bus(settings: Settings, node_id: str, supervisor: Supervisor | None = None) -> Bus:
    bus: Bus = LocalBus(node_id)
    if settings.redis_url:
        from server.bus.redis_bus import RedisBus

        bus = RedisBus(settings.redis_url, node_id, prefix=settings.redis_prefix,
                       supervisor=supervisor)
    if settings.test_bus_faults:
        from server.bus.faults import Faults, FaultyBus

        bus = FaultyBus(bus, Faults.parse(settings.test_bus_faults))
    return bus


def build_projector(store: EventStore, read_model: ReadModel, settings: Settings,
                    supervisor: Supervisor | None = None) -> Projector:
    return Projector(store, read_model, snapshot_every=settings.snapshot_every,
                     coalesce_seconds=settings.projector_coalesce_seconds,
                     lease_seconds=settings.projector_lease_seconds,
                     stall_seconds=settings.health_stall_seconds, supervisor=supervisor)


def _offer(projector: Projector, insights: InsightFollower, doc_id: str,
           events: Sequence[Committed]) -> None:
    offered = [(c.record, c.text_deltas) for c in events]
    projector.offer(doc_id, offered)
    insights.offer(doc_id, offered)


def make_read_pool(settings: Settings) -> ReadPool | None:
    """The workers of heavy reads (server/read/workers.py); None runs them on the loop."""
    if settings.read_pool not in KINDS:
        raise ValueError(f"PALIMPSEST_READ_POOL must be one of {', '.join(KINDS)}, "
                         f"not {settings.read_pool!r}")
    if settings.read_pool == "off":
        return None
    factory = functools.partial(worker_queries, settings.database_url,
                                settings.read_wait_seconds)
    return ReadPool(factory, kind=settings.read_pool, workers=settings.read_workers,
                    queue=settings.read_queue, wait=settings.read_queue_seconds)


def create_app(settings: Settings) -> Starlette:
    node_id = uuid.uuid4().hex[:12]
    metrics = Metrics()
    db = open_database(settings.database_url)  # engines connect on first use, in the loop
    supervisor = Supervisor()  # every long-lived task of the node runs under it
    bus = make_bus(settings, node_id, supervisor)
    store = CountingEventStore(db, metrics)
    store.database_clock = True  # event and document times from the database's clock
    read_model = ReadModel(db)
    revocations = Revocations(log=RevocationStore(db))
    access = Access(settings, revocations)

    rooms = Rooms(bus)  # the realtime side: the write side's fan-out port
    projector: Projector | None = None
    insights: InsightFollower | None = None
    fanout: FanOut = rooms
    if settings.role in PROJECTOR_ROLES:
        projector = build_projector(store, read_model, settings, supervisor)
        # The status, activity and search read models: their own follower of the log.
        insights = InsightFollower(store, db, supervisor=supervisor,
                                   leased=lambda: projector.leases if projector else [])
        if settings.role in WRITE_ROLES and settings.projector_same_process:
            # In one process the projector and the insight follower take what the writers
            # commit, with the text deltas of their own apply, instead of reading the log
            # and each applying it again to a Doc of its own.
            fanout = Tee(rooms, functools.partial(_offer, projector, insights))
    documents = LiveDocuments(store, bus, fanout, DocumentSettings(
        max_batch=settings.max_batch, grace_seconds=settings.room_grace_seconds,
        sweep_seconds=settings.room_sweep_seconds,
        commit_retry_seconds=settings.commit_retry_seconds,
        stall_seconds=settings.health_stall_seconds), supervisor)
    write = WriteSide(store, documents)
    sessions = Sessions(settings.limits, bus, revocations)  # the revocation port
    freshness = Freshness(read_model, timeout=settings.read_wait_seconds)
    read_pool = make_read_pool(settings) if settings.role in READ_ROLES else None
    queries = Queries(store, read_model, freshness, pool=read_pool,
                      max_diff_events=settings.max_diff_events,
                      cursors=CursorCodec(settings.secret))
    snapshot_texts = RewriteAwareTextCache()  # forgets a document's texts when it is rewritten
    queries.snapshot_texts = snapshot_texts
    governance = GovernanceQueries(db, settings.deleted_retention_days)
    feed = Feed(store)  # renames, restores, named versions, to readers as they commit
    if projector is not None:
        projector.on_progress(freshness.notify)
    insight_freshness = InsightFreshness(store, InsightStore(db),
                                         timeout=settings.read_wait_seconds)
    if insights is not None:
        assert projector is not None
        insights.on_progress(insight_freshness.notify)
        projector.on_progress(insights.wake)  # it holds the document's lease now
    statuses = StatusQueries(db, queries, insight_freshness)
    activity_stream = ActivityStream()
    presence = PresenceBoard(rooms, bus, supervisor=supervisor)
    # Compaction and purging on a schedule (off unless PALIMPSEST_MAINTENANCE_INTERVAL_SECONDS).
    maintenance = Maintenance(store, read_model, write, None, keep_days=settings.keep_days,
                              deleted_retention_days=settings.deleted_retention_days)
    metrics.watch(lambda: documents.open_count, lambda: rooms.connection_count)
    metrics.watch_fanout({
        "fanout_frames": lambda: rooms.counts.frames,
        "fanout_deliveries": lambda: rooms.counts.deliveries,
        "frames_encoded": lambda: Outbound.encoded,
        "document_loads": lambda: documents.loads,
        "sync_answers_encoded": lambda: LiveDocument.answers_encoded,
    })

    async def healthz(_request: Request) -> Response:
        # 503 naming the problem when a long-lived task died or keeps failing, the projector
        # has made no progress for health_stall_seconds while behind (or cannot reach the
        # database), or a document cannot commit for that long. Reads no database itself.
        problems = supervisor.problems() + documents.problems()
        body: dict[str, Any] = {"node": node_id, "role": settings.role}
        if projector is not None:
            problems += projector.problems()
            body["projector"] = {"owner": projector.owner, "lag": projector.lag,
                                 "leases": len(projector.leases)}
        body["status"] = "unhealthy" if problems else "ok"
        body["problems"] = problems
        body["tasks"] = supervisor.status()
        return JSONResponse(body, status_code=503 if problems else 200)

    async def openapi_schema(_request: Request) -> Response:
        return JSONResponse(openapi.schema())

    async def metrics_endpoint(_request: Request) -> Response:
        return await metrics.endpoint(read_model)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if is_sqlite(settings.database_url):
            await migrate(settings.database_url)
        else:
            await require_latest(settings.database_url)
        await revocations.load()
        if settings.revocation_refresh_seconds > 0:
            supervisor.spawn("revocations", functools.partial(
                revocations.follow, settings.revocation_refresh_seconds, sessions.revoke_here))
        await bus.start()
        await bus.subscribe_all(queries.on_bus)
        await bus.subscribe_all(feed.on_bus)
        documents.start()
        if projector is not None:
            await projector.start(bus)
        if insights is not None:
            await insights.start(bus)
        await activity_stream.start(bus)
        if settings.role in WRITE_ROLES:
            await presence.start()
        if settings.role in WRITE_ROLES:
            maintenance.start(settings.maintenance_interval_seconds)
        try:
            yield
        finally:
            await maintenance.stop()
            await feed.stop()
            await presence.stop()
            if insights is not None:
                await insights.stop()
            if projector is not None:
                await projector.stop()
            rooms.close_all(1001, "server shutting down")
            if read_pool is not None:
                await read_pool.stop()
            await documents.close()
            await bus.stop()
            await supervisor.stop_all()
            await db.dispose()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/api/openapi.json", openapi_schema),
    ]
    if settings.role in WRITE_ROLES:
        socket = DocumentSocket(settings, access, sessions, documents, rooms, write, store)
        routes.append(WebSocketRoute(PATH_PREFIX + "{doc_id:whole}", socket.endpoint))
        routes += AccessRoutes(access, sessions).routes()
        routes += CommandRoutes(access, write, queries, governance).routes()
        routes += GovernanceRoutes(access, write, queries, governance).routes()
        routes += StatusCommandRoutes(access, write).routes()
    if settings.role in READ_ROLES:
        routes += QueryRoutes(access, queries, governance, feed, statuses).routes()
        routes += InsightRoutes(
            access, governance, statuses, ActivityQueries(db, insight_freshness),
            activity_stream, SearchQueries(db, queries, insight_freshness),
            presence.who if settings.role in WRITE_ROLES else None).routes()
        routes += client_routes(client_dist(settings))
    handlers: dict[Any, Any] = {
        PalimpsestError: error_response,
        StorageError: error_response,
        404: not_found,
        405: not_found,
    }
    app = PalimpsestApp(routes=routes, lifespan=lifespan, exception_handlers=handlers,
                        middleware=[Middleware(HttpGuard, settings=settings)])
    if settings.role in WRITE_ROLES:
        app.socket_front = (HttpGuard(socket.asgi, settings), socket.asgi)
    return app


def client_dist(settings: Settings) -> Path:
    return Path(settings.client_dist) if settings.client_dist else (
        Path(__file__).resolve().parent.parent / "client_web" / "dist"
    )
