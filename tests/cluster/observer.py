"""A client that only listens: its doc holds exactly what one node broadcast to it."""

from __future__ import annotations

import asyncio
import contextlib

import websockets
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection


def _var_uint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def var_uint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


class Observer:
    def __init__(self, ws_url: str, doc_id: str) -> None:
        self.url = f"{ws_url}/ws/{doc_id}"
        self.doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.updates = 0
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Observer:
        self._ws = await websockets.connect(self.url, max_size=None)
        state = Doc().get_state()
        await self._ws.send(b"\x00\x00" + var_uint(len(state)) + state)  # sync step 1
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self._ws:
                if isinstance(frame, bytes) and frame[:1] == b"\x00" and frame[1:2] in (
                    b"\x01", b"\x02"
                ):
                    length, at = _var_uint(frame, 2)
                    self.doc.apply_update(frame[at : at + length])
                    self.updates += 1

    def value(self) -> str:
        return str(self.text)

    def state(self) -> bytes:
        return self.doc.get_update()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
