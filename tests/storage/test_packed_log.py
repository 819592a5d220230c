"""The packed log (storage.segments, storage.packed_log), on SQLite and PostgreSQL: sealed
ranges move into segments losslessly, every reader sees exactly the events the rows held,
readers racing the packer never miss one, integrity names an altered packed event, rewrites
and imports keep working over segments, and migration 0011 packs an existing store."""

from __future__ import annotations

import asyncio
import io
import math
import random
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import func, select, update

from storage import chain, packed_log
from storage.backup import export_log, import_log
from storage.database import open_database, open_database_nopool
from storage.event_store import EventStore
from storage.history import Rewrite, rewrite
from storage.integrity import count_events, hash_at, verify_document
from storage.migrate import _config, migrate
from storage.read_model import ReadModel
from storage.records import EventRecord, NewEvent
from storage.schema import event_segments, events
from storage.segments import SEGMENT, CorruptSegment, pack, unpack

pytestmark = pytest.mark.timeout(180)

EVENTS = 3 * SEGMENT + 600  # three sealed ranges and a tail; the head is past LAG of two


def new_event(i: int, rng: random.Random) -> NewEvent:
    """Mostly updates, as a log is; now and then another kind (which stays a row)."""
    if i % 397 == 0:
        return NewEvent("version", b"", "bob", 1000.0 + i, {"name": f"v{i}", "seq": i})
    payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
    meta = {} if i % 5 else {"i": i, "é": "ü", "f": i / 7}
    return NewEvent("update", payload, rng.choice(["ann", "bob", "çé😀"]), 1000.0 + i / 3, meta)


def as_row(r: EventRecord) -> tuple[object, ...]:
    return (r.doc_id, r.seq, r.kind, r.payload, r.actor, struct.pack(">d", r.time), r.meta,
            r.hash)


@pytest.fixture
async def store(database_url: str, backend: str) -> AsyncIterator[EventStore]:
    if backend == "sqlite":
        await migrate(database_url)
    db = open_database(database_url)
    yield EventStore(db)
    await db.dispose()


async def fill(store: EventStore, doc_id: str = "doc", count: int = EVENTS) -> list[EventRecord]:
    rng = random.Random(15)
    await store.ensure_document(doc_id)
    appended: list[EventRecord] = []
    for start in range(1, count + 1, 150):
        appended += await store.append(
            doc_id, [new_event(i, rng) for i in range(start, min(start + 150, count + 1))])
    return appended


async def segment_rows(store: EventStore, doc_id: str = "doc") -> list[sa.Row[tuple[int, int]]]:
    s = event_segments.c
    async with store.db.read() as conn:
        return list((await conn.execute(select(s.first_seq, s.last_seq)
                                        .where(s.doc_id == doc_id)
                                        .order_by(s.first_seq))).all())


def test_a_segment_unpacks_to_exactly_the_events_packed() -> None:
    rng = random.Random(7)
    times = [0.0, -0.0, -1e300, 1e-310, math.inf, 1.7e9 + 0.123456789, 1.7e9, -5.5]
    records = [
        EventRecord("d", 2001 + i, rng.choice(["update", "restore"]),
                    bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))),
                    rng.choice(["", "ann", "çé😀" * 40]), times[i % len(times)],
                    {} if i % 3 else {"k": [1, "ü", None], "x": i / 3}) for i in range(999)
    ]
    linked = chain.link(b"\x01" * 32, records)
    seg = pack(b"\x01" * 32, linked)
    assert (seg.first_seq, seg.last_seq, seg.count) == (2001, 2999, 999)
    assert [as_row(r) for r in unpack("d", seg)] == [as_row(r) for r in linked]
    assert [r.hash for r in unpack("d", seg, hashes=False)] == [b""] * 999
    with pytest.raises(ValueError):
        pack(chain.GENESIS, chain.link(None, [
            records[0], EventRecord("d", 3001, "update", b"", "a", 0.0, {})]))
    with pytest.raises(CorruptSegment):
        unpack("d", type(seg)(**{**{f: getattr(seg, f) for f in seg.__slots__},
                                 "data": seg.data[:-9]}))


