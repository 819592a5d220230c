"""pycrdt clients over real WebSockets against a real server process, on SQLite and Postgres."""

from __future__ import annotations

import asyncio

import websockets

from tests.support.pyclient import YClient, wait_for
from tests.support.replay import cold_replay, stored_events
from tests.support.server_process import ServerProcess


async def test_two_clients_converge_and_a_late_joiner_gets_the_text(server: ServerProcess) -> None:
    async with YClient(server.ws_url, "doc") as a, YClient(server.ws_url, "doc") as b:
        a.insert(0, "hello")
        await b.wait_text("hello")
        b.insert(5, " world")
        await a.wait_text("hello world")
        a.insert(0, "A")
        b.insert(0, "B")  # concurrent: the CRDT orders them the same way everywhere
        await wait_for(lambda: a.value() == b.value() and len(a.value()) == 13, 10)
        converged = a.value()
    async with YClient(server.ws_url, "doc") as late:
        await late.wait_text(converged)
    assert await cold_replay(server.database_url, "doc") == converged


async def test_text_survives_a_server_restart(server: ServerProcess) -> None:
    async with YClient(server.ws_url, "doc", ack="1") as a:
        a.insert(0, "durable text")
        async with YClient(server.ws_url, "doc") as b:
            await b.wait_text("durable text")
    server.restart()
    async with YClient(server.ws_url, "doc") as c:
        await c.wait_text("durable text")


async def test_documents_are_isolated(server: ServerProcess) -> None:
    async with YClient(server.ws_url, "one") as a, YClient(server.ws_url, "two") as b:
        a.insert(0, "first")
        b.insert(0, "second")
        async with YClient(server.ws_url, "one") as c, YClient(server.ws_url, "two") as d:
            await c.wait_text("first")
            await d.wait_text("second")  # committed: it reached another client
    assert await cold_replay(server.database_url, "two") == "second"


async def test_resending_known_updates_appends_nothing(server: ServerProcess) -> None:
    async with YClient(server.ws_url, "doc") as a:
        a.insert(0, "abc")
        async with YClient(server.ws_url, "doc") as b:
            await b.wait_text("abc")
    count = len(await stored_events(server.database_url, "doc"))
    assert count >= 1
    # A reconnecting client resends everything it has in sync step 2: all of it known.
    async with websockets.connect(f"{server.ws_url}/ws/doc") as ws:
        update = a.doc.get_update()
        from server.realtime import protocol

        await ws.send(protocol.sync_update(update))
        await ws.send(protocol.sync_step2(update))
        await ws.send(protocol.sync_update(b"\x00\x00"))
        async with YClient(server.ws_url, "doc") as c:
            await c.wait_text("abc")
    assert len(await stored_events(server.database_url, "doc")) == count


async def test_room_unloads_and_loads_back_identical(server: ServerProcess) -> None:
    async with YClient(server.ws_url, "doc") as a:
        for i in range(30):
            a.insert(i, chr(ord("a") + i % 26))
        a.delete(3, 4)
        expected = a.value()
        async with YClient(server.ws_url, "doc") as b:
            await b.wait_text(expected)
        state = a.doc.get_update()
    await asyncio.sleep(1.5)  # the test server's grace period is 1 s: the room unloads
    async with YClient(server.ws_url, "doc") as c:
        await c.wait_text(expected)
        # Identical: the reloaded doc has exactly the structs the writer's doc had.
        from pycrdt import Doc, Text

        fresh = Doc()
        fresh.get("content", type=Text)
        fresh.apply_update(state)
        assert c.doc.get_state() == fresh.get_state()


async def test_durable_ack_counts_committed_writes(server: ServerProcess) -> None:
    from server.realtime import protocol
    from server.realtime.protocol import Reader

    async with YClient(server.ws_url, "doc") as writer:
        writer.insert(0, "x")
        async with websockets.connect(f"{server.ws_url}/ws/doc?ack=1") as ws:
            for i in range(5):
                writer.insert(0, str(i))
                await ws.send(protocol.sync_update(writer.doc.get_update()))
            acked = 0
            async with asyncio.timeout(10):
                while acked < 5:
                    frame = await ws.recv()
                    assert isinstance(frame, bytes)
                    if frame[0] == protocol.MESSAGE_ACK:
                        reader = Reader(frame, 1)
                        acked, seq = reader.var_uint(), reader.var_uint()
                        assert seq >= 1
    assert len(await stored_events(server.database_url, "doc")) >= 1


async def test_awareness_is_relayed_and_cleared_when_a_connection_ends(
    server: ServerProcess,
) -> None:
    from server.realtime import awareness, protocol

    async with websockets.connect(f"{server.ws_url}/ws/doc") as watcher:
        async with websockets.connect(f"{server.ws_url}/ws/doc") as peer:
            state = awareness.encode([(4242, 1, '{"user":{"name":"Ann"}}')])
            await peer.send(protocol.awareness(state))
            got = await _next_awareness(watcher)
            assert got == [(4242, 1, '{"user":{"name":"Ann"}}')]
            # A newcomer is told the known states on connect.
            async with websockets.connect(f"{server.ws_url}/ws/doc") as newcomer:
                assert await _next_awareness(newcomer) == got
            # Query awareness is answered with every state.
            await watcher.send(bytes([protocol.MESSAGE_QUERY_AWARENESS]))
            assert await _next_awareness(watcher) == got
        removed = await _next_awareness(watcher)
        assert removed == [(4242, 2, "null")]


async def _next_awareness(ws: websockets.ClientConnection) -> list[tuple[int, int, str]]:
    from server.realtime import awareness, protocol
    from server.realtime.protocol import Reader

    async with asyncio.timeout(10):
        while True:
            frame = await ws.recv()
            assert isinstance(frame, bytes)
            if frame[0] == protocol.MESSAGE_AWARENESS:
                return awareness.decode(Reader(frame, 1).var_bytes())
