"""The insight follower: keeps the status, activity and search read models, beside the projector.

It follows every document's log like the projector does, with its own checkpoint per document
(storage.insights), so these read models are rebuilt, fixed or extended without touching the
history tables. It wakes on the bus (every committed event, from any node) and polls as a
fallback. Several nodes may run one: each save is guarded by the checkpoint it started from,
so a document's seqs are counted once whichever follower saves them (the other drops its
in-memory state and reads the rows again).

After a history rewrite (an erasure or a compaction: its audit event is in the log), the
document's insight rows are dropped and folded again from the rewritten log, so no erased
text stays searchable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from server.bus import Bus, BusMessage
from server.events import REWRITES
from server.read.insight_fold import DocumentInsight, NeedsReload, NeedsReset
from server.read.offers import Offered, Offers
from server.read.textops import visible
from server.supervision import Supervisor
from server.ydoc import read_history
from storage.database import Database
from storage.errors import StorageError
from storage.event_store import EventStore
from storage.insights import CheckpointMoved, InsightBatch, InsightStore
from storage.status import status_row

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.5  # between two passes of the follower under a burst of edits

Progress = Callable[[str, int], None]


class InsightFollower:
    def __init__(self, store: EventStore, db: Database, *, poll_interval: float = 1.0,
                 batch_size: int = 2000, cache_size: int = 16,
                 supervisor: Supervisor | None = None,
                 leased: Callable[[], list[str]] | None = None,
                 orphan_seconds: float = 5.0) -> None:
        self.store = store
        self.db = db
        self.insights = InsightStore(db)
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.supervisor = supervisor or Supervisor()
        self._cache: OrderedDict[str, DocumentInsight] = OrderedDict()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Progress] = []
        self.last_error = ""
        # With several nodes, each folds the documents its projector holds the lease of (so
        # one node does the work, as for the projector), and any document left behind for
        # `orphan_seconds` (its lease gone idle): the checkpoint guard keeps that correct.
        self.leased = leased
        self.orphan_seconds = orphan_seconds
        self._behind_since: dict[str, float] = {}
        # What this process's writers committed, with their text deltas (server.read.offers):
        # a document folded on in memory reads neither the log nor applies them again.
        self._offered = Offers()

    def on_progress(self, listener: Progress) -> None:
        """Call `listener(doc_id, seq)` after each saved batch."""
        self._listeners.append(listener)

    def wake(self, *_args: object) -> None:
        self._wake.set()

    def _on_bus(self, message: BusMessage) -> None:
        if message.event_kind in REWRITES:
            self._offered.drop(message.doc_id)  # what was offered may be rewritten
        self._wake.set()

    def offer(self, doc_id: str, events: Sequence[Offered]) -> None:
        """Events just committed by this process, in seq order, each with its text deltas
        (None when unknown); kept only for a document folded in memory here."""
        if doc_id in self._cache:
            self._offered.add(doc_id, events)

    async def start(self, bus: Bus | None) -> None:
        if bus is not None:
            await bus.subscribe_all(self._on_bus)
        self._task = self.supervisor.spawn("insights", self._run)

    async def stop(self) -> None:
        await self.supervisor.stop(self._task)
        self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self.catch_up()
                failures = 0
            except Exception as exc:
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                self._cache.clear()
                self._offered.clear()
                if isinstance(exc, StorageError):
                    log.warning("insight pass failed, retrying: %s", exc)
                else:
                    log.exception("insight pass failed, retrying")
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            # Let a burst of edits pile up: one pass (one save, one search-text update, which
            # re-indexes the document's text) for them all, instead of one per commit holding
            # SQLite's write lock against the writers' commits. Well within the second search
            # and the stream promise.
            await asyncio.sleep(COALESCE_SECONDS)

    async def catch_up(self) -> int:
        """One pass: every document up to its head. Returns events folded."""
        folded = 0
        behind = await self.insights.behind()
        mine = set(self.leased()) if self.leased is not None else None
        now = time.monotonic()
        self._behind_since = {d: self._behind_since.get(d, now) for d, _, _ in behind}
        for doc_id, head, checkpoint in behind:
            if (mine is not None and doc_id not in mine
                    and now - self._behind_since[doc_id] < self.orphan_seconds):
                continue
            while checkpoint < head:
                try:
                    saved = await self._fold_batch(doc_id, checkpoint, head)
                except CheckpointMoved:
                    self._forget(doc_id)  # another follower got there first
                    break
                if saved == checkpoint:
                    break
                folded += max(saved - checkpoint, 0)
                checkpoint = saved
                for listener in self._listeners:
                    listener(doc_id, saved)
        return folded

    async def _fold_batch(self, doc_id: str, checkpoint: int, head: int) -> int:
        cached = self._cache.get(doc_id)
        continuing = cached is not None and cached.seq == checkpoint
        insight = await self._insight(doc_id, checkpoint)
        until = min(head, checkpoint + self.batch_size)
        # Offered events serve only a state that went on in memory (see the projector).
        offered = self._offered.take(doc_id, checkpoint, until) if continuing else []
        if not continuing:
            self._offered.drop(doc_id)
        batch = InsightBatch(doc_id, checkpoint, checkpoint)
        try:
            if offered:
                for event, deltas in offered:
                    insight.apply(event, batch, deltas)
            else:
                for event in await self.store.read_list(doc_id, checkpoint, until,
                                                          hashes=False):
                    insight.apply(event, batch)
        except NeedsReload:
            self._forget(doc_id)  # loaded again at the checkpoint on the next pass
            self._wake.set()
            return checkpoint
        except NeedsReset as reset:
            self._forget(doc_id)
            await self.insights.save(InsightBatch(doc_id, checkpoint, 0, reset_for=reset.seq))
            return 0
        except BaseException:
            self._forget(doc_id)
            raise
        batch.to_seq = insight.seq
        if batch.to_seq == checkpoint:
            return checkpoint
        if batch.search is not None:
            batch.search = (insight.title, visible(insight.text_now()))
        try:
            await self.insights.save(batch)
        except BaseException:
            self._forget(doc_id)  # memory is ahead of the database
            raise
        return batch.to_seq

    async def _insight(self, doc_id: str, checkpoint: int) -> DocumentInsight:
        cached = self._cache.get(doc_id)
        if cached is not None and cached.seq == checkpoint:
            self._cache.move_to_end(doc_id)
            return cached
        insight = DocumentInsight(doc_id)
        rewritten_at = await self.insights.rewritten_at(doc_id)
        insight.rewritten_at = rewritten_at
        if checkpoint > 0:
            title, _mark = await self.insights.resume_point(doc_id)
            insight.load(await read_history(self.store, doc_id, checkpoint), title,
                         await status_row(self.db, doc_id),
                         await self.insights.last_times(doc_id), rewritten_at)
        self._cache[doc_id] = insight
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return insight

    def _forget(self, doc_id: str) -> None:
        self._cache.pop(doc_id, None)
        self._offered.drop(doc_id)

    async def rebuild(self) -> int:
        """Drop every insight row and fold every log again (`palimpsest rebuild`)."""
        self._cache.clear()
        self._offered.clear()
        await self.insights.reset()
        return await self.catch_up()
