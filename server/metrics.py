"""Prometheus metrics at GET /metrics, one registry per app (nothing global).

Counters are bumped where things happen; gauges are read when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from storage.database import Database
from storage.event_store import EventStore
from storage.read_model import ReadModel
from storage.records import EventRecord, NewEvent

FANOUT_COUNTS = {
    "fanout_frames": "Update and presence frames built for a room's broadcast (one per batch, "
                     "not per connection)",
    "fanout_deliveries": "Connections handed one of those frames",
    "frames_encoded": "WebSocket frames built by the realtime side",
    "document_loads": "Documents loaded from the log on this node",
    "sync_answers_encoded": "Sync step 2 answers encoded (joiners at one state share one)",
}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_appended = Counter(
            "palimpsest_events_appended", "Events appended to document logs by this node",
            ["kind"], registry=self.registry,
        )
        self.projector_lag = Gauge(
            "palimpsest_projector_lag_events",
            "Events appended but not yet projected, over every document",
            registry=self.registry,
        )
        self.open_rooms = Gauge(
            "palimpsest_open_rooms", "Documents loaded on this node", registry=self.registry
        )
        self.connections = Gauge(
            "palimpsest_connections", "WebSocket connections on this node",
            registry=self.registry,
        )

    def watch_fanout(self, counts: dict[str, Callable[[], float]]) -> None:
        """Counts kept by the realtime and write sides (frames built, connections served,
        loads, sync answers encoded), read when scraped."""
        for name, read in counts.items():
            gauge = Gauge(f"palimpsest_{name}", FANOUT_COUNTS[name], registry=self.registry)
            gauge.set_function(read)

    def watch(self, open_rooms: Callable[[], float], connections: Callable[[], float]) -> None:
        self.open_rooms.set_function(open_rooms)
        self.connections.set_function(connections)

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data

    async def endpoint(self, read_model: ReadModel | None) -> Response:
        """GET /metrics: the gauges that need a query are read now."""
        if read_model is not None:
            self.projector_lag.set(await read_model.total_lag())
        return Response(self.render(), media_type=CONTENT_TYPE_LATEST)


class CountingEventStore(EventStore):
    """The event store, counting what it appends (every append goes through append_in)."""

    def __init__(self, db: Database, metrics: Metrics) -> None:
        super().__init__(db)
        self.metrics = metrics

    async def append_in(
        self, conn: AsyncConnection, doc_id: str, new: Sequence[NewEvent]
    ) -> list[EventRecord]:
        records = await super().append_in(conn, doc_id, new)
        for record in records:
            self.metrics.events_appended.labels(record.kind).inc()
        return records


