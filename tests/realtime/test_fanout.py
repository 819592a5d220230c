"""Fan-out and join at scale, as correctness (timings are bench/'s): with many observers every
one converges while each commit is encoded once for all of them; many clients opening a cold
document load it once and share one encoded sync answer. Real server process, real clients."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import new_sqlite_url
from tests.support.pyclient import YClient, wait_for
from tests.support.server_process import ServerProcess

OBSERVERS = 24


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(new_sqlite_url(tmp_path)) as process:
        yield process


def counts(server: ServerProcess) -> dict[str, float]:
    text = httpx.get(f"{server.http_url}/metrics", timeout=10).text
    return {name: float(value) for name, value in
            re.findall(r"^palimpsest_(\w+) ([0-9.e+]+)$", text, re.MULTILINE)}


async def test_every_observer_converges_and_each_commit_is_encoded_once(
        sqlite_server: ServerProcess) -> None:
    async with AsyncExitStack() as stack:
        writer = await stack.enter_async_context(YClient(sqlite_server.ws_url, "fan"))
        observers = [await stack.enter_async_context(YClient(sqlite_server.ws_url, "fan"))
                     for _ in range(OBSERVERS)]
        before = counts(sqlite_server)
        expected = ""
        edits = 8
        for i in range(edits):  # one at a time: each is its own commit, its own batch
            token = f"[{i}]"
            writer.insert(len(expected), token)
            expected += token
            await asyncio.gather(*(o.wait_text(expected) for o in observers))
        after = counts(sqlite_server)
        assert after["fanout_frames"] - before["fanout_frames"] == edits
        assert after["fanout_deliveries"] - before["fanout_deliveries"] == edits * OBSERVERS
        # The frame around each commit was built once and its bytes written to every socket.
        assert after["frames_encoded"] - before["frames_encoded"] == edits

        # Concurrent writers: everyone still ends with the same text, the senders included.
        for k, o in enumerate(observers[:6]):
            o.insert(0, f"<{k}>")
        await wait_for(lambda: len({c.value() for c in [writer, *observers]}) == 1
                       and all(f"<{k}>" in writer.value() for k in range(6)), 15,
                       lambda: "clients did not converge")


async def test_a_cold_join_storm_loads_once_and_encodes_one_answer(
        sqlite_server: ServerProcess) -> None:
    async with YClient(sqlite_server.ws_url, "storm") as author:
        author.insert(0, "x" * 20_000)
        author.insert(5, "hello")
        text = author.value()
        async with YClient(sqlite_server.ws_url, "storm") as check:
            await check.wait_text(text)
    sqlite_server.restart()  # the document is cold: not loaded on the new process
    before = counts(sqlite_server)
    assert before["document_loads"] == 0
    clients = [YClient(sqlite_server.ws_url, "storm") for _ in range(30)]
    try:
        await asyncio.gather(*(c.connect(timeout=30) for c in clients))
        await asyncio.gather(*(c.wait_text(text) for c in clients))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    after = counts(sqlite_server)
    assert after["document_loads"] == 1
    # Every joiner sent the same (empty) state vector: one encoded answer for all of them.
    assert after["sync_answers_encoded"] - before["sync_answers_encoded"] == 1
