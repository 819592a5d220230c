"""One client's WebSocket, as the rooms see it: a non-blocking outbound queue and a sender task.

Broadcasting never awaits a client: frames go into the connection's queue, and its own task
writes them out. Document updates that pile up while the task waits are merged into one
sync-update frame, so a burst of edits costs the client (and us) one frame, not one per edit.
A client that falls further behind than the queue allows is closed (1013),
so one slow reader cannot stall a document's writer or hold unbounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque

from pycrdt import merge_updates
from starlette.websockets import WebSocket, WebSocketState

from server.errors import PalimpsestError
from server.realtime import protocol

log = logging.getLogger(__name__)
_ids = itertools.count(1)


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
    ) -> None:
        self.id = next(_ids)
        self.websocket = websocket
        self.doc_id = doc_id
        self.actor = actor
        self.can_write = can_write
        self.wants_ack = wants_ack
        self.awareness_clients: set[int] = set()
        self.writes_received = 0  # sync step 2 / update messages read so far
        # Closed for an error: its writes still queued are dropped (nothing after a refused
        # message applies). A client that simply left still has its queued writes stored.
        self.refused = False
        # Frames, or lists of updates still to be merged into one sync-update frame.
        self._queue: deque[bytes | list[bytes]] = deque()
        self._queued = 0
        self._max_queue = max_queue
        self._wakeup = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self._sender: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_loop(), name=f"send-{self.id}")

    def send(self, frame: bytes) -> None:
        """Queue a frame; never blocks. Closes the connection if it has fallen too far behind."""
        if self._closing is not None:
            return
        if self._full():
            return
        self._queue.append(frame)
        self._wakeup.set()

    def send_update(self, update: bytes) -> None:
        """Queue a document update; consecutive ones go out merged, as one frame."""
        if self._closing is not None or self._full():
            return
        if self._queue and isinstance(self._queue[-1], list):
            self._queue[-1].append(update)
        else:
            self._queue.append([update])
        self._wakeup.set()

    def _full(self) -> bool:
        self._queued += 1
        if self._queued > self._max_queue:
            self.close(1013, "client too slow: outbound queue full")
            return True
        return False

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then close with code and reason. Idempotent."""
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
                        update = item[0] if len(item) == 1 else merge_updates(*item)
                        self._queued -= len(item)
                        item = protocol.sync_update(update)
                    else:
                        self._queued -= 1
                    await ws.send_bytes(item)
                if self._closing is not None:
                    code, reason = self._closing
                    if ws.application_state == WebSocketState.CONNECTED:
                        with contextlib.suppress(Exception):
                            await ws.close(code, reason)
                    return
        except Exception as exc:  # the peer went away mid-send: the receive loop notices too
            log.debug("connection %s send failed: %r", self.id, exc)
        finally:
            self.closed.set()

    async def stop(self) -> None:
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
