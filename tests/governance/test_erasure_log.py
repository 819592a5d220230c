"""Erasure on the log, on SQLite and PostgreSQL, without a server: every event of one actor
erased and no other, the chain re-linked, the read side rebuilt from the rewritten log; and a
room's snapshot taken before a rewrite cannot bring the old content back."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Text

from server.errors import Gone
from server.events import RESTORED, UPDATED
from server.write.commands import EraseHistory
from server.write.update_rewrite import erase_content
from storage.history import save_snapshot_unless_rewritten
from storage.integrity import verify_document
from storage.records import SnapshotRecord
from tests.governance.conftest import World, write_history
from tests.support.pyclient import wait_for

pytestmark = pytest.mark.timeout(300)


def replay(records: list[Any]) -> str:
    doc: Doc[Any] = Doc()
    for record in records:
        if record.kind in (UPDATED, RESTORED):
            doc.apply_update(record.payload)
    return str(doc.get("content", type=Text))


async def test_erasing_an_actor_erases_every_event_of_theirs_and_nothing_else(
        world: World) -> None:
    await write_history(world)
    before = await world.store.read_list("paper")
    state_before = _state(before)
    audit = await world.write.execute(EraseHistory("paper", "root", "their request",
                                                   erased_actor="bob"))
    assert audit.kind == "erasure" and audit.seq == before[-1].seq + 1
    assert audit.meta["actor"] == "bob" and audit.meta["reason"] == "their request"
    after = await world.store.read_list("paper")
    assert [r.seq for r in after[:-1]] == [r.seq for r in before]
    first_bob = min(r.seq for r in before if r.actor == "bob")
    assert audit.meta["rechained_from"] == first_bob
    for old, new in zip(before, after, strict=False):
        if old.actor == "bob" and old.kind in (UPDATED, RESTORED):
            assert new.payload == erase_content(old.payload)
            assert new.meta.get("erased") is True or new.payload == old.payload
        else:
            assert (new.payload, new.meta) == (old.payload, old.meta)
        assert (new.hash == old.hash) == (new.seq < first_bob)
    assert _state(after) == state_before  # the same structure: every id where it was
    assert (await verify_document(world.store, "paper")).ok

    # The read side starts again from the rewritten log and ends where a cold replay does.
    assert await world.read_model.checkpoint("paper") == 0
    await world.projector.catch_up()
    view = await world.read_model.view("paper")
    assert view is not None and view.text == replay(after)
    assert view.text != replay(before) and len(view.text) == len(replay(before))


def _state(records: list[Any]) -> bytes:
    doc: Doc[Any] = Doc()
    for record in records:
        if record.kind in (UPDATED, RESTORED):
            doc.apply_update(record.payload)
    return doc.get_state()


async def test_a_snapshot_from_before_a_rewrite_is_refused(world: World) -> None:
    await write_history(world)
    head = await world.store.head_seq("paper")
    stale = SnapshotRecord("paper", head, b"old state", "old text", 1.0)
    assert await save_snapshot_unless_rewritten(world.db, stale)  # no rewrite yet: saved
    await world.write.execute(EraseHistory("paper", "root", "why", 5, 6))
    # The rewrite dropped every snapshot, and one from a copy at the old head is refused.
    assert await world.store.snapshot_at_or_before("paper") is None
    assert not await save_snapshot_unless_rewritten(world.db, stale)
    assert await world.store.snapshot_at_or_before("paper") is None
    fresh = SnapshotRecord("paper", head + 1, b"new state", "new text", 2.0)
    assert await save_snapshot_unless_rewritten(world.db, fresh)


async def test_a_retired_live_copy_answers_no_one_and_its_writer_stops(world: World) -> None:
    """A connection that joined while its document was being deleted or erased gets the
    retirement's error instead of the old copy's state, and the copy does not linger."""
    await world.store.ensure_document("d")
    opened = await world.write.documents.acquire("d")
    writer = opened.writer
    world.write.documents.retire("d", Gone("document deleted"))
    with pytest.raises(Gone):
        await writer.state_vector()
    with pytest.raises(Gone):
        await writer.missing_from(b"\x00")
    assert writer._task is not None
    await wait_for(writer._task.done, 5)
    world.write.documents.release(opened)
    assert world.write.documents.get("d") is None
