"""One client's WebSocket, as the rooms see it: a non-blocking outbound queue and a sender task.

Broadcasting never awaits a client: frames go into the connection's queue, and its own task
writes them out. Document updates that pile up while the task waits are merged into one
sync-update frame, so a burst of edits costs the client (and us) one frame, not one per edit.

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
from server.realtime import protocol
from server.ykeyorder import merge_keeping_order

log = logging.getLogger(__name__)
_ids = itertools.count(1)

ABORTED = 1006  # what the log says of a connection cut without a close frame (RFC 6455)
# A frame this small, to a transport with nothing buffered, is written at once: sent without the
# bound's bookkeeping (the usual case: one keystroke to a client that keeps up).
FAST_SEND_BYTES = 16 * 1024


class Connection:
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
        # Frames, or lists of updates still to be merged into one sync-update frame.
        self._queue: deque[bytes | list[bytes]] = deque()
        self._queued = 0
        self._queued_bytes = 0
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        self._send_timeout = send_timeout
        self._wakeup = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._transport = _transport(websocket)
        self.dropped_bytes = 0  # bytes thrown away unsent: queued here or in the transport
        self.aborted: str | None = None  # why the transport was cut, if it was
        self.closed = asyncio.Event()

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

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_loop(), name=f"send-{self.id}")

    def send(self, frame: bytes) -> None:
        """Queue a frame; never blocks. Closes the connection if it has fallen too far behind."""
        if self._closing is not None or self._full(len(frame)):
            return
        self._queue.append(frame)
        self._wakeup.set()

    def send_update(self, update: bytes) -> None:
        """Queue a document update; consecutive ones go out merged, as one frame."""
        if self._closing is not None or self._full(len(update)):
            return
        if self._queue and isinstance(self._queue[-1], list):
            self._queue[-1].append(update)
        else:
            self._queue.append([update])
        self._wakeup.set()

    def _full(self, size: int) -> bool:
        self._queued += 1
        self._queued_bytes += size
        if self._queued > self._max_queue:
            self._give_up(1013, "client too slow: outbound queue full")
            return True
        if 0 < self._max_queue_bytes < self._queued_bytes and len(self._queue) > 0:
            self._give_up(1013, f"client too slow: over {self._max_queue_bytes} bytes queued")
            return True
        return False

    def _give_up(self, code: int, reason: str) -> None:
        """Close without sending what is queued: it is dropped now, its memory freed."""
        self._drop_queue()
        self.close(code, reason)

    def _drop_queue(self) -> None:
        self.dropped_bytes += self._queued_bytes
        self._queue.clear()
        self._queued = 0
        self._queued_bytes = 0

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then close with code and reason. Idempotent: the first reason
        is the one the client (and the log) gets."""
        if self._closing is None:
            self._closing = (code, reason)
            self._wakeup.set()

    def close_for(self, error: PalimpsestError) -> None:
        self.refused = True
        self.close(error.close_code, error.reason)

    async def _send_loop(self) -> None:
        ws = self.websocket
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    item = self._queue.popleft()
                    if isinstance(item, list):
                        size = sum(len(u) for u in item)
                        # Merged keeping JSON objects' key order (yrs would reorder them).
                        update = item[0] if len(item) == 1 else merge_keeping_order(*item)
                        self._queued -= len(item)
                        item = protocol.sync_update(update)
                    else:
                        size = len(item)
                        self._queued -= 1
                    self._queued_bytes -= size
                    if len(item) < FAST_SEND_BYTES and _buffered(self._transport) == 0:
                        await ws.send_bytes(item)  # nothing waiting: it cannot block
                    elif not await self._bounded(ws.send_bytes(item), "send"):
                        return
                if self._closing is not None:
                    code, reason = self._closing
                    if ws.application_state == WebSocketState.CONNECTED:
                        await self._bounded(ws.close(code, reason), "close")
                    return
        except Exception as exc:  # the peer went away mid-send: the receive loop notices too
            log.debug("connection %s send failed: %r", self.id, exc)
        finally:
            self._drop_queue()
            self.closed.set()

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


def _transport(websocket: WebSocket) -> _Transport | None:
    """The connection's transport, to abort it. ASGI has no message for "drop this socket now";
    uvicorn's WebSocket protocols (the ASGI receive callable is a bound method of one) hold it.
    uvloop's transports are no asyncio.Transport subclasses: checked by what they do."""
    receive: Any = getattr(websocket, "_receive", None)
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if all(callable(getattr(transport, name, None))
           for name in ("abort", "is_closing", "get_write_buffer_size")):
        return cast(_Transport, transport)
    return None


def _buffered(transport: _Transport | None) -> int | None:
    if transport is None or transport.is_closing():
        return None
    return transport.get_write_buffer_size()
