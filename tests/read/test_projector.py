"""The projector against real SQLite and PostgreSQL: texts at any seq, revisions, rebuild
equality (invariant 5), and one projector at a time per document."""

from __future__ import annotations

import asyncio
import functools
import os
import random

from server.read.freshness import Freshness
from server.read.projector import Projector
from server.read.queries import Queries
from server.read.rebuild import rebuild
from server.read.revisions import GroupingRules
from storage.database import Database
from storage.event_store import EventStore
from storage.read_model import ReadModel
from storage.records import NewEvent
from tests.read.logs import Editor, append, opened, trace_updates
from tests.support.replay import Trace, load_trace

# A prefix keeps the suite fast; bench/read_side.py checks the whole trace the same way.
PATCHES = int(os.environ.get("PALIMPSEST_TEST_READ_TRACE_PATCHES", "12000"))


@functools.cache
def trace_and_updates() -> tuple[Trace, list[bytes]]:
    trace = load_trace()
    return trace, trace_updates(trace, PATCHES)


async def test_text_at_random_seqs_equals_an_independent_replay_of_the_trace(
    database_url: str,
) -> None:
    trace, updates = trace_and_updates()
    async with opened(database_url) as db:
        store = EventStore(db)
        await store.ensure_document("paper")
        for start in range(0, len(updates), 5000):
            await store.append("paper", [NewEvent("update", u, "martin", 1000.0 + start)
                                         for u in updates[start : start + 5000]])
        read_model = ReadModel(db)
        projector = Projector(store, read_model, snapshot_every=1000)
        await projector.catch_up()
        await projector.stop()
        queries = Queries(store, read_model, Freshness(read_model, timeout=1))
        rng = random.Random(7)
        for seq in [0, 1, 999, 1000, 1001, len(updates), *rng.sample(range(1, len(updates)), 20)]:
            assert await queries.text_at("paper", seq) == trace.text_after(seq), seq
        for _ in range(3):
            a, b = sorted(rng.sample(range(0, len(updates) + 1), 2))
            diff = (await queries.diff("paper", a, b))["changes"]
            assert "".join(c["text"] for c in diff if c["op"] != "insert") == trace.text_after(a)
            assert "".join(c["text"] for c in diff if c["op"] != "delete") == trace.text_after(b)
        view = await read_model.view("paper")
        assert view is not None and view.text == trace.text_after(len(updates))


async def write_mixed_history(store: EventStore, doc_id: str, seed: int) -> None:
    """Edits by several people with idle gaps, a rename, a named version and a restore."""
    rng = random.Random(seed)
    editor = Editor()
    now = 1_000_000.0
    await store.ensure_document(doc_id)
    await append(store, doc_id, "create", b"", "ann", now, {"title": f"Doc {seed}"})
    for step in range(32):
        now += rng.choice([0.5, 1.0, 2.0, 120.0])
        actor = rng.choice(["ann", "ann", "bob", "cy"])
        text = editor.value()
        if text and rng.random() < 0.3:
            start = rng.randrange(len(text))
            update = editor.delete(start, min(len(text) - start, rng.randint(1, 5)))
        else:
            update = editor.insert(rng.randint(0, len(text)), rng.choice(["a", "bc", "é", "😀 "]))
        await append(store, doc_id, "update", update, actor, now)
        if step == 10:
            await append(store, doc_id, "rename", b"", "bob", now, {"title": "Renamed"})
        if step == 16:
            await append(store, doc_id, "version", b"", "cy", now, {"seq": 10, "name": "draft"})
        if step == 22:
            # A restore-kind event: an update that empties the text, as a restore would.
            update = editor.delete(0, len(editor.value()))
            await append(store, doc_id, "restore", update, "ann", now, {"restored_from": 1})


async def test_rebuilt_read_models_equal_the_ones_kept_live(database_url: str) -> None:
    rules = GroupingRules(idle_gap=60.0, max_chars=20, max_events=8)
    async with opened(database_url) as db:
        store = EventStore(db)
        read_model = ReadModel(db)
        # Kept live in small steps, by projectors that come and go (so state is reloaded
        # from snapshots and saved rows), with small batches and frequent snapshots.
        for round_ in range(2):
            for doc in ("alpha", "beta"):
                await write_mixed_history(store, doc, seed=round_ * 10 + len(doc))
            projector = Projector(store, read_model, snapshot_every=7, rules=rules,
                                  batch_size=5 + round_)
            await projector.catch_up()
            await projector.stop()
        live = await read_model.dump(7)
        assert live["revisions"] and live["versions"] and live["document_views"]
        assert any("restore" in row for row in live["revisions"])

        events = await rebuild_with(db, rules)
        assert events == await store.head_seq("alpha") + await store.head_seq("beta")
        assert await read_model.dump(7) == live


