"""An update whose dependencies never arrive no longer stops snapshots for good: snapshots
carry the pending structs, both the projector's and a room's, and a cold load (room and
projector, after a restart) still hands the pending struct to newcomers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
import websockets
from pycrdt import Doc, Text, get_state

from server.realtime import protocol
from storage.database import open_database
from storage.event_store import EventStore
from tests.support.pyclient import YClient, wait_for
from tests.support.replay import cold_replay, stored_events
from tests.support.server_process import ServerProcess

EVERY = 5


@pytest.fixture
def snapshotting_server(database_url: str) -> Iterator[ServerProcess]:
    with ServerProcess(database_url, env={"PALIMPSEST_SNAPSHOT_EVERY": str(EVERY)}) as server:
        yield server


async def _snapshot_seqs(database_url: str, doc_id: str) -> list[int]:
    from sqlalchemy import select

    from storage.schema import snapshots

    db = open_database(database_url, pool_size=1)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(select(snapshots.c.seq).where(
                snapshots.c.doc_id == doc_id).order_by(snapshots.c.seq))).all()
    finally:
        await db.dispose()
    return [int(r.seq) for r in rows]


async def _head(database_url: str, doc_id: str) -> int:
    db = open_database(database_url, pool_size=1)
    try:
        return await EventStore(db).head_seq(doc_id)
    finally:
        await db.dispose()


async def _stored(database_url: str, payload: bytes) -> bool:
    return any(e.payload == payload for e in await stored_events(database_url, "stuck"))


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.02)):  # bounded
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout} s")


async def _api_text(server: ServerProcess, doc_id: str, min_seq: int) -> str:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{server.http_url}/api/documents/{doc_id}",
                                params={"min_seq": min_seq}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["seq"] >= min_seq
    return str(answer.json()["text"])


async def test_an_update_that_never_integrates_no_longer_stops_snapshots(
    snapshotting_server: ServerProcess, database_url: str,
) -> None:
    server = snapshotting_server
    other = Doc()
    other_text = other.get("content", type=Text)
    other_text.insert(0, "ab")
    base = other.get_update()  # held back: the update below waits for it
    other_text.insert(2, "cd")
    ahead = other.get_update(get_state(base))

    async with YClient(server.ws_url, "stuck") as author:
        author.insert(0, "intact")
        async with websockets.connect(f"{server.ws_url}/ws/stuck") as ws:
            await ws.send(protocol.sync_update(ahead))
            await _until(lambda: _stored(database_url, ahead), 10, "the pending update stored")
        pending_seq = await _head(database_url, "stuck")
        for i in range(3 * EVERY):  # well past the next few snapshot seqs
            author.insert(len(author.value()), str(i % 10))
            await asyncio.sleep(0.02)
        typed = author.value()
        async def typed_in() -> bool:
            return await _head(database_url, "stuck") >= pending_seq + 3 * EVERY

        await _until(typed_in, 10, "the typing stored")
        head = await _head(database_url, "stuck")
        assert await _api_text(server, "stuck", head) == typed  # "cd" still pending
    # The projector's snapshots resumed past the pending update, and the room's unload (its
    # last client left; the test server unloads after 1 s) snapshotted the head.
    seqs: list[int] = []
    for _ in range(200):  # bounded: 10 s
        seqs = await _snapshot_seqs(database_url, "stuck")
        if head in seqs:
            break
        await asyncio.sleep(0.05)
    assert head in seqs, f"no snapshot at the head {head} (pending at {pending_seq}): {seqs}"
    assert [s for s in seqs if s > pending_seq and s % EVERY == 0], seqs

    # Everything cold: a new process loads the room and the projection from those snapshots.
    server.restart()
    async with YClient(server.ws_url, "stuck") as fresh:
        await fresh.wait_text(typed)
        async with websockets.connect(f"{server.ws_url}/ws/stuck") as ws:
            await ws.send(protocol.sync_update(base))
            # The newcomer integrates "cd" when "ab" arrives only if the cold-loaded room
            # handed it the pending struct in its sync step 2.
            await wait_for(lambda: "abcd" in fresh.value(), 10, fresh.value)
        final = fresh.value()
        assert sorted(final) == sorted(typed + "abcd")
        assert await cold_replay(database_url, "stuck") == final
        # The projector, resumed from a snapshot holding the pending struct, agrees.
        assert await _api_text(server, "stuck", await _head(database_url, "stuck")) == final