async def test_sealed_ranges_are_packed_and_read_back_exactly(store: EventStore) -> None:
    appended = await fill(store)
    segs = await segment_rows(store)
    # Ranges 1..3000 are sealed (the head is 3,600, LAG past 2,000 but not past 3,000: two
    # ranges), split at every `version` event, which stays a row.
    assert segs and all(1 <= int(s.first_seq) <= int(s.last_seq) <= 2 * SEGMENT for s in segs)
    async with store.db.read() as conn:
        rows = (await conn.execute(select(func.count()).select_from(events)
                                   .where(events.c.doc_id == "doc"))).scalar_one()
    assert rows < EVENTS - SEGMENT
    assert [as_row(r) for r in await store.read_list("doc")] == [as_row(r) for r in appended]
    rng = random.Random(3)
    for _ in range(20):
        after = rng.randrange(0, EVENTS)
        until = rng.randrange(after, EVENTS + 1)
        got = await store.read_list("doc", after_seq=after, until_seq=until)
        assert [r.seq for r in got] == list(range(after + 1, until + 1))
        assert [as_row(r) for r in got] == [as_row(r) for r in appended[after:until]]
    assert await store.count_events("doc") == EVENTS == await count_events(store.db)
    assert (await verify_document(store, "doc")).ok
    for seq in (1, 397, 999, 1000, 1001, 1500, EVENTS):
        assert await hash_at(store.db, "doc", seq) == appended[seq - 1].hash
    read_model = ReadModel(store.db)
    for seq in (1, 500, 1999, 3500):
        assert await read_model.event_time("doc", seq) == appended[seq - 1].time
        assert await read_model.seq_before_time("doc", appended[seq - 1].time) == seq - 1
    assert await read_model.seq_before_time("doc", 1e12) == EVENTS
    page = await read_model.events_page("doc", 990, 30)
    assert [(p.seq, p.size, p.meta) for p in page] == [
        (r.seq, len(r.payload), r.meta) for r in appended[990:1020]]


async def test_readers_racing_the_packer_see_every_event_once(store: EventStore) -> None:
    appended = await fill(store, count=2 * SEGMENT + 1100)
    expected = [as_row(r) for r in appended]
    stop = asyncio.Event()

    async def repack() -> int:
        rounds = 0
        while not stop.is_set() and rounds < 20:
            async with store.db.write() as conn:
                await packed_log.lock_document(conn, "doc")
                await packed_log.unpack_from(conn, "doc", 0)
            await store.pack("doc")
            rounds += 1
        return rounds

    async def read() -> int:
        reads = 0
        for _ in range(20):
            got = await store.read_list("doc")
            assert [as_row(r) for r in got] == expected
            reads += 1
        stop.set()
        return reads

    rounds, reads = await asyncio.wait_for(asyncio.gather(repack(), read()), 150)
    assert rounds >= 2 and reads == 20
    assert (await verify_document(store, "doc")).ok


async def test_verify_names_the_altered_packed_event(store: EventStore) -> None:
    appended = await fill(store)
    s = event_segments.c
    async with store.db.read() as conn:
        row = (await conn.execute(select(event_segments).where(
            s.doc_id == "doc", s.first_seq <= 1234, s.last_seq >= 1234))).one()
    seg = packed_log.packed_segment(row)
    records = unpack("doc", seg)
    # Someone rewrites one payload inside the segment and re-packs it, keeping the stored
    # hashes (they cannot forge the ones after it without changing the head).
    altered = [EventRecord(r.doc_id, r.seq, r.kind, r.payload + b"!" if r.seq == 1234
                           else r.payload, r.actor, r.time, r.meta, r.hash) for r in records]
    forged = pack(seg.prev_hash, altered)
    async with store.db.write() as conn:
        await conn.execute(update(event_segments).where(
            s.doc_id == "doc", s.first_seq == seg.first_seq).values(data=forged.data))
    verdict = await verify_document(store, "doc")
    assert verdict.first_broken == 1234, verdict
    read = await store.read_list("doc", 1230, 1240)
    assert [r.hash == appended[r.seq - 1].hash for r in read] == [True] * 3 + [False] * 7
    with pytest.raises(Exception, match="does not verify at seq 1234"):
        await export_log(store, "doc", io.StringIO(), 0.0)
    # Bytes that no longer decode: the segment is named by its first seq.
    async with store.db.write() as conn:
        await conn.execute(update(event_segments).where(
            s.doc_id == "doc", s.first_seq == seg.first_seq).values(data=b"\x01garbage"))
    verdict = await verify_document(store, "doc")
    assert verdict.first_broken == seg.first_seq and "do not decode" in verdict.reason


