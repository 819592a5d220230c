"""Soak: 500 idle connections on 100 documents, with bounded loops; memory per idle connection.

The figure is printed (run with -s to see it) and bounded by an assertion, so a leak fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection

from server.realtime import protocol
from tests.conftest import new_sqlite_url
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.timeout(180)

DOCUMENTS = 100
PER_DOCUMENT = 5
MAX_KIB_PER_IDLE_CONNECTION = 256


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def soak_server(tmp_path: Path) -> Iterator[ServerProcess]:
    # A long grace period keeps every room loaded while connections come and go.
    with ServerProcess(new_sqlite_url(tmp_path),
                       env={"PALIMPSEST_ROOM_GRACE_SECONDS": "120"}) as process:
        yield process


async def open_synced(url: str) -> ClientConnection:
    """Connect and wait for the server's sync step 1, as a stock client does first."""
    ws = await websockets.connect(url, max_size=None, open_timeout=20)
    async with asyncio.timeout(20):
        while True:
            frame = await ws.recv()
            if isinstance(frame, bytes) and frame[:2] == bytes((0, 0)):
                return ws


def insert(text: str, client_id: int) -> bytes:
    doc: Doc = Doc(client_id=client_id)
    doc.get("content", type=Text).insert(0, text)
    return doc.get_update()


async def receives_update(ws: ClientConnection, payload: bytes) -> None:
    expected = protocol.sync_update(payload)
    async with asyncio.timeout(20):
        while await ws.recv() != expected:
            pass


async def test_500_connections_on_100_documents(soak_server: ServerProcess) -> None:
    server = soak_server
    assert server.process is not None
    pid = server.process.pid
    urls = [f"{server.ws_url}/ws/soak-{d}" for d in range(DOCUMENTS)]
    started = time.monotonic()
    first: list[ClientConnection] = []
    rest: list[ClientConnection] = []
    try:
        # One connection per document loads every room; their memory is the documents', not
        # the connections'.
        first = [await open_synced(url) for url in urls]
        await asyncio.sleep(0.5)
        before = rss_kib(pid)
        for _ in range(PER_DOCUMENT - 1):
            rest += await asyncio.gather(*(open_synced(url) for url in urls))
        await asyncio.sleep(0.5)
        after = rss_kib(pid)
        idle = DOCUMENTS * (PER_DOCUMENT - 1)
        per_connection = (after - before) / idle
        print(f"\nsoak: {DOCUMENTS * PER_DOCUMENT} connections on {DOCUMENTS} documents; "
              f"server RSS {before} KiB -> {after} KiB with {idle} more idle connections: "
              f"{per_connection:.1f} KiB per idle connection")
        assert per_connection < MAX_KIB_PER_IDLE_CONNECTION

        # Bounded activity: one edit per document, seen by all of that document's connections.
        by_doc = [[first[d], *rest[d::DOCUMENTS]] for d in range(DOCUMENTS)]
        edits = [insert(f"doc {d}", client_id=1000 + d) for d in range(DOCUMENTS)]
        for d, conns in enumerate(by_doc):
            await conns[0].send(protocol.sync_update(edits[d]))
        await asyncio.gather(*(receives_update(ws, edits[d])
                               for d, conns in enumerate(by_doc) for ws in conns[1:]))
        async with httpx.AsyncClient(timeout=10) as http:
            metrics = (await http.get(f"{server.http_url}/metrics")).text
        assert f"palimpsest_connections {DOCUMENTS * PER_DOCUMENT}.0" in metrics
        # Held idle for a while, the server does not grow.
        settled = rss_kib(pid)
        await asyncio.sleep(5)
        held = rss_kib(pid)
        print(f"soak: RSS {settled} KiB -> {held} KiB after 5 s idle")
        assert held - settled < 4096
    finally:
        for ws in first + rest:
            with contextlib.suppress(Exception):
                await ws.close()
    # Every slot is given back: the server counts no connection once they have all gone.
    async with httpx.AsyncClient(timeout=10) as http, asyncio.timeout(20):
        while True:
            metrics = (await http.get(f"{server.http_url}/metrics")).text
            if "palimpsest_connections 0.0" in metrics:
                break
            await asyncio.sleep(0.1)
    print(f"soak: done in {time.monotonic() - started:.1f} s")
