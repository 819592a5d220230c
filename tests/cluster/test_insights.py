"""Activity across nodes: the stream and presence of one node show edits made on another."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.timeout(120)


async def test_an_edit_on_one_node_reaches_the_stream_and_presence_of_another(
        two_nodes: list[ServerProcess]) -> None:
    writer_node, reader_node = two_nodes
    doc = "x-live"
    async with httpx.AsyncClient(base_url=reader_node.http_url, timeout=10) as http, \
            httpx.AsyncClient(base_url=writer_node.http_url, timeout=10) as other:
        await other.post("/api/documents", json={"id": doc, "title": "Across"})
        async with http.stream("GET", "/api/activity/stream") as stream:
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith(": connected")
            async with YClient(writer_node.ws_url, doc, name="ann") as ann:
                ann.insert(0, "hello from node one")
                sent = time.monotonic()
                async with asyncio.timeout(5):
                    while True:
                        line = await anext(lines)
                        if line.startswith("data: "):
                            message = json.loads(line[6:])
                            if message["id"] == doc and message["kind"] == "update":
                                break
                assert time.monotonic() - sent < 1.0
                # Presence: ann is on the writer node; the reader node knows it.
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    items = (await http.get("/api/activity/presence")).json()["items"]
                    if {"id": doc, "users": ["ann"]} in items:
                        break
                    await asyncio.sleep(0.1)
                assert {"id": doc, "users": ["ann"]} in items
