"""Two nodes' rooms in one process, on one Postgres, over a deliberately faulty Redis bus:
the receiving room applies every event exactly once, in seq order (DESIGN.md invariant 4)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from pycrdt import Doc, Text, TransactionEvent

from server.realtime.bus_faults import Faults, FaultyBus
from server.realtime.redis_bus import RedisBus
from server.realtime.rooms import RoomManager
from server.settings import Settings
from server.write.commands import ApplyUpdate
from storage.database import open_database
from storage.event_store import EventStore
from storage.records import EventRecord
from tests.support.pyclient import wait_for
from tests.support.services import RedisServer

Node = tuple[RoomManager, FaultyBus]


@pytest.fixture
async def nodes(cluster_db: str, redis_server: RedisServer,
                redis_prefix: str) -> AsyncIterator[tuple[Node, Node, EventStore]]:
    db = open_database(cluster_db, pool_size=4)
    store = EventStore(db)
    settings = Settings(database_url=cluster_db, redis_url=redis_server.url,
                        redis_prefix=redis_prefix, room_sweep_seconds=0.3)
    made: list[Node] = []
    for name, seed in (("node-a", 1), ("node-b", 2)):
        bus = FaultyBus(RedisBus(redis_server.url, name, prefix=redis_prefix),
                        Faults(drop=0.25, duplicate=0.3, reorder=0.3, seed=seed))
        await bus.start()
        rooms = RoomManager(store, bus, settings)
        rooms.start()
        made.append((rooms, bus))
    yield made[0], made[1], store
    for rooms, bus in made:
        await rooms.close()
        await bus.stop()
    await db.dispose()


async def test_a_room_applies_every_event_of_another_node_once_and_in_order(
    nodes: tuple[Node, Node, EventStore],
) -> None:
    (rooms_a, _), (rooms_b, bus_b), store = nodes
    writer_room = await rooms_a.acquire("gaps")
    reader_room = await rooms_b.acquire("gaps")
    loaded_at = reader_room.room.applied_seq
    applied: list[int] = []
    refused: list[tuple[int, int]] = []
    apply = reader_room.room.apply_event

    def spy(event: EventRecord) -> None:
        before = reader_room.room.applied_seq
        apply(event)
        if reader_room.room.applied_seq != before:
            applied.append(event.seq)
        elif event.seq > before:
            refused.append((before, event.seq))

    reader_room.room.apply_event = spy  # type: ignore[method-assign]

    doc = Doc()
    text = doc.get("content", type=Text)
    updates: list[bytes] = []

    def keep(event: TransactionEvent) -> None:
        updates.append(event.update)

    doc.observe(keep)
    rng = random.Random(3)
    loop = asyncio.get_running_loop()
    for i in range(300):
        text.insert(rng.randint(0, len(text)), f"<{i}>")
        done: asyncio.Future[EventRecord | None] = loop.create_future()
        writer_room.writer.submit(ApplyUpdate("gaps", updates.pop(), "tester", done=done))
        if i % 7 == 0:
            await done  # vary the batch sizes: sometimes one event per commit, sometimes many
    await done
    head = await store.head_seq("gaps")
    await wait_for(lambda: reader_room.room.applied_seq == head, 10,
                   lambda: f"reader at {reader_room.room.applied_seq}, head {head}")
    assert applied == list(range(loaded_at + 1, head + 1))
    assert refused == []
    assert reader_room.room.current_text() == str(text)
    # The faults really happened.
    assert min(bus_b.counts["dropped"], bus_b.counts["duplicated"],
               bus_b.counts["reordered"]) > 0, bus_b.counts
    rooms_a.release(writer_room)
    rooms_b.release(reader_room)
