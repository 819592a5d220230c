"""Reading your own writes on the insight read models: wait, bounded, for their checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
import time

from server.errors import NotFound, ReadSideBehind
from storage.event_store import EventStore
from storage.insights import InsightStore


class InsightFreshness:
    def __init__(self, store: EventStore, insights: InsightStore, *, timeout: float = 5.0,
                 poll: float = 0.05) -> None:
        self.store = store
        self.insights = insights
        self.timeout = timeout
        self.poll = poll
        self._changed = asyncio.Event()

    def notify(self, _doc_id: str, _seq: int) -> None:
        """The follower saved a batch (in process): waiters look again now."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def seq(self, doc_id: str, min_seq: int | None) -> int:
        """The seq the document's insight rows reflect, once at least `min_seq`."""
        doc = await self.store.document(doc_id)
        if doc is None:
            raise NotFound(f"document {doc_id!r} does not exist")
        if min_seq is not None and min_seq > doc.head_seq:
            raise NotFound(f"document {doc_id!r} has no seq {min_seq} (head is "
                           f"{doc.head_seq})")
        deadline = time.monotonic() + self.timeout
        while True:
            checkpoint = await self.insights.checkpoint(doc_id)
            if min_seq is None or checkpoint >= min_seq:
                return checkpoint
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReadSideBehind(f"the insight read models of {doc_id!r} are at seq "
                                     f"{checkpoint}, not yet {min_seq}; retry shortly")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(self.poll, left))
