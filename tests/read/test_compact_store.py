"""The compact store (storage/packing.py, migration 0009) against real SQLite and PostgreSQL:
a store written by the old schema (a text_changes row per event, full snapshots), migrated,
serves every seq exactly, keeps a loadable Yjs state, projects on from where it was, and
equals a rebuild."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pycrdt import Doc, Text

from server.read.freshness import Freshness
from server.read.projection import DocumentProjection
from server.read.projector import Projector
from server.read.queries import Queries
from server.read.rebuild import rebuild
from server.read.revisions import GroupingRules
from server.read.textops import apply_ops
from server.write.live_document import LiveDocument
from server.ydoc import PendingUpdates, read_history, replay
from storage import chain
from storage.database import open_database
from storage.event_store import EventStore
from storage.migrate import migrate
from storage.packing import PackedChange, pack_changes, unpack_changes
from storage.read_model import ProjectionBatch, ReadModel
from storage.records import EventRecord, NewEvent
from tests.read.logs import opened
from tests.read.test_projector import trace_and_updates

PATCHES = 2600  # two chunks and a half: the last one is left open by the old store
_names = itertools.count()

_text_changes = sa.table(
    "text_changes", sa.column("doc_id"), sa.column("seq"), sa.column("actor"),
    sa.column("ops", sa.JSON), sa.column("inserted"), sa.column("deleted"))
_snapshots = sa.table("snapshots", sa.column("doc_id"), sa.column("seq"), sa.column("state"),
                      sa.column("text"), sa.column("time"))
_events = sa.table("events", sa.column("doc_id"), sa.column("seq"), sa.column("kind"),
                   sa.column("payload"), sa.column("actor"), sa.column("time"),
                   sa.column("meta", sa.JSON), sa.column("hash"))
_checkpoints = sa.table("projector_checkpoints", sa.column("doc_id"), sa.column("seq"),
                        sa.column("owner"), sa.column("lease_until"))


@pytest.fixture
def empty_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all (the shared fixtures migrate to the latest)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        yield request.getfixturevalue("pg_server").create_database(f"old_{next(_names)}")


async def write_old_store(url: str) -> int:
    """A log and the read side as the code before 0009 stored it; returns the head."""
    await migrate(url, "0008")  # the schema just before 0009
    _, updates = trace_and_updates()
    db = open_database(url)
    try:
        # The log as rows, chained, written straight into the old schema (today's event
        # store also reads and writes the packed segments of a later migration, 0011).
        actors = ["ann", "bob"]
        events = chain.link(None, [
            *(EventRecord("paper", i + 1, "update", u, actors[(i // 500) % 2],
                          1000.0 + (i // 500) * 500, {}) for i, u in enumerate(updates[:PATCHES])),
            EventRecord("paper", PATCHES + 1, "rename", b"", "ann", 5000.0, {"title": "T"})])
        async with db.write() as conn:
            await conn.execute(sa.text(
                "INSERT INTO documents (id, title, head_seq, created_at, head_hash) "
                "VALUES ('paper', '', :head, 0, :hash)"),
                {"head": len(events), "hash": events[-1].hash})
            await conn.execute(sa.insert(_events), [
                {"doc_id": r.doc_id, "seq": r.seq, "kind": r.kind, "payload": r.payload,
                 "actor": r.actor, "time": r.time, "meta": r.meta, "hash": r.hash}
                for r in events])
        # The old projector: every snapshot with its state, a change row per event.
        projection = DocumentProjection("paper", GroupingRules(), 1000, state_every=1000)
        batch = ProjectionBatch("paper", 0, 0)
        for event in events:
            projection.apply(event, batch)
        async with db.write() as conn:
            await conn.execute(sa.insert(_text_changes), [
                {"doc_id": "paper", "seq": c.seq, "actor": c.actor, "ops": c.ops,
                 "inserted": c.inserted, "deleted": c.deleted} for c in batch.changes])
            await conn.execute(sa.insert(_snapshots), [
                {"doc_id": "paper", "seq": s.seq, "state": s.state, "text": s.text,
                 "time": s.time} for s in batch.snapshots])
            await conn.execute(sa.insert(_checkpoints).values(
                doc_id="paper", seq=events[-1].seq, owner=None, lease_until=0.0))
        return events[-1].seq
    finally:
        await db.dispose()


async def test_a_migrated_store_serves_every_seq_exactly_and_projects_on(
        empty_url: str) -> None:
    trace, updates = trace_and_updates()
    head = await write_old_store(empty_url)
    await migrate(empty_url)
    db = open_database(empty_url)
    try:
        store = EventStore(db)
        read_model = ReadModel(db)
        # Every seq: the stored changes replayed forward give the trace's text at each one.
        changes = await read_model.changes("paper", 0, head)
        assert [c.seq for c in changes] == list(range(1, PATCHES + 1))
        content = bytearray()
        chars = list(trace.start)
        for change, (pos, delete, insert) in zip(changes, trace.patches, strict=False):
            apply_ops(content, change.ops)
            chars[pos : pos + delete] = list(insert)
            assert content.decode() == "".join(chars), change.seq
            assert change.actor == ("ann", "bob")[((change.seq - 1) // 500) % 2]
        # Through the query side, from snapshots either side, at the edges of chunks.
        queries = Queries(store, read_model, Freshness(read_model, timeout=1))
        for seq in (1, 999, 1000, 1001, 1500, 2000, 2001, 2599, PATCHES, head):
            assert await queries.text_at("paper", seq) == trace.text_after(min(seq, PATCHES))
        # A Yjs state to load from is kept, and loading it gives the document at the head.
        history = await read_history(store, "paper")
        assert history.state is not None
        doc: Doc[Text] = Doc()
        replay(doc, history.state, history.events, PendingUpdates())
        assert str(doc.get("content", type=Text)) == trace.text_after(PATCHES)

        # The projector carries on from the migrated, half-filled chunk...
        more = updates[PATCHES : PATCHES + 700]
        await store.append("paper", [NewEvent("update", u, "cy", 6000.0) for u in more])
        projector = Projector(store, read_model, snapshot_every=1000)
        await projector.catch_up()
        await projector.stop()
        end = PATCHES + len(more)
        for seq in (PATCHES, PATCHES + 1, 3000, end):
            assert await queries.text_at("paper", seq + 1) == trace.text_after(seq), seq
        live = await read_model.dump(1000)
        # ... and the changes and snapshots it keeps equal a rebuild from the log (the old
        # store written here has no revisions or views: those the migration leaves alone).
        rebuilt = Projector(store, read_model, snapshot_every=1000)
        await rebuild(read_model, rebuilt)
        again = await read_model.dump(1000)
        for table in ("text_change_chunks", "snapshots"):
            assert again[table] == live[table], table
    finally:
        await db.dispose()


def test_packed_changes_round_trip() -> None:
    changes = [PackedChange(1001, "ann", [[0, "", "a"], [5, "xy", "é😀"]]),
               PackedChange(1002, "bob", []),
               PackedChange(1999, "ann", [[3, "b", ""]]),
               PackedChange(2000, "cy", [[2, "", "\n"]])]
    assert unpack_changes(1, pack_changes(1, changes)) == changes


class CountingStore(EventStore):
    reads = 0

    async def read_list(self, doc_id: str, after_seq: int = 0,
                        until_seq: int | None = None, *,
                        hashes: bool = True) -> list[EventRecord]:
        self.reads += 1
        return await super().read_list(doc_id, after_seq, until_seq, hashes=hashes)


async def test_a_projector_fed_by_the_write_side_keeps_what_a_rebuild_gives(
        database_url: str) -> None:
    """The same-process path: events offered with the deltas of the live document's own
    apply are projected without reading the log; a gap (events it was not offered) is read
    from the log; the tables equal a rebuild's, and every seq reads exactly."""
    trace, updates = trace_and_updates()
    count = 2300
    async with opened(database_url) as db:
        store = CountingStore(db)
        read_model = ReadModel(db)
        await store.ensure_document("paper")
        live = LiveDocument("paper")
        live.capture_text_deltas()
        projector = Projector(store, read_model, snapshot_every=500)
        rng = random.Random(3)
        done = passes = skipped = 0
        while done < count:
            size = rng.randint(1, 300)
            part = updates[done : min(done + size, count)]
            deltas = []
            for update in part:
                live.take_text_deltas()
                assert live.try_apply(update)
                deltas.append(live.take_text_deltas())
            records = await store.append("paper", [NewEvent("update", u, "ann", 1.0 * done)
                                                   for u in part])
            if rng.random() < 0.8:  # otherwise it was committed elsewhere: not offered
                projector.offer("paper", list(zip(records, deltas, strict=True)))
            else:
                skipped += 1
            done += len(part)
            passes += 1
            await projector.catch_up()
        await projector.stop()
        # The log is read only for the first batch and for what was not offered.
        assert store.reads <= skipped + 1 < passes
        kept = await read_model.dump(500)
        changes = await read_model.changes("paper", 0, count)
        content = bytearray()
        chars = list(trace.start)
        for change, (pos, delete, insert) in zip(changes, trace.patches, strict=False):
            apply_ops(content, change.ops)
            chars[pos : pos + delete] = list(insert)
            assert content.decode() == "".join(chars), change.seq
        await rebuild(read_model, Projector(EventStore(db), read_model, snapshot_every=500))
        assert await read_model.dump(500) == kept
