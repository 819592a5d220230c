"""A client that only listens: its doc holds exactly what one node broadcast to it."""

from __future__ import annotations

import asyncio
import contextlib

import websockets
from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection

from server.realtime import protocol
from server.realtime.protocol import Reader


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
        await self._ws.send(protocol.sync_step1(state))
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self._ws:
                if isinstance(frame, bytes) and frame[:1] == b"\x00" and frame[1:2] in (
                    b"\x01", b"\x02"
                ):
                    self.doc.apply_update(Reader(frame, 2).var_bytes())
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
