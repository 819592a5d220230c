"""Invariant 1: no client receives an update whose event is not committed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import websockets

from server.realtime import protocol
from storage.migrate import migrate
from tests.support.pyclient import YClient
from tests.support.replay import cold_replay
from tests.support.server_process import ServerProcess
from tests.support.services import PostgresServer


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    pg = PostgresServer()  # our own: this test stops it
    pg.start()
    yield pg
    pg.destroy()


async def _closed_with(ws: websockets.ClientConnection) -> int:
    async with asyncio.timeout(20):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_an_update_that_cannot_be_committed_reaches_no_one(
    own_postgres: PostgresServer,
) -> None:
    url = own_postgres.create_database("durable")
    await migrate(url)
    # A failing commit is retried for PALIMPSEST_COMMIT_RETRY_SECONDS (the update held back
    # from everyone meanwhile) before its document is given up on: 2 s here.
    with ServerProcess(url, env={"PALIMPSEST_COMMIT_RETRY_SECONDS": "2"}) as server:
        async with YClient(server.ws_url, "doc") as author:
            author.insert(0, "committed. ")
            async with YClient(server.ws_url, "doc") as check:
                await check.wait_text("committed. ")
            writer = await websockets.connect(f"{server.ws_url}/ws/doc")
            watcher = await websockets.connect(f"{server.ws_url}/ws/doc")
            seen: list[bytes] = []

            async def watch() -> int:
                try:
                    while True:
                        frame = await watcher.recv()
                        assert isinstance(frame, bytes)
                        seen.append(frame)
                except websockets.ConnectionClosed as closed:
                    return closed.rcvd.code if closed.rcvd else 1006

            watching = asyncio.create_task(watch())
            await asyncio.to_thread(own_postgres.stop)
            author.insert(len(author.value()), "never stored")
            pending = author.doc.get_update()
            await writer.send(protocol.sync_update(pending))
            # The write cannot be committed: the writer is told to reconnect and resend...
            assert await _closed_with(writer) == 1013
            # ...and the room, now holding an uncommitted change, drops everyone: the watcher
            # is closed too, without ever having been sent the update.
            async with asyncio.timeout(20):
                assert await watching == 1013
            assert not any(b"never stored" in frame for frame in seen)
            await asyncio.to_thread(own_postgres.start)
        # After the restart the log holds exactly what was committed...
        async with YClient(server.ws_url, "doc") as fresh:
            await fresh.wait_text("committed. ", timeout=20)
        assert await cold_replay(url, "doc") == "committed. "
        # ...and the author's resend (what a stock client does on reconnect) is stored.
        async with websockets.connect(f"{server.ws_url}/ws/doc") as resend:
            await resend.send(protocol.sync_step2(pending))
            async with YClient(server.ws_url, "doc") as after:
                await after.wait_text("committed. never stored", timeout=20)
