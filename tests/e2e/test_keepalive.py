"""Idle connections are pinged, and one whose peer stops answering is dropped."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator

import pytest

from tests.support.server_process import ServerProcess

PING = 0x9
CLOSE = 0x8


@pytest.fixture
def pinging_server(tmp_path: os.PathLike[str]) -> Iterator[ServerProcess]:
    url = f"sqlite+aiosqlite:///{tmp_path}/ping.sqlite3"
    with ServerProcess(url, env={"PALIMPSEST_WS_PING_INTERVAL": "0.5"}) as server:
        yield server


async def _handshake(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (f"GET /ws/idle HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .encode()
    )
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer


async def _frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return head[0] & 0x0F, await reader.readexactly(length)


async def test_silent_peer_is_pinged_then_dropped(pinging_server: ServerProcess) -> None:
    reader, writer = await _handshake(pinging_server.port)
    opcodes: list[int] = []
    try:
        async with asyncio.timeout(10):
            # Never answer: the server must ping, then give up on us.
            while True:
                try:
                    opcode, _ = await _frame(reader)
                except asyncio.IncompleteReadError:
                    break  # the server closed the TCP connection
                opcodes.append(opcode)
                if opcode == CLOSE:
                    break
    finally:
        writer.close()
    # Reaching here at all means the server ended the connection (else the timeout fails us).
    assert PING in opcodes, opcodes