async def test_rewrites_and_imports_work_over_segments(store: EventStore,
                                                       tmp_path: Path) -> None:
    appended = await fill(store)
    out = io.StringIO()
    await export_log(store, "doc", out, 0.0)
    path = tmp_path / "doc.jsonl"
    path.write_text(out.getvalue())
    await import_log(store.db, path, "copy")
    assert await segment_rows(store, "copy") == await segment_rows(store, "doc")
    copied = await store.read_list("copy")
    assert [as_row(r)[1:] for r in copied] == [as_row(r)[1:] for r in appended]

    # An erasure-like rewrite inside the packed part: one payload changed, a range removed.
    target = appended[1499]
    plan = Rewrite(doc_id="doc", audit=NewEvent("erasure", b"", "admin", 5000.0, {}),
                   expected={1500: target.hash}, payloads={1500: b"erased"},
                   removed=[(1600, 1700)])
    done = await rewrite(store.db, plan)
    assert done.rechained_from == 1500 and done.events_after == EVENTS - 101
    after = await store.read_list("doc")
    assert [r.seq for r in after] == [*range(1, 1600), *range(1701, EVENTS + 2)]
    assert after[1499].payload == b"erased"
    assert [as_row(r) for r in after[:1499]] == [as_row(r) for r in appended[:1499]]
    assert (await verify_document(store, "doc")).ok
    assert await store.count_events("doc") == EVENTS - 101 + 1
    assert any(int(s.first_seq) > 1500 for s in await segment_rows(store))  # packed again


async def test_migration_0011_packs_an_existing_store(database_url: str, backend: str,
                                                      request: pytest.FixtureRequest) -> None:
    url = database_url
    if backend == "postgres":  # the fixture's database is already at head: start afresh
        url = request.getfixturevalue("pg_server").create_database("packed_migration")
    await migrate(url, "0010")
    db = open_database(url)
    rng = random.Random(15)
    records = chain.link(None, [
        EventRecord("old", i, e.kind, e.payload, e.actor, e.time, e.meta)
        for i, e in ((i, new_event(i, rng)) for i in range(1, EVENTS + 1))])
    try:
        async with db.write() as conn:
            await conn.execute(sa.text(
                "INSERT INTO documents (id, title, head_seq, created_at, head_hash) "
                "VALUES ('old', '', :head, 0, :hash)"), {"head": EVENTS, "hash": records[-1].hash})
            await conn.execute(events.insert(), [
                {"doc_id": r.doc_id, "seq": r.seq, "kind": r.kind, "payload": r.payload,
                 "actor": r.actor, "time": r.time, "meta": r.meta, "hash": r.hash}
                for r in records])
        await migrate(url)
        store = EventStore(db)
        assert len(await segment_rows(store, "old")) >= 2
        assert [as_row(r) for r in await store.read_list("old")] == [as_row(r) for r in records]
        assert (await verify_document(store, "old")).ok
        await store.append("old", [NewEvent("update", b"x", "ann", 9e9, {})])
        assert (await verify_document(store, "old")).ok
    finally:
        await db.dispose()

    def to_0010(connection: object) -> None:
        config = _config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0010")

    engine = open_database_nopool(url)
    try:
        async with engine.begin() as conn:  # downgrade: every event a row again
            await conn.run_sync(to_0010)
            got = (await conn.execute(select(events).where(events.c.doc_id == "old")
                                      .order_by(events.c.seq))).all()
    finally:
        await engine.dispose()
    assert [as_row(packed_log.event_record(r)) for r in got][:EVENTS] == [
        as_row(r) for r in records]
