"""The projector: follows every document's log and keeps the read models.

Per document it holds a lease and a checkpoint (storage.read_model). A pass claims the lease,
reads the events after the checkpoint in batches, folds them into the document's projection
(projection.py) and saves each batch's rows with the new checkpoint in one transaction. The
lease makes one projector process at a time work on a document; the checkpoint guard in the
save makes a projector whose lease ran out (a long pause) fail instead of writing twice.

It wakes on the bus (every EVENT message) and polls as a fallback, since bus messages may be
lost. After a failure it drops its in-memory state of that document and resumes from the
database on the next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from server.bus import Bus, BusMessage
from server.read.projection import DocumentProjection
from server.read.revisions import GroupingRules
from server.ydoc import read_history
from storage.errors import StorageError
from storage.event_store import EventStore
from storage.read_model import LeaseLost, ProjectionBatch, ReadModel

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]


class Projector:
    def __init__(
        self,
        store: EventStore,
        read_model: ReadModel,
        *,
        snapshot_every: int,
        rules: GroupingRules | None = None,
        poll_interval: float = 1.0,
        coalesce_seconds: float = 0.0,
        lease_seconds: float = 15.0,
        batch_size: int = 1000,
        cache_size: int = 32,
    ) -> None:
        self.store = store
        self.read_model = read_model
        self.snapshot_every = snapshot_every
        self.rules = rules or GroupingRules()
        self.poll_interval = poll_interval
        self.coalesce_seconds = coalesce_seconds
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.owner = uuid.uuid4().hex
        self.lag = 0
        self._cache: OrderedDict[str, DocumentProjection] = OrderedDict()
        self._leases: dict[str, float] = {}  # doc_id -> when our lease runs out
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Progress] = []

    def on_progress(self, listener: Progress) -> None:
        """Call `listener(doc_id, seq)` after each saved batch."""
        self._listeners.append(listener)

    # Lifecycle

    async def start(self, bus: Bus | None) -> None:
        if bus is not None:
            await bus.subscribe_all(self._on_bus)
        self._task = asyncio.create_task(self._run(), name="projector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._leases.clear()
        with contextlib.suppress(StorageError):
            await self.read_model.release(self.owner)

    def _on_bus(self, _message: BusMessage) -> None:
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self.catch_up()
                failures = 0
            except StorageError as exc:
                failures += 1
                log.warning("projector pass failed, retrying: %s", exc)
            except Exception:
                # Whatever went wrong, the read side must not stop for good: log it, back off,
                # and resume from the checkpoints in the database.
                failures += 1
                log.exception("projector pass failed, retrying")
                self._cache.clear()
                self._leases.clear()
            if failures:
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            if self.coalesce_seconds > 0:
                # Let a burst of commits pile up: one pass then projects them all, instead of
                # a pass (lease, read, save) per event competing with the write path.
                await asyncio.sleep(self.coalesce_seconds)

    # Work

    async def catch_up(self, progress: Callable[[int], None] | None = None) -> None:
        """One pass: bring every document this projector can lease up to its head."""
        behind = await self.read_model.documents_behind()
        self.lag = sum(head - checkpoint for _, head, checkpoint in behind)
        for doc_id, head, _ in behind:
            await self.project(doc_id, head, progress)

    async def project(
        self, doc_id: str, head: int, progress: Callable[[int], None] | None = None
    ) -> None:
        """Project `doc_id` up to `head` if its lease can be had; otherwise leave it."""
        while True:
            checkpoint = self._held(doc_id)
            if checkpoint is None:
                now = time.time()
                checkpoint = await self.read_model.claim(
                    doc_id, self.owner, now, self.lease_seconds
                )
                if checkpoint is None:
                    self._leases.pop(doc_id, None)
                    return
                self._leases[doc_id] = now + self.lease_seconds
            if checkpoint >= head:
                return
            started = time.time()
            try:
                saved = await self._project_batch(doc_id, checkpoint, head)
            except LeaseLost:
                # Another projector has it now (the claim below finds so and stops), or a
                # history rewrite reset its checkpoint (the claim starts it again from 0).
                self._forget(doc_id)
                continue
            except StorageError:
                self._forget(doc_id)  # memory may be ahead of the database
                raise
            if saved > checkpoint:
                self._leases[doc_id] = started + self.lease_seconds  # the save renewed it
            self.lag = max(0, self.lag - (saved - checkpoint))
            if progress is not None:
                progress(saved - checkpoint)
            for listener in self._listeners:
                listener(doc_id, saved)

    def _held(self, doc_id: str) -> int | None:
        """The checkpoint of a document whose lease we hold with time to spare and whose
        projection is in memory: no need to ask the database (one write less per pass)."""
        until = self._leases.get(doc_id)
        cached = self._cache.get(doc_id)
        if until is None or cached is None or until - time.time() < self.lease_seconds / 2:
            return None
        return cached.seq

    def _forget(self, doc_id: str) -> None:
        self._cache.pop(doc_id, None)
        self._leases.pop(doc_id, None)

    async def _project_batch(self, doc_id: str, checkpoint: int, head: int) -> int:
        projection = await self._projection(doc_id, checkpoint)
        until = min(head, checkpoint + self.batch_size)
        events = await self.store.read_list(doc_id, checkpoint, until)
        batch = ProjectionBatch(doc_id, checkpoint, checkpoint)
        try:
            for event in events:
                projection.apply(event, batch)
        except BaseException:
            self._forget(doc_id)
            raise
        batch.to_seq = projection.seq
        batch.view = projection.view_row()
        if batch.to_seq == checkpoint:
            return checkpoint
        await self.read_model.save(batch, self.owner, time.time(), self.lease_seconds)
        return batch.to_seq

    async def _projection(self, doc_id: str, checkpoint: int) -> DocumentProjection:
        cached = self._cache.get(doc_id)
        if cached is not None and cached.seq == checkpoint:
            self._cache.move_to_end(doc_id)
            return cached
        projection = DocumentProjection(doc_id, self.rules, self.snapshot_every)
        if checkpoint > 0:
            projection.load(
                await read_history(self.store, doc_id, checkpoint),
                await self.read_model.last_revision(doc_id),
                await self.read_model.view(doc_id),
            )
        self._cache[doc_id] = projection
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return projection
