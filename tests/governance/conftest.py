"""The in-process world of the governance tests: a log on SQLite or PostgreSQL, its projector,
queries, write side and maintenance, without a server."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from server.bus import LocalBus
from server.maintenance import Maintenance
from server.read.freshness import Freshness
from server.read.governance import GovernanceQueries
from server.read.projector import Projector
from server.read.queries import Queries
from server.realtime.rooms import Rooms
from server.write.documents import DocumentSettings, LiveDocuments
from server.write.handlers import WriteSide
from server.write.validation import EMPTY_UPDATE
from storage.database import Database
from storage.event_store import EventStore
from storage.read_model import ReadModel
from storage.records import NewEvent
from tests.read.logs import opened, trace_updates
from tests.support.replay import Trace, load_trace

PATCHES = 2400
T0 = 1_700_000_000.0


@functools.cache
def trace_and_updates() -> tuple[Trace, list[bytes]]:
    trace = load_trace()
    return trace, trace_updates(trace, PATCHES)


@dataclass
class World:
    db: Database
    store: EventStore
    read_model: ReadModel
    projector: Projector
    queries: Queries
    governance: GovernanceQueries
    write: WriteSide
    maintenance: Maintenance
    times: dict[int, float]


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    async with opened(database_url) as db:
        store = EventStore(db)
        read_model = ReadModel(db)
        projector = Projector(store, read_model, snapshot_every=100)
        bus = LocalBus("test")
        documents = LiveDocuments(store, bus, Rooms(bus), DocumentSettings(sweep_seconds=0))
        write = WriteSide(store, documents)
        yield World(db, store, read_model, projector,
                    Queries(store, read_model, Freshness(read_model, timeout=1)),
                    GovernanceQueries(db, 30), write,
                    Maintenance(store, read_model, write, projector, keep_days=None,
                                deleted_retention_days=30), {})
        await projector.stop()
        await documents.close()


async def write_history(world: World) -> None:
    """The trace typed by three people in turns with idle gaps, plus a rename, a named
    version and a restore in the middle."""
    _, updates = trace_and_updates()
    store = world.store
    await store.ensure_document("paper")
    now = T0
    batch: list[NewEvent] = [NewEvent("create", b"", "ann", now, {"title": "Paper"})]
    for i, update in enumerate(updates):
        now += 1.0 if i % 300 else 200.0  # an idle gap every 300 edits closes a revision
        actor = ("ann", "bob", "cy")[(i // 500) % 3]
        batch.append(NewEvent("update", update, actor, now))
        if i == 700:
            batch.append(NewEvent("rename", b"", "bob", now, {"title": "Renamed"}))
        if i == 900:
            batch.append(NewEvent("version", b"", "cy", now, {"seq": 650, "name": "draft"}))
        if i == 1100:  # a restore to the text it already has: an empty update
            batch.append(NewEvent("restore", EMPTY_UPDATE, "ann", now, {"restored_from": 3}))
    for start in range(0, len(batch), 1000):
        for record in await store.append("paper", batch[start : start + 1000]):
            world.times[record.seq] = record.time
    await world.projector.catch_up()


