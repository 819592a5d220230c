"""Each limit, crossed by a real client: that connection is closed with a code and a reason,
and the server, the document and every other connection carry on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from pycrdt import Doc, Text, write_var_uint

from server.realtime import protocol
from tests.conftest import new_sqlite_url
from tests.security.conftest import close_of, logged_events, raw, recv_until
from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.timeout(120)

SIZE_LIMITS = {
    "PALIMPSEST_MAX_UPDATE_BYTES": "3000",
    "PALIMPSEST_MAX_DOCUMENT_BYTES": "20000",
    "PALIMPSEST_MAX_MESSAGES_PER_SECOND": "100",
    "PALIMPSEST_MAX_BYTES_PER_SECOND": "30000",
}
COUNT_LIMITS = {
    "PALIMPSEST_MAX_CONNECTIONS_PER_DOCUMENT": "3",
    "PALIMPSEST_MAX_CONNECTIONS_PER_ADDRESS": "5",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    url = new_sqlite_url(tmp_path_factory.mktemp("limited"))
    with ServerProcess(url, env=SIZE_LIMITS) as process:
        yield process


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    url = new_sqlite_url(tmp_path_factory.mktemp("counted"))
    with ServerProcess(url, env=COUNT_LIMITS) as process:
        yield process


def insert_update(text: str, client_id: int = 7) -> bytes:
    doc: Doc = Doc(client_id=client_id)
    doc.get("content", type=Text).insert(0, text)
    return doc.get_update()


async def assert_carries_on(server: ServerProcess, doc: str, expected: str) -> None:
    """A fresh client syncs the document's intact text; the server answers health checks."""
    async with YClient(server.ws_url, doc) as fresh:
        await fresh.wait_text(expected)
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(f"{server.http_url}/healthz")).status_code == 200


async def test_update_over_the_update_limit_closes_with_1009(limited: ServerProcess) -> None:
    async with YClient(limited.ws_url, "upd") as bystander:
        bystander.insert(0, "safe")
        async with raw(f"{limited.ws_url}/ws/upd") as ws:
            await ws.send(protocol.sync_update(insert_update("x" * 3100)))
            code, reason = await close_of(ws)
        assert code == 1009 and "3000" in reason
        bystander.insert(4, "!")
        await assert_carries_on(limited, "upd", "safe!")


async def test_document_over_its_size_limit_refuses_more_growth(limited: ServerProcess) -> None:
    async with raw(f"{limited.ws_url}/ws/big?ack=1") as ws:
        await recv_until(ws, bytes((0, 0)))
        sent = 0
        doc: Doc = Doc(client_id=11)
        text = doc.get("content", type=Text)
        updates: list[bytes] = []
        doc.observe(lambda event: updates.append(event.update))
        with pytest.raises(websockets.ConnectionClosed):
            for _ in range(20):  # 20 x 2000 bytes: well past 20000
                text.insert(len(text), "y" * 2000)
                await ws.send(protocol.sync_update(updates[-1]))
                await recv_until(ws, bytes((protocol.MESSAGE_ACK,)), within=5)
                sent += 1
        code, reason = await close_of(ws)
    assert code == 1009 and "document" in reason
    assert 8 <= sent <= 11
    stored = await logged_events(limited.database_url, "big")
    assert sum(len(e.payload) for e in stored) <= 20000 + 2 * 2100
    await assert_carries_on(limited, "big", "y" * 2000 * len(stored))


async def test_too_many_messages_per_second_are_slowed_down_not_closed(
    limited: ServerProcess,
) -> None:
    """Over its message rate a connection is served later (its socket is not read meanwhile),
    never closed: 300 messages at 100 a second (a burst of 100) take two seconds or more."""
    async with raw(f"{limited.ws_url}/ws/chatty") as ws:
        await recv_until(ws, bytes((0, 0)))
        started = time.monotonic()
        for _ in range(300):
            await ws.send(protocol.sync_step1(b"\x00"))
        for _ in range(300):
            await recv_until(ws, bytes((0, 1)))
        elapsed = time.monotonic() - started
    assert elapsed >= 1.8, elapsed
    await assert_carries_on(limited, "chatty", "")


async def test_too_many_bytes_per_second_are_slowed_down_not_closed(
    limited: ServerProcess,
) -> None:
    state = json.dumps({"user": {"name": "z" * 2500}})
    async with raw(f"{limited.ws_url}/ws/heavy") as ws:
        await recv_until(ws, bytes((0, 0)))
        started = time.monotonic()
        for clock in range(1, 30):  # 29 x ~2.5 kB in well under a second: past 30 kB/s
            payload = (write_var_uint(1) + write_var_uint(99) + write_var_uint(clock)
                       + write_var_uint(len(state)) + state.encode())
            await ws.send(protocol.awareness(payload))
        await ws.send(protocol.sync_step1(b"\x00"))  # answered once all of the above is read
        await recv_until(ws, bytes((0, 1)))
        elapsed = time.monotonic() - started
    assert elapsed >= 1.2, elapsed  # 73 kB at 30 kB/s with a 30 kB burst


