"""Reading your own writes: wait, a bounded time, until the read side has reached a seq.

The projector may run in this process (it tells us at once) or in another (we poll its
checkpoint). Either way a waiter gives up after `timeout` with ReadSideBehind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from server.errors import ReadSideBehind
from storage.read_model import ReadModel

Checkpoint = Callable[[str], Awaitable[int]]


class Freshness:
    def __init__(self, read_model: ReadModel, *, timeout: float = 5.0, poll: float = 0.05,
                 checkpoint: Checkpoint | None = None, what: str = "the read side") -> None:
        """`checkpoint`/`what`: another read model's checkpoint (default: the projector's)."""
        self.read_model = read_model
        self.checkpoint = checkpoint or read_model.checkpoint
        self.what = what
        self.timeout = timeout
        self.poll = poll
        self._changed = asyncio.Event()

    def notify(self, _doc_id: str, _seq: int) -> None:
        """The projector saved a batch (called in process): waiters look again now."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, doc_id: str, seq: int) -> int:
        """The checkpoint of doc_id once it is >= seq; ReadSideBehind after the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            checkpoint = await self.checkpoint(doc_id)
            if checkpoint >= seq:
                return checkpoint
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReadSideBehind(
                    f"{self.what} of {doc_id!r} {'are' if self.what.endswith('s') else 'is'} at "
                    f"seq {checkpoint}, not yet {seq}; "
                    "retry shortly"
                )
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(self.poll, left))
