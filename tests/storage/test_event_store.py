"""The event store contract, run unchanged against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from storage.database import open_database
from storage.errors import DocumentNotFound
from storage.event_store import EventStore
from storage.records import NewEvent, SnapshotRecord
from tests.support.pyclient import wait_for


def event(i: int, actor: str = "ann") -> NewEvent:
    return NewEvent("update", f"payload-{i}".encode(), actor, time.time(), {"i": i})


@pytest.fixture
async def store(database_url: str, backend: str) -> AsyncIterator[EventStore]:
    db = open_database(database_url)
    if backend == "sqlite":
        from storage.migrate import migrate

        await migrate(database_url)
    yield EventStore(db)
    await db.dispose()


async def test_append_gives_consecutive_seqs_and_read_returns_them(store: EventStore) -> None:
    await store.ensure_document("doc")
    first = await store.append("doc", [event(1), event(2)])
    second = await store.append("doc", [event(3)])
    assert [r.seq for r in first + second] == [1, 2, 3]
    read = await store.read_list("doc")
    assert [(r.seq, r.payload, r.meta) for r in read] == [
        (1, b"payload-1", {"i": 1}), (2, b"payload-2", {"i": 2}), (3, b"payload-3", {"i": 3})]
    assert [r.seq for r in await store.read_list("doc", after_seq=1, until_seq=2)] == [2]
    assert await store.head_seq("doc") == 3


async def test_logs_of_different_documents_are_independent(store: EventStore) -> None:
    for doc in ("a", "b"):
        await store.ensure_document(doc)
    await store.append("a", [event(1)])
    await store.append("b", [event(1), event(2)])
    await store.append("a", [event(2)])
    assert [r.seq for r in await store.read_list("a")] == [1, 2]
    assert [r.seq for r in await store.read_list("b")] == [1, 2]


async def test_append_to_unknown_document_fails_and_stores_nothing(store: EventStore) -> None:
    with pytest.raises(DocumentNotFound):
        await store.append("nope", [event(1)])
    assert await store.read_list("nope") == []


async def test_ensure_document_creates_once(store: EventStore) -> None:
    assert await store.ensure_document("doc", "Title")
    assert not await store.ensure_document("doc", "Other")
    record = await store.document("doc")
    assert record is not None and record.title == "Title" and record.head_seq == 0


async def test_many_concurrent_appenders_keep_seq_gap_free(store: EventStore) -> None:
    await store.ensure_document("doc")
    appenders, per_appender = 16, 10

    async def append_many(worker: int) -> None:
        for i in range(per_appender):
            await store.append("doc", [event(worker * 100 + i), event(worker * 100 + i)])

    await asyncio.gather(*(append_many(w) for w in range(appenders)))
    seqs = [r.seq for r in await store.read_list("doc")]
    assert seqs == list(range(1, appenders * per_appender * 2 + 1))
    assert await store.head_seq("doc") == len(seqs)


async def test_reader_polling_during_a_held_transaction_never_skips(store: EventStore) -> None:
    await store.ensure_document("doc")
    await store.append("doc", [event(0)])
    seen: list[int] = []
    stop = asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            last = seen[-1] if seen else 0
            seen.extend(r.seq for r in await store.read_list("doc", after_seq=last))
            await asyncio.sleep(0.001)

    poller = asyncio.create_task(poll())
    held_open = asyncio.Event()
    release = asyncio.Event()

    async def slow_transaction() -> None:
        async with store.db.write() as conn:
            await store.append_in(conn, "doc", [event(1)])
            held_open.set()
            await release.wait()

    slow = asyncio.create_task(slow_transaction())
    await asyncio.wait_for(held_open.wait(), 10)
    later = [asyncio.create_task(store.append("doc", [event(i)])) for i in range(2, 12)]
    await asyncio.sleep(0.3)  # give the later appenders time to try to overtake
    release.set()
    await asyncio.wait_for(asyncio.gather(slow, *later), 30)
    await wait_for(lambda: len(seen) >= 12, 10, lambda: f"reader saw {seen}")
    stop.set()
    await poller
    assert seen == list(range(1, 13))
    assert [r.meta["i"] for r in await store.read_list("doc")][:2] == [0, 1]


async def test_snapshots_are_found_at_or_before_a_seq(store: EventStore) -> None:
    await store.ensure_document("doc")
    for seq in (10, 20):
        await store.save_snapshot(SnapshotRecord("doc", seq, b"state", f"text{seq}", 1.0))
    assert (await store.snapshot_at_or_before("doc", 15)).seq == 10  # type: ignore[union-attr]
    assert (await store.snapshot_at_or_before("doc")).text == "text20"  # type: ignore[union-attr]
    assert await store.snapshot_at_or_before("doc", 5) is None