async def test_connections_per_document_are_capped(counted: ServerProcess) -> None:
    url = f"{counted.ws_url}/ws/crowd"
    async with raw(url) as a, raw(url) as b, raw(url) as c:
        for ws in (a, b, c):
            await recv_until(ws, bytes((0, 0)))
        async with raw(url) as fourth:
            code, reason = await close_of(fourth)
        assert code == 4503 and "this document" in reason  # stock clients retry 4503
        async with raw(f"{counted.ws_url}/ws/elsewhere") as other:
            await recv_until(other, bytes((0, 0)))  # another document is not affected
        await c.close()
        async with asyncio.timeout(10):
            while True:  # the slot frees once the server has seen the close: until then, 4503
                frame: object = None
                with contextlib.suppress(websockets.ConnectionClosed):
                    async with raw(url) as again:
                        frame = await again.recv()
                if isinstance(frame, bytes) and frame[:2] == bytes((0, 0)):
                    break
                await asyncio.sleep(0.05)


async def test_connections_per_address_are_capped(counted: ServerProcess) -> None:
    base = f"{counted.ws_url}/ws"
    async with raw(f"{base}/a1") as a, raw(f"{base}/a2") as b, raw(f"{base}/a3") as c, \
            raw(f"{base}/a4") as d, raw(f"{base}/a5") as e:
        for ws in (a, b, c, d, e):
            await recv_until(ws, bytes((0, 0)))
        async with raw(f"{base}/a6") as sixth:
            code, reason = await close_of(sixth)
        assert code == 4503 and "address" in reason  # stock clients retry 4503
        await a.send(protocol.sync_step1(b"\x00"))
        await recv_until(a, bytes((0, 1)))  # the others carry on


async def test_nothing_is_read_before_authentication(tmp_path: Path) -> None:
    """The token is checked in the handshake: a client that floods frames behind a bad token
    is closed with 4401, and not one of its messages is processed."""
    env = {"PALIMPSEST_SECRET": "s" * 40, "PALIMPSEST_MAX_PENDING_UNAUTHENTICATED": "4"}
    with ServerProcess(new_sqlite_url(tmp_path), env=env) as server:
        async with raw(f"{server.ws_url}/ws/flood?token=bad") as ws:
            with contextlib.suppress(websockets.ConnectionClosed):
                for _ in range(200):
                    await ws.send(protocol.sync_update(insert_update("spam")))
            code, _ = await close_of(ws)
        assert code == 4401
        assert await logged_events(server.database_url, "flood") == []


async def test_decoding_bombs_are_refused_quickly_and_the_server_survives(
    limited: ServerProcess,
) -> None:
    bombs = {
        # An Any value nested 1,400 deep: yrs recurses per level (50,000 levels crash it).
        "deep nesting": (write_var_uint(1) + write_var_uint(1) + write_var_uint(5)
                         + write_var_uint(0) + bytes((8, 1, 7)) + b"content" + write_var_uint(1)
                         + bytes((117, 1)) * 1400 + bytes((126, 0))),
        # A clock run past 2**32: yrs keeps clocks in 32 bits.
        "clock overflow": (write_var_uint(1) + write_var_uint(1) + write_var_uint(5)
                           + write_var_uint(2**32 - 2) + bytes((4, 1, 7)) + b"content"
                           + bytes((5,)) + b"hello" + b"\x00"),
        # Counts far beyond the bytes that follow.
        "huge count": write_var_uint(2**40) + b"\x00",
        "huge delete set": b"\x00" + write_var_uint(2**40),
    }
    async with YClient(limited.ws_url, "bombs") as bystander:
        bystander.insert(0, "still here")
        for name, bomb in bombs.items():
            async with raw(f"{limited.ws_url}/ws/bombs") as ws:
                started = time.monotonic()
                await ws.send(protocol.sync_update(bomb))
                code, reason = await close_of(ws)
                assert code == 4422, (name, code, reason)
                assert time.monotonic() - started < 2, name
        bystander.insert(0, ">")
        await assert_carries_on(limited, "bombs", ">still here")


async def test_too_many_awareness_clients_on_one_connection_closes_it(
    limited: ServerProcess,
) -> None:
    def entry(client: int) -> bytes:
        state = b'{"user":{"name":"x"}}'
        return (write_var_uint(client) + write_var_uint(1) + write_var_uint(len(state))
                + state)

    async with raw(f"{limited.ws_url}/ws/presence") as ws, \
            raw(f"{limited.ws_url}/ws/presence") as bystander:
        await recv_until(bystander, bytes((0, 0)))
        # Sixteen (the default limit) is fine: a stock client uses one.
        await ws.send(protocol.awareness(write_var_uint(16)
                                         + b"".join(entry(c) for c in range(1, 17))))
        await recv_until(bystander, bytes((protocol.MESSAGE_AWARENESS,)))
        await ws.send(protocol.awareness(write_var_uint(1) + entry(17)))
        code, reason = await close_of(ws)
        assert code == 4429 and "awareness clients" in reason
        await bystander.send(protocol.sync_step1(b"\x00"))
        await recv_until(bystander, bytes((0, 1)))
