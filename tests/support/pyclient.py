"""A pycrdt client over a real WebSocket: pycrdt's own Provider on a `websockets` channel."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import websockets
from pycrdt import Doc, Provider, Text
from websockets.asyncio.client import ClientConnection


class WebsocketChannel:
    """pycrdt's Channel interface on a websockets client connection."""

    def __init__(self, ws: ClientConnection, path: str) -> None:
        self._ws = ws
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except websockets.ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.send(message)

    async def recv(self) -> bytes:
        while True:
            message = await self._ws.recv()
            if isinstance(message, bytes):
                return message


class YClient:
    """Connect, sync, edit the Y.Text `content`, wait for text, all with bounded timeouts."""

    def __init__(self, base_url: str, doc_id: str, **params: str) -> None:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        self.url = f"{base_url}/ws/{doc_id}" + (f"?{query}" if query else "")
        self.doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.ws: ClientConnection | None = None
        self._provider: Provider | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> YClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self, timeout: float = 10) -> None:
        self.ws = await websockets.connect(self.url, max_size=None, open_timeout=timeout)
        self._provider = Provider(self.doc, WebsocketChannel(self.ws, self.url))
        self._task = asyncio.create_task(self._provider.start())
        await asyncio.wait_for(self._provider.synced.wait(), timeout)

    async def close(self) -> None:
        if self._provider is not None:
            with contextlib.suppress(Exception):
                await self._provider.stop()
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def insert(self, pos: int, text: str) -> None:
        self.text.insert(pos, text)

    def delete(self, pos: int, length: int) -> None:
        del self.text[pos : pos + length]

    def value(self) -> str:
        return str(self.text)

    async def wait_text(self, expected: str, timeout: float = 10) -> None:
        await wait_for(lambda: self.value() == expected, timeout,
                       lambda: f"text is {self.value()[:200]!r}, expected {expected[:200]!r}")


async def wait_for(
    condition: Callable[[], bool], timeout: float, describe: Callable[[], str] | None = None
) -> None:
    """Poll `condition` until it holds; fail with a description after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(describe() if describe else "condition not met in time")
        await asyncio.sleep(0.01)
