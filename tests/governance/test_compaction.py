"""Compaction on SQLite and PostgreSQL: old edits merged per revision run, every kept point's
text exactly as before, absorbed seqs answering with the run that absorbed them, revisions
and versions unchanged, the chain re-linked, and the read models a pure function of the new
log (a rebuild gives the same tables)."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Text

from server.errors import Conflict
from server.events import absorbed_from
from server.read.projector import Projector
from server.read.rebuild import rebuild
from server.retention import DAY
from server.write.commands import EraseHistory
from storage.integrity import verify_document
from tests.governance.conftest import World, write_history

pytestmark = pytest.mark.timeout(300)


async def texts(world: World, seqs: list[int]) -> dict[int, str]:
    return {seq: await world.queries.text_at("paper", seq) for seq in seqs}


async def test_compaction_keeps_every_kept_point_and_answers_for_absorbed_seqs(
        world: World) -> None:
    await write_history(world)
    head = await world.store.head_seq("paper")
    before = await texts(world, list(range(head + 1)))
    revisions_before = await world.read_model.revisions_page("paper", 10_000, None)
    versions_before = await world.read_model.versions("paper")
    others = {r.seq for r in await world.store.read_list("paper") if r.kind != "update"}
    assert len(others) == 4  # the creation, a rename, a version name, a restore
    horizon_seq = 1800
    now = world.times[horizon_seq] + 2 * DAY

    result = await world.maintenance.compact("paper", keep_days=2, now=now)
    assert result is not None
    assert result.events_after < result.events_before and result.bytes_after < result.bytes_before
    assert result.absorbed - result.merged == result.events_before - result.events_after
    log = await world.store.read_list("paper")
    assert log[-1].kind == "compaction" and log[-1].seq == head + 1
    assert (await verify_document(world.store, "paper")).ok
    # Nothing newer than the horizon was touched, and only edits were merged.
    for record in log[:-1]:
        if record.seq != absorbed_from(record):
            assert record.kind == "update" and record.time < world.times[horizon_seq]
    kept = {r.seq for r in log[:-1]}
    assert {650, *others} <= kept  # the named seq, and every event that is not an edit

    await world.projector.catch_up()
    after = await texts(world, sorted(kept))
    assert after == {seq: before[seq] for seq in kept}
    # An absorbed seq answers with the end of the run that absorbed it, and says so.
    absorbed = [seq for seq in range(1, head + 1) if seq not in kept]
    assert len(absorbed) == result.events_before - result.events_after
    for seq in absorbed[:: max(1, len(absorbed) // 50)]:
        resolved = await world.governance.resolve("paper", seq)
        assert resolved.absorbed is not None and resolved.absorbed["seq"] == seq
        assert resolved.seq in kept and resolved.absorbed["from_seq"] <= seq < resolved.seq
        assert await world.queries.text_at("paper", resolved.seq) == before[resolved.seq]
    assert await world.read_model.revisions_page("paper", 10_000, None) == revisions_before
    assert await world.read_model.versions("paper") == versions_before
    view = await world.read_model.view("paper")
    assert view is not None and view.title == "Renamed"
    assert view.text == before[head]
    # The compacted log replayed from nothing, without any snapshot, gives the same text.
    replayed: Doc[Any] = Doc()
    for record in await world.store.read_list("paper"):
        if record.kind in ("update", "restore"):
            replayed.apply_update(record.payload)
    assert str(replayed.get("content", type=Text)) == before[head]

    # Nothing more to do at the same horizon; a later one merges merged events further.
    assert await world.maintenance.compact("paper", keep_days=2, now=now) is None
    again = await world.maintenance.compact("paper", keep_days=0, now=now)
    assert again is not None and again.events_after < result.events_after
    await world.projector.catch_up()
    log = await world.store.read_list("paper")
    kept = {r.seq for r in log if r.kind != "compaction"}
    assert await texts(world, sorted(kept)) == {seq: before[seq] for seq in kept}
    assert await world.read_model.revisions_page("paper", 10_000, None) == revisions_before
    assert (await verify_document(world.store, "paper")).ok

    # Invariant 5: the read models are a pure function of the compacted log.
    live = await world.read_model.dump(100)
    await rebuild(world.read_model, Projector(world.store, world.read_model, snapshot_every=100))
    assert await world.read_model.dump(100) == live


async def test_an_erasure_cannot_cut_a_compacted_event(world: World) -> None:
    await write_history(world)
    now = world.times[1800] + DAY
    assert await world.maintenance.compact("paper", keep_days=1, now=now) is not None
    merged = next(r for r in await world.store.read_list("paper")
                  if r.seq != absorbed_from(r))
    first = absorbed_from(merged)
    with pytest.raises(Conflict, match=f"start the range at {first}"):
        await world.write.execute(EraseHistory("paper", "root", "why", first + 1, merged.seq))
    with pytest.raises(Conflict, match=f"end the range at {merged.seq}"):
        await world.write.execute(EraseHistory("paper", "root", "why", first, merged.seq - 1))
    done = await world.write.execute(EraseHistory("paper", "root", "why", first, merged.seq))
    assert done.kind == "erasure" and done.meta["events"] == 1
    assert (await verify_document(world.store, "paper")).ok
