"""Two nodes' live documents in one process, on one Postgres, over a deliberately faulty Redis
bus: the receiving document applies every event exactly once, in seq order (invariant 4)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from pycrdt import Doc, Text, TransactionEvent

from server.bus.faults import Faults, FaultyBus
from server.bus.redis_bus import RedisBus
from server.realtime.rooms import Rooms
from server.write.commands import ApplyUpdate
from server.write.documents import DocumentSettings, LiveDocuments
from server.write.handlers import update_proposal
from storage.database import open_database
from storage.event_store import EventStore
from storage.records import EventRecord
from tests.support.pyclient import wait_for
from tests.support.services import RedisServer

Node = tuple[LiveDocuments, FaultyBus]


@pytest.fixture
async def nodes(cluster_db: str, redis_server: RedisServer,
                redis_prefix: str) -> AsyncIterator[tuple[Node, Node, EventStore]]:
    db = open_database(cluster_db, pool_size=4)
    store = EventStore(db)
    settings = DocumentSettings(sweep_seconds=0.3)
    made: list[Node] = []
    for name, seed in (("node-a", 1), ("node-b", 2)):
        bus = FaultyBus(RedisBus(redis_server.url, name, prefix=redis_prefix),
                        Faults(drop=0.25, duplicate=0.3, reorder=0.3, seed=seed))
        await bus.start()
        documents = LiveDocuments(store, bus, Rooms(bus), settings)
        documents.start()
        made.append((documents, bus))
    yield made[0], made[1], store
    for documents, bus in made:
        await documents.close()
        await bus.stop()
    await db.dispose()


async def test_a_room_applies_every_event_of_another_node_once_and_in_order(
    nodes: tuple[Node, Node, EventStore],
) -> None:
    (rooms_a, _), (rooms_b, bus_b), store = nodes
    writer_room = await rooms_a.acquire("gaps")
    reader_room = await rooms_b.acquire("gaps")
    loaded_at = reader_room.writer.document.applied_seq
    applied: list[int] = []
    refused: list[tuple[int, int]] = []
    apply = reader_room.writer.document.apply_event

    def spy(event: EventRecord) -> bool:
        before = reader_room.writer.document.applied_seq
        changed = apply(event)
        if reader_room.writer.document.applied_seq != before:
            applied.append(event.seq)
        elif event.seq > before:
            refused.append((before, event.seq))
        return changed

    reader_room.writer.document.apply_event = spy  # type: ignore[method-assign]

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
        proposal = update_proposal(ApplyUpdate("gaps", updates.pop(), "tester"))
        proposal.done = done
        writer_room.writer.submit(proposal)
        if i % 7 == 0:
            await done  # vary the batch sizes: sometimes one event per commit, sometimes many
    await done
    head = await store.head_seq("gaps")
    await wait_for(lambda: reader_room.writer.document.applied_seq == head, 10,
                   lambda: f"reader at {reader_room.writer.document.applied_seq}, head {head}")
    assert applied == list(range(loaded_at + 1, head + 1))
    assert refused == []
    assert reader_room.writer.document.current_text() == str(text)
    # The faults really happened.
    assert min(bus_b.counts["dropped"], bus_b.counts["duplicated"],
               bus_b.counts["reordered"]) > 0, bus_b.counts
    rooms_a.release(writer_room)
    rooms_b.release(reader_room)
