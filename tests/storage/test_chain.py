"""The hash chain, on SQLite and PostgreSQL: appends chain under the row lock, a changed byte is
found at exactly its seq, the migration chains an existing store, and `palimpsest verify`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import select, text, update

from storage import chain
from storage.database import Database, open_database, open_database_nopool
from storage.event_store import EventStore
from storage.integrity import hash_at, verify_document
from storage.migrate import _config, migrate
from storage.records import NewEvent
from storage.schema import documents, events
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(120)


# The events table as the code before migration 0005 knew it.
OLD_EVENTS = sa.table(
    "events", sa.column("doc_id", sa.String), sa.column("seq", sa.BigInteger),
    sa.column("kind", sa.String), sa.column("payload", sa.LargeBinary),
    sa.column("actor", sa.Text), sa.column("time", sa.Float), sa.column("meta", sa.JSON))


def event(i: int, actor: str = "ann") -> NewEvent:
    return NewEvent("update", f"payload-{i}".encode(), actor, 1000.0 + i / 7, {"i": i, "é": "ü"})


@pytest.fixture
async def store(database_url: str, backend: str) -> AsyncIterator[EventStore]:
    if backend == "sqlite":
        await migrate(database_url)
    db = open_database(database_url)
    yield EventStore(db)
    await db.dispose()


async def test_each_event_chains_on_the_one_before_in_commit_order(store: EventStore) -> None:
    await store.ensure_document("doc")
    await store.ensure_document("other")
    await asyncio.gather(*(store.append("doc", [event(i), event(i + 100)]) for i in range(20)),
                         store.append("other", [event(1)]))
    stored = await store.read_list("doc")
    assert [r.seq for r in stored] == list(range(1, 41))
    assert [r.hash for r in chain.link(None, stored)] == [r.hash for r in stored]
    verdict = await verify_document(store, "doc")
    assert verdict.ok and verdict.events == 40 and verdict.head_hash == stored[-1].hash
    assert await hash_at(store.db, "doc", 0) == chain.GENESIS
    assert await hash_at(store.db, "doc", 7) == stored[6].hash


async def alter_one_byte(db: Database, doc_id: str, seq: int, column: str) -> None:
    """Change one stored byte of an event: its payload, or its meta's stored JSON text."""
    where = (events.c.doc_id == doc_id) & (events.c.seq == seq)
    async with db.write() as conn:
        if column == "payload":
            payload = bytearray((await conn.execute(select(events.c.payload).where(where)))
                                .scalar_one())
            payload[3] ^= 0x01
            await conn.execute(update(events).where(where).values(payload=bytes(payload)))
            return
        meta = "meta::text" if db.dialect == "postgresql" else "meta"
        cast = "::json" if db.dialect == "postgresql" else ""
        changed = await conn.execute(text(
            f"UPDATE events SET meta = replace({meta}, '\"i\": {seq}', '\"i\": {seq + 1}')"
            f"{cast} WHERE doc_id = :d AND seq = :s"), {"d": doc_id, "s": seq})
        assert changed.rowcount == 1


@pytest.mark.parametrize("column", ["payload", "meta"])
async def test_one_altered_byte_is_found_at_exactly_its_seq(store: EventStore,
                                                           column: str) -> None:
    await store.ensure_document("doc")
    for i in range(1, 31):
        await store.append("doc", [event(i)])
    await alter_one_byte(store.db, "doc", 17, column)
    verdict = await verify_document(store, "doc")
    assert verdict.first_broken == 17, verdict
    assert verdict.events == 17


async def test_a_removed_last_event_is_found(store: EventStore) -> None:
    await store.ensure_document("doc")
    await store.append("doc", [event(i) for i in range(1, 6)])
    async with store.db.write() as conn:
        await conn.execute(events.delete().where(events.c.doc_id == "doc", events.c.seq == 5))
    assert (await verify_document(store, "doc")).first_broken == 5


async def test_the_migration_chains_an_existing_store(database_url: str, backend: str,
                                                      request: pytest.FixtureRequest) -> None:
    if backend == "postgres":
        from tests.conftest import _db_names

        pg = request.getfixturevalue("pg_server")
        database_url = pg.create_database(f"premigration_{next(_db_names)}")
    engine_url = database_url

    def to_0002(connection: object) -> None:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")

    engine = open_database_nopool(engine_url)
    async with engine.begin() as conn:
        await conn.run_sync(to_0002)
        # Rows as the code before 0005 wrote them: no hashes anywhere.
        await conn.execute(documents.insert().values(id="old", title="", head_seq=3,
                                                     created_at=1.0))
        await conn.execute(OLD_EVENTS.insert(), [
            {"doc_id": "old", "seq": seq, "kind": "update", "payload": f"p{seq}".encode(),
             "actor": "ann", "time": 10.0 + seq, "meta": {"n": seq}} for seq in (1, 2, 3)])
    await engine.dispose()
    await migrate(database_url)
    db = open_database(database_url)
    try:
        store = EventStore(db)
        verdict = await verify_document(store, "old")
        assert verdict.ok and verdict.events == 3
        expected = chain.link(None, await store.read_list("old"))
        assert verdict.head_hash == expected[-1].hash
        # Appending goes on chaining from the migrated head.
        await store.append("old", [event(4)])
        assert (await verify_document(store, "old")).ok
    finally:
        await db.dispose()


def _palimpsest(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_verify_command_reports_the_first_broken_seq_and_exits_1(
        store: EventStore, database_url: str) -> None:
    await store.ensure_document("doc")
    await store.ensure_document("fine")
    await store.append("doc", [event(i) for i in range(1, 11)])
    await store.append("fine", [event(1)])
    ok = await asyncio.to_thread(_palimpsest, database_url, "verify")
    assert ok.returncode == 0, ok.stderr
    assert "2 of 2 documents OK" in ok.stdout
    await alter_one_byte(store.db, "doc", 4, "payload")
    broken = await asyncio.to_thread(_palimpsest, database_url, "verify", "--doc", "doc")
    assert broken.returncode == 1
    assert "doc: BROKEN at seq 4" in broken.stderr + broken.stdout
    assert "0 of 1 documents OK" in broken.stdout


async def test_verify_beside_a_live_appender_finds_nothing_broken(store: EventStore) -> None:
    await store.ensure_document("doc")
    await store.append("doc", [event(i) for i in range(1, 300)])
    stop = asyncio.Event()

    async def keep_appending() -> None:
        i = 1000
        while not stop.is_set():
            await store.append("doc", [event(i)])
            i += 1

    appender = asyncio.create_task(keep_appending())
    try:
        for _ in range(10):
            verdict = await verify_document(store, "doc")
            assert verdict.ok, verdict
    finally:
        stop.set()
        await appender
