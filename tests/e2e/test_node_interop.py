"""The stock npm y-websocket client and a pycrdt client edit one document together."""

from __future__ import annotations

from tests.node.yclient import yclient
from tests.support.pyclient import YClient, wait_for
from tests.support.replay import cold_replay
from tests.support.server_process import ServerProcess


async def test_stock_node_client_and_pycrdt_client_converge(server: ServerProcess) -> None:
    async with yclient(f"{server.ws_url}/ws", "shared", {"name": "node"}) as node:
        await node.wait_synced()
        async with YClient(server.ws_url, "shared", name="py") as py:
            await node.insert(0, "from node. ")
            await py.wait_text("from node. ")
            # Concurrent edits from both sides, without waiting on each other.
            for i in range(20):
                await node.insert(0, f"n{i} ")
                py.insert(len(py.value()), f" p{i}")
            await wait_for(lambda: py.value().count(" p") == 20 and py.value().count("n") >= 21,
                           15, lambda: py.value())
            final_py = py.value()
            await node.wait_text(final_py, timeout=15)
            # Attribution comes from the server (the name the connection gave), stored per event.
    assert await cold_replay(server.database_url, "shared") == final_py


async def test_node_client_receives_text_written_before_it_joined(server: ServerProcess) -> None:
    async with YClient(server.ws_url, "earlier") as py:
        py.insert(0, "written first")
        async with yclient(f"{server.ws_url}/ws", "earlier") as node:
            await node.wait_synced()
            await node.wait_text("written first")
