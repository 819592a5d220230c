"""One client's WebSocket, as the rooms see it: frames written at once, or queued for a sender.

Broadcasting never awaits a client. A frame for a client that keeps up (nothing queued, nothing
in its socket's buffer) is written to its socket on the spot, the same bytes for every client
of a broadcast (server.realtime.outbound); only a client that is behind gets a queue and a task
of its own that writes the queue out, so an idle connection holds no task and no queue. Frames
are never re-encoded per connection: a writer's batch of edits is one frame for everyone.

What one client can hold is bounded three ways, so a slow or hostile reader can neither stall a
document's writer nor hold memory:
- the queue, in frames (`max_queue`) and in bytes (`max_queue_bytes`; a frame always fits an
  empty queue, so a document's state can be sent whatever its size): past either the queue is
  dropped at once and the connection closed with 1013 (retried by stock clients, which resend
  their state; nothing is lost). The frame being sent sits in the transport's buffer meanwhile,
  so one connection holds at most about twice the budget;
- each send: one that makes no progress for `send_timeout` seconds (the client stopped reading,
  its TCP window is shut) aborts the transport, without the polite close that would wait on the
  same shut window, and drops the queue;
- the close itself: its frame gets the same bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable
from typing import Any, Protocol, cast

from starlette.websockets import WebSocket, WebSocketState

from server.errors import PalimpsestError
from server.realtime.outbound import DirectWriter, Outbound

log = logging.getLogger(__name__)
_ids = itertools.count(1)

ABORTED = 1006  # what the log says of a connection cut without a close frame (RFC 6455)
# A frame this small, to a transport with nothing buffered, is written at once: sent without the
# bound's bookkeeping (the usual case: one keystroke to a client that keeps up).
FAST_SEND_BYTES = 16 * 1024


class Connection:
    # Thousands of these live at once, mostly idle: slots, and nothing made until needed.
    __slots__ = ("_closing", "_direct", "_max_queue", "_max_queue_bytes", "_queue",
                 "_queued_bytes", "_send_timeout", "_sender", "_sending", "_transport",
                 "_wakeup", "aborted", "actor", "can_write", "doc_id", "dropped_bytes", "id",
                 "refused", "user", "wants_ack", "websocket", "writes_received")

    def __init__(
        self,
        websocket: WebSocket,
        doc_id: str,
        actor: str,
        *,
        can_write: bool = True,
        wants_ack: bool = False,
        max_queue: int = 10_000,
        max_queue_bytes: int = 8 * 1024 * 1024,
        send_timeout: float = 10.0,
        user: str | None = None,
    ) -> None:
        self.id = next(_ids)
        self.websocket = websocket
        self.doc_id = doc_id
        self.actor = actor
        self.user = user  # the token's user id; None on an open server
        self.can_write = can_write
        self.wants_ack = wants_ack
        self.writes_received = 0  # sync step 2 / update messages read so far
        # Closed for an error: its writes still queued are dropped (nothing after a refused
        # message applies). A client that simply left still has its queued writes stored.
        self.refused = False
        self._queue: deque[Outbound] | None = None  # made when a frame first has to wait
        self._queued_bytes = 0
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        self._send_timeout = send_timeout
        # The sender task and its wake-up exist only while something is queued or closing.
        self._wakeup: asyncio.Event | None = None
        self._sender: asyncio.Task[None] | None = None
        self._sending = False  # an item is between the queue and the socket
        self._closing: tuple[int, str] | None = None
        protocol = _protocol(websocket)
        self._transport = _transport(protocol)
        self._direct = DirectWriter.of(protocol)
        self.dropped_bytes = 0  # bytes thrown away unsent: queued here or in the transport
        self.aborted: str | None = None  # why the transport was cut, if it was

    @property
    def closing(self) -> bool:
        return self._closing is not None

    @property
    def close_status(self) -> tuple[int, str] | None:
        """The code and reason the server closed (or cut) this connection with, if it did."""
        return self._closing

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def direct(self) -> bool:
        """Whether frames can be written straight to this connection's socket."""
        return self._direct is not None

    def start(self) -> None:
        """Nothing to start: the sender task is made when a frame has to wait."""

    def send(self, frame: bytes | Outbound) -> None:
        """Send a frame now if the client keeps up, else queue it; never blocks. Closes the
        connection if it has fallen too far behind."""
        if self._closing is not None:
            return
        out = frame if isinstance(frame, Outbound) else Outbound(frame)
        direct = self._direct
        queue = self._queue
        if direct is not None and not queue and not self._sending and direct.ready():
            direct.write(out)
            return
        if queue is None:
            queue = self._queue = deque()
        if self._full(len(out), len(queue)):
            return
        queue.append(out)
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        self._wakeup.set()
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop(), name=f"send-{self.id}")

    def _full(self, size: int, queued: int) -> bool:
        self._queued_bytes += size
        if queued >= self._max_queue:
            self._give_up(1013, "client too slow: outbound queue full")
            return True
        if 0 < self._max_queue_bytes < self._queued_bytes and queued > 0:
            self._give_up(1013, f"client too slow: over {self._max_queue_bytes} bytes queued")
            return True
        return False

    def _give_up(self, code: int, reason: str) -> None:
        """Close without sending what is queued: it is dropped now, its memory freed."""
        self._drop_queue()
        self.close(code, reason)

    def _drop_queue(self) -> None:
        self.dropped_bytes += self._queued_bytes
        self._queue = None
        self._queued_bytes = 0

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then close with code and reason. Idempotent: the first reason
        is the one the client (and the log) gets."""
        if self._closing is None:
            self._closing = (code, reason)
            self._wake()

    def close_for(self, error: PalimpsestError) -> None:
        self.refused = True
        self.close(error.close_code, error.reason)

    async def _send_loop(self) -> None:
        ws = self.websocket
        wakeup = self._wakeup
        assert wakeup is not None
        try:
            while True:
                await wakeup.wait()
                wakeup.clear()
                while self._queue:
                    item = self._queue.popleft()
                    self._queued_bytes -= len(item)
                    self._sending = True
                    try:
                        if not await self._send_one(ws, item):
                            return
                    finally:
                        self._sending = False
                if self._closing is not None:
                    code, reason = self._closing
                    if ws.application_state == WebSocketState.CONNECTED:
                        await self._bounded(ws.close(code, reason), "close")
                    return
                # Caught up and open: the task ends, and the connection holds no queue, task
                # or event again until a frame has to wait (no await since the queue emptied,
                # so nothing was queued meanwhile).
                self._sender = self._wakeup = None
                return
        except Exception as exc:  # the peer went away mid-send: the receive loop notices too
            log.debug("connection %s send failed: %r", self.id, exc)
        finally:
            self._drop_queue()

    async def _send_one(self, ws: WebSocket, item: Outbound) -> bool:
        """Write one queued frame; False if the transport had to be aborted."""
        direct = self._direct
        if direct is not None and direct.open():
            direct.write(item)  # into the transport's buffer; then wait until it drains
            return direct.is_writable() or await self._bounded(direct.writable(), "send")
        if len(item) < FAST_SEND_BYTES and _buffered(self._transport) == 0:
            await ws.send_bytes(item.data)  # nothing waiting: it cannot block
            return True
        return await self._bounded(ws.send_bytes(item.data), "send")

    async def _bounded(self, operation: Awaitable[None], what: str) -> bool:
        """Await a send or close; if the socket takes none of it for `send_timeout` seconds,
        abort the transport. False when it was aborted."""
        task = asyncio.ensure_future(operation)
        if self._send_timeout <= 0:
            await task
            return True
        transport = self._transport
        pending = _buffered(transport)
        loop = asyncio.get_running_loop()
        progressed = loop.time()
        while True:
            done, _ = await asyncio.wait({task}, timeout=min(1.0, self._send_timeout / 4))
            if done:
                task.result()
                return True
            now_pending = _buffered(transport)
            if now_pending is not None and pending is not None and now_pending < pending:
                progressed = loop.time()  # slow, but the client is reading: keep going
            pending = now_pending
            if loop.time() - progressed >= self._send_timeout:
                break
        self.aborted = f"{what} stalled for {self._send_timeout:g} s: client not reading"
        if self._closing is None:
            self._closing = (ABORTED, self.aborted)
        self._drop_queue()
        if transport is not None:
            self.dropped_bytes += _buffered(transport) or 0
            transport.abort()  # frees the socket and its buffers now; no close handshake
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return False

    async def wait_closed(self) -> None:
        """Until the sender has sent what was queued and the close (call close() first)."""
        if self._sender is not None:
            await asyncio.wait({self._sender})

    async def stop(self) -> None:
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender


class _Transport(Protocol):
    """What is used of an asyncio (or uvloop) transport."""

    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...


def _protocol(websocket: WebSocket) -> Any:
    """uvicorn's WebSocket protocol object serving this connection (the ASGI receive callable is
    a bound method of it), or None under another server."""
    receive: Any = getattr(websocket, "_receive", None)
    return getattr(receive, "__self__", None)


def _transport(protocol: Any) -> _Transport | None:
    """The connection's transport, to abort it. ASGI has no message for "drop this socket now";
    uvicorn's WebSocket protocols hold it. uvloop's transports are no asyncio.Transport
    subclasses: checked by what they do."""
    transport = getattr(protocol, "transport", None)
    if all(callable(getattr(transport, name, None))
           for name in ("abort", "is_closing", "get_write_buffer_size")):
        return cast(_Transport, transport)
    return None


def _buffered(transport: _Transport | None) -> int | None:
    if transport is None or transport.is_closing():
        return None
    return transport.get_write_buffer_size()
