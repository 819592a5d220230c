"""Fixtures for the access-control suite: a real server with a secret, and raw clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from server.tokens import mint
from storage.database import open_database
from storage.event_store import EventStore
from storage.records import EventRecord
from tests.conftest import new_sqlite_url
from tests.support.server_process import ServerProcess

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


# Long enough for the whole suite: modules mint tokens when they are imported, at collection.
SUITE_TTL = 4 * 3600


def token(user: str, docs: dict[str, str], ttl: float = SUITE_TTL, **kwargs: Any) -> str:
    return mint(SECRET, user, docs, ttl, **kwargs)


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per module, with auth on; each test uses its own documents."""
    folder: Path = tmp_path_factory.mktemp("secure")
    with ServerProcess(new_sqlite_url(folder), env={"PALIMPSEST_SECRET": SECRET}) as process:
        yield process


@contextlib.asynccontextmanager
async def raw(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    """A bare WebSocket (no Yjs), to read exactly what the server sends."""
    ws = await websockets.connect(url, max_size=None, open_timeout=10, **kwargs)
    try:
        yield ws
    finally:
        await ws.close()


async def close_of(ws: ClientConnection, within: float = 10) -> tuple[int, str]:
    """Read until the server closes the connection; its close code and reason."""
    async with asyncio.timeout(within):
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def recv_until(ws: ClientConnection, prefix: bytes, within: float = 10) -> bytes:
    """The first binary frame starting with `prefix`."""
    async with asyncio.timeout(within):
        while True:
            frame = await ws.recv()
            if isinstance(frame, bytes) and frame.startswith(prefix):
                return frame


async def logged_events(database_url: str, doc_id: str) -> list[EventRecord]:
    db = open_database(database_url)
    try:
        return await EventStore(db).read_list(doc_id)
    finally:
        await db.dispose()