async def rebuild_with(db: Database, rules: GroupingRules) -> int:
    # The test's grouping rules must match the live ones.
    read_model = ReadModel(db)
    projector = Projector(EventStore(db), read_model, snapshot_every=7, rules=rules,
                          batch_size=1000)
    return await rebuild(read_model, projector)


async def test_revisions_are_working_sessions_broken_by_idle_gaps_names_sizes_and_restores(
        database_url: str) -> None:
    rules = GroupingRules(idle_gap=60.0, max_chars=10, max_events=100)
    async with opened(database_url) as db:
        store = EventStore(db)
        await store.ensure_document("d")
        editor = Editor()

        async def typed(actor: str, time: float, text: str) -> None:
            await append(store, "d", "update", editor.insert(len(editor.value()), text),
                         actor, time)

        await typed("ann", 0.0, "ab")  # seqs 1-3: ann and bob typing together, one session
        await typed("bob", 1.0, "cd")
        await typed("ann", 2.0, "ef")
        await typed("bob", 100.0, "gh")  # 4: after an idle gap
        await append(store, "d", "version", b"", "ann", 100.5, {"seq": 4, "name": "v1"})  # 5
        await typed("bob", 101.0, "ijklmnop")  # 6-8: a new session after the named version
        await typed("ann", 102.0, "q")
        await typed("ann", 103.0, "r")
        await typed("bob", 104.0, "s")  # 9: past 10 characters
        restore = editor.insert(len(editor.value()), "t")
        await append(store, "d", "restore", restore, "cy", 105.0, {"restored_from": 4})  # 10
        await typed("cy", 106.0, "u")  # 11: a restore is a revision of its own
        read_model = ReadModel(db)
        projector = Projector(store, read_model, snapshot_every=1000, rules=rules)
        await projector.catch_up()
        await projector.stop()
        rows = list(reversed(await read_model.revisions_page("d", 50, None)))
        assert [(r.number, r.from_seq, r.to_seq, r.authors, r.inserted, r.started_at,
                 r.ended_at, r.kind, r.restored_from) for r in rows] == [
            (1, 1, 3, ["ann", "bob"], 6, 0.0, 2.0, "edit", None),
            (2, 4, 4, ["bob"], 2, 100.0, 100.0, "edit", None),
            (3, 6, 8, ["bob", "ann"], 10, 101.0, 103.0, "edit", None),
            (4, 9, 9, ["bob"], 1, 104.0, 104.0, "edit", None),
            (5, 10, 10, ["cy"], 1, 105.0, 105.0, "restore", 4),
            (6, 11, 11, ["cy"], 1, 106.0, 106.0, "edit", None),
        ]
        assert rows[0].shares == [["ann", 2, 4, 0], ["bob", 1, 2, 0]]
        assert rows[2].shares == [["bob", 1, 8, 0], ["ann", 2, 2, 0]]
        # The grouping is a pure function of the log: a rebuild gives the same list.
        live = await read_model.dump(1000)
        await rebuild_with(db, rules)
        assert (await read_model.dump(1000))["revisions"] == live["revisions"]


async def test_one_projector_at_a_time_per_document(database_url: str) -> None:
    async with opened(database_url) as db:
        store = EventStore(db)
        read_model = ReadModel(db)
        for doc in ("a", "b", "c", "d"):
            await write_mixed_history(store, doc, seed=ord(doc))
        first = Projector(store, read_model, snapshot_every=5, batch_size=4)
        second = Projector(store, read_model, snapshot_every=5, batch_size=4)
        assert await read_model.claim("a", first.owner, 0.0, 60.0) == 0
        assert await read_model.claim("a", second.owner, 1.0, 60.0) is None
        assert await read_model.claim("a", first.owner, 2.0, 60.0) == 0  # renewing is fine
        assert await read_model.claim("a", second.owner, 100.0, 60.0) == 0  # once it lapsed
        await read_model.release(second.owner)
        # Both at once over the same documents: each document ends projected exactly once.
        await asyncio.gather(first.catch_up(), second.catch_up())
        for projector in (first, second):
            await projector.catch_up()
        await first.stop()
        await second.stop()
        together = await read_model.dump(5)
        await rebuild(read_model, Projector(store, read_model, snapshot_every=5))
        assert await read_model.dump(5) == together
