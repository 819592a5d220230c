"""The Node client harness itself, against the reference server (@y/websocket-server)."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.node.refserver import SERVER_JS, free_port, reference_server
from tests.node.yclient import YClientError, yclient

pytestmark = pytest.mark.node


def test_the_reference_server_is_installed() -> None:
    # A missing install must fail loudly, never skip: ./scripts/test.sh runs `npm ci` here.
    assert SERVER_JS.is_file(), "run `npm ci` in tests/node"


async def test_two_clients_converge_through_the_server() -> None:
    async with reference_server() as url, yclient(url, "d") as a, yclient(url, "d") as b:
        await a.wait_synced()
        await b.wait_synced()
        await a.insert(0, "hello")
        await b.wait_text("hello")
        await b.apply_patches([[5, 0, " world"], [0, 1, "H"]])
        await a.wait_text("Hello world")
        await a.delete(5, 6)
        await b.wait_text("Hello")
        assert await a.text() == await b.text() == "Hello"


async def test_clients_of_other_documents_see_nothing() -> None:
    async with reference_server() as url, yclient(url, "d1") as a, yclient(url, "d2") as b:
        await a.wait_synced()
        await b.wait_synced()
        await a.insert(0, "x")
        await asyncio.sleep(0.3)
        assert await b.text() == ""


async def test_wait_text_times_out_with_the_current_text() -> None:
    async with reference_server() as url, yclient(url, "d") as a:
        await a.wait_synced()
        await a.insert(0, "abc")
        with pytest.raises(YClientError, match='"abc"'):
            await a.wait_text("xyz", timeout=0.3)


async def test_out_of_range_edit_is_refused_and_changes_nothing() -> None:
    async with reference_server() as url, yclient(url, "d") as a:
        with pytest.raises(YClientError, match="outside"):
            await a.delete(3, 1)
        assert await a.text() == ""


async def test_a_dead_server_is_reported_not_synced() -> None:
    # Without a server, two clients in separate processes must not sync (no BroadcastChannel).
    async with yclient("ws://127.0.0.1:9/ws", "d") as a, yclient("ws://127.0.0.1:9/ws", "d") as b:
        await a.insert(0, "x")
        with pytest.raises(YClientError):
            await b.wait_text("x", timeout=0.5)
        with pytest.raises(YClientError, match="not synced"):
            await a.wait_synced(timeout=0.3)


async def test_close_ends_the_process_and_server_close_is_reported() -> None:
    async with reference_server() as url:
        async with yclient(url, "d") as a:
            await a.wait_synced()
            pid = a.pid
            assert (await a.info())["connected"] is True
        # the process is gone once close() returns
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert any(e.get("event") == "status" for e in a.events)


async def test_server_going_away_emits_connection_close() -> None:
    port = free_port()
    # The client starts first and keeps retrying until the server is up.
    async with yclient(f"ws://127.0.0.1:{port}/ws", "d") as client:
        async with reference_server(port):
            await client.wait_synced()
        ev = await client.wait_event("connection-close", timeout=5)
        assert ev["code"] is not None
