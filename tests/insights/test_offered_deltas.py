"""The insight follower fed by the write side of its process (server.read.offers): events offered
with the live document's own text deltas are folded without reading the log or applying them
again; what was not offered is read from the log; the rows equal a rebuild's."""

from __future__ import annotations

import random

import pytest

from server.read import insight_fold
from server.read.insights import InsightFollower
from server.write.live_document import LiveDocument
from storage.event_store import EventStore
from storage.insights import InsightStore
from storage.records import NewEvent
from tests.read.logs import opened
from tests.read.test_compact_store import CountingStore
from tests.read.test_projector import trace_and_updates

COUNT = 4200  # past a history mark (MARK_EVERY = 4096)


@pytest.mark.parametrize("unapplied", [insight_fold.MAX_UNAPPLIED, 250])
async def test_insights_fed_by_the_write_side_equal_a_rebuild(
        database_url: str, unapplied: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 250, the Doc is given up on between withheld batches: those reload the state."""
    monkeypatch.setattr(insight_fold, "MAX_UNAPPLIED", unapplied)
    _, updates = trace_and_updates()
    updates = updates[:COUNT]
    async with opened(database_url) as db:
        store = CountingStore(db)
        await store.ensure_document("paper")
        live = LiveDocument("paper")
        live.capture_text_deltas()
        follower = InsightFollower(store, db)
        rng = random.Random(5)
        done = passes = skipped = 0
        while done < len(updates):
            part = updates[done : done + rng.randint(1, 400)]
            deltas = []
            for update in part:
                live.take_text_deltas()
                assert live.try_apply(update)
                deltas.append(live.take_text_deltas())
            actor = rng.choice(["ann", "bob"])
            records = await store.append("paper", [
                NewEvent("update", u, actor, 60.0 * (done + i) / 7) for i, u in enumerate(part)])
            if rng.random() < 0.8:  # otherwise committed elsewhere: not offered
                follower.offer("paper", list(zip(records, deltas, strict=True)))
            else:
                skipped += 1
            done += len(part)
            passes += 1
            await follower.catch_up()
        # The log is read for the first batch and what was withheld (twice, with a reload).
        assert store.reads <= 2 * skipped + 1
        assert skipped + 1 < passes
        insights = InsightStore(db)
        kept = await insights.dump()
        assert kept["history_words"] and kept["activity_minutes"]
        await InsightFollower(EventStore(db), db).rebuild()
        assert await insights.dump() == kept
