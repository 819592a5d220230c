"""Reading your own writes on the insight read models: wait, bounded, for their checkpoint
(the projector's Freshness, pointed at the insight follower's checkpoints)."""

from __future__ import annotations

from server.errors import NotFound
from server.read.freshness import Freshness
from storage.event_store import EventStore
from storage.insights import InsightStore
from storage.read_model import ReadModel


class InsightFreshness:
    def __init__(self, store: EventStore, insights: InsightStore, *, timeout: float = 5.0,
                 poll: float = 0.05) -> None:
        self.store = store
        self.insights = insights
        self._waiting = Freshness(ReadModel(store.db), timeout=timeout, poll=poll,
                                  checkpoint=insights.checkpoint,
                                  what="the insight read models")

    def notify(self, doc_id: str, seq: int) -> None:
        """The follower saved a batch (in process): waiters look again now."""
        self._waiting.notify(doc_id, seq)

    async def seq(self, doc_id: str, min_seq: int | None) -> int:
        """The seq the document's insight rows reflect, once at least `min_seq`."""
        doc = await self.store.document(doc_id)
        if doc is None:
            raise NotFound(f"document {doc_id!r} does not exist")
        if min_seq is not None and min_seq > doc.head_seq:
            raise NotFound(f"document {doc_id!r} has no seq {min_seq} (head is "
                           f"{doc.head_seq})")
        if min_seq is None:
            return await self.insights.checkpoint(doc_id)
        return await self._waiting.wait(doc_id, min_seq)
