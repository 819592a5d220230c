"""uvicorn's WebSocket protocol with lighter per-connection state.

A node holds thousands of WebSocket connections, most of them idle. uvicorn's sans-I/O protocol
gives each one an `asyncio.Queue` for the events it hands the app (four deques and an Event:
about 3 KB) and an `asyncio.Event` for "the transport can take more" (a deque of waiters),
though a connection holds at most a couple of events at a time (uvicorn stops reading the
socket after each message until the app has taken it) and one sender at most waits. Here they
are a list and a single future, and a flag with a list of waiters made on first wait; the
protocol itself is uvicorn's, unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class Inbox:
    """What uvicorn uses of an asyncio.Queue: put_nowait, get, empty (one consumer: the app's
    receive)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class Flag:
    """What uvicorn (and server.realtime.outbound) use of an asyncio.Event: set, clear,
    is_set, wait."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol (what `ws="auto"` picks) with an Inbox and a Flag
    for its queue and its writable event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inbox = Inbox()
        self.queue = self.inbox  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]

    async def receive(self) -> Any:
        """uvicorn's receive, waiting on the inbox's future itself: one coroutine less held
        by every idle connection."""
        inbox = self.inbox
        while not inbox._items:
            waiter = inbox._waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                inbox._waiter = None
        message = inbox._items.pop(0)
        if self.read_paused and not inbox._items:
            self.read_paused = False
            self.transport.resume_reading()
        return message
