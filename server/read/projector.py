"""The projector: follows every document's log and keeps the read models.

Per document it holds a lease and a checkpoint (storage.read_model). A pass claims the lease,
reads the events after the checkpoint in batches, folds them into the document's projection
(projection.py) and saves each batch's rows with the new checkpoint in one transaction. The
lease makes one projector process at a time work on a document; the checkpoint guard in the
save makes a projector whose lease ran out (a long pause) fail instead of writing twice.

It wakes on the bus (every EVENT message) and polls as a fallback, since bus messages may be
lost. After a failure it drops its in-memory state of that document and resumes from the
database on the next pass.

Leases are short (`lease_seconds`, 3 s by default) and timed by the database's clock. A
heartbeat renews the ones this projector is using every third of that, and gives back the ones
it has not used for `idle_release` seconds; a clean stop gives back all. So when a node dies,
even by SIGKILL, another node's projector takes its documents over within a lease and a poll,
whatever either node's clock says.

Health (`problems()`, read by `/healthz`): the projector is unhealthy when its passes have
failed for `stall_seconds` (the database is away); when documents are behind their log and no
checkpoint has moved for `stall_seconds`, whichever projector holds the leases (the lag grows,
or at least does not shrink: leases held by a dead node, a wedged projector); and when a
document's events keep failing to project (a bug: the other documents carry on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence

from server.bus import Bus, BusMessage
from server.events import REWRITES
from server.read.offers import Offered, Offers
from server.read.projection import DocumentProjection
from server.read.revisions import GroupingRules
from server.supervision import Supervisor
from server.ydoc import read_history
from storage.errors import StorageError
from storage.event_store import EventStore
from storage.packing import CHUNK, chunk_of
from storage.read_model import LeaseLost, ProjectionBatch, ReadModel

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]
BUSY_PASS = 50  # events in one pass that make the next wait BUSY_COALESCE_SECONDS
BUSY_COALESCE_SECONDS = 0.25


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
        lease_seconds: float = 3.0,
        idle_release: float = 30.0,
        stall_seconds: float = 10.0,
        batch_size: int = 1000,
        cache_size: int = 32,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.store = store
        self.read_model = read_model
        self.snapshot_every = snapshot_every
        self.rules = rules or GroupingRules()
        self.poll_interval = poll_interval
        self.coalesce_seconds = coalesce_seconds
        self.lease_seconds = lease_seconds
        self.idle_release = idle_release
        self.stall_seconds = stall_seconds
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.supervisor = supervisor or Supervisor()
        self.owner = uuid.uuid4().hex
        self.lag = 0
        self.last_pass_events = 0
        self._cache: OrderedDict[str, DocumentProjection] = OrderedDict()
        # doc_id -> when our lease runs out, by time.monotonic() (a local estimate that errs
        # early: it starts before the statement that took the lease in the database's time)
        self._leases: dict[str, float] = {}
        self._used: dict[str, float] = {}  # doc_id -> when we last projected it (monotonic)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._listeners: list[Progress] = []
        # Health
        self.failing_since: float | None = None  # monotonic time of the first failed pass
        self.last_error = ""
        self.last_pass: float | None = None  # monotonic time of the last successful pass
        self._behind: dict[str, tuple[int, int]] = {}  # doc -> (checkpoint, head), last pass
        self._progress_at = time.monotonic()  # when any checkpoint last moved (or none lagged)
        self._skip_until: dict[str, float] = {}  # documents whose projection raised: backoff
        self._doc_failures: dict[str, int] = {}
        # Events this process's write side committed, with the text deltas its own apply gave
        # (`offer`): a projection that follows on from them reads neither the log nor applies
        # them again. Only a hint: anything out of step is read from the log instead.
        self._offered = Offers()

    @property
    def leases(self) -> list[str]:
        """The documents whose lease this projector believes it holds."""
        return list(self._leases)

    def on_progress(self, listener: Progress) -> None:
        """Call `listener(doc_id, seq)` after each saved batch."""
        self._listeners.append(listener)

    # Lifecycle

    async def start(self, bus: Bus | None) -> None:
        if bus is not None:
            await bus.subscribe_all(self._on_bus)
        self._task = self.supervisor.spawn("projector", self._run)
        self._heartbeat = self.supervisor.spawn("projector-leases", self._renew_forever)

    async def stop(self) -> None:
        await self.supervisor.stop(self._heartbeat)
        self._heartbeat = None
        await self.supervisor.stop(self._task)
        self._task = None
        self._leases.clear()
        # Give the leases back, so another node's projector carries on at once. Bounded: at
        # shutdown a database that is away must not hold the node up.
        with contextlib.suppress(StorageError, TimeoutError):
            await asyncio.wait_for(self.read_model.release(self.owner), 5.0)

    def _on_bus(self, message: BusMessage) -> None:
        if message.event_kind in REWRITES:
            self._offered.drop(message.doc_id)  # what was offered may be rewritten
        self._wake.set()

    def offer(self, doc_id: str, events: Sequence[Offered]) -> None:
        """Events just committed by this process, in seq order, each with its text deltas
        (None when unknown): server.read.offers. Kept only for a document this projector is
        following (another node's projector may hold the lease: nothing would take them)."""
        if doc_id in self._cache:
            self._offered.add(doc_id, events)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self.catch_up()
                failures = 0
                self.failing_since = None
                self.last_pass = time.monotonic()
            except Exception as exc:
                # Whatever went wrong, the read side must not stop for good: log it, back off,
                # and resume from the checkpoints in the database.
                failures += 1
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if isinstance(exc, StorageError):
                    log.warning("projector pass failed, retrying: %s", exc)
                else:
                    log.exception("projector pass failed, retrying")
                    self._cache.clear()
                    self._leases.clear()
            if failures:
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            if self.coalesce_seconds > 0:
                # Let a burst of commits pile up: one pass then projects them all, instead of
                # a pass (lease, read, save) per event competing with the write path. Under
                # a sustained stream (the last pass had many), longer: each save writes the
                # document's text and its open chunk of changes whole, so fewer, larger
                # batches cost the process and the database less per event.
                busy = self.last_pass_events >= BUSY_PASS
                await asyncio.sleep(BUSY_COALESCE_SECONDS if busy else self.coalesce_seconds)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.renew_leases()
            except StorageError as exc:
                log.debug("projector lease renewal failed: %s", exc)

    async def renew_leases(self) -> None:
        """Renew the leases in use; give back the ones idle for `idle_release` seconds."""
        now = time.monotonic()
        idle = [d for d in self._leases if now - self._used.get(d, 0.0) > self.idle_release]
        if idle:
            for doc_id in idle:
                self._forget(doc_id)
            await self.read_model.release(self.owner, idle)
        if not self._leases:
            return
        held = await self.read_model.renew(self.owner, list(self._leases), self.lease_seconds)
        for doc_id in list(self._leases):
            if doc_id in held:
                self._leases[doc_id] = now + self.lease_seconds
            else:
                self._forget(doc_id)  # it lapsed and another projector has it now

    # Health

    def problems(self) -> list[dict[str, str]]:
        """What keeps the read side from following the log, for `/healthz` (empty: healthy)."""
        now = time.monotonic()
        found: list[dict[str, str]] = []
        if self.failing_since is not None and now - self.failing_since > self.stall_seconds:
            found.append({"task": "projector",
                          "problem": f"no pass has succeeded for {now - self.failing_since:.1f}"
                                     f" s; last error: {self.last_error}"})
        elif self._behind and now - self._progress_at > self.stall_seconds:
            doc_id, (checkpoint, head) = next(iter(self._behind.items()))
            found.append({"task": "projector",
                          "problem": f"{len(self._behind)} document(s) behind their log "
                                     f"({self.lag} events) and no projector has made progress "
                                     f"for {now - self._progress_at:.1f} s; {doc_id!r} is at "
                                     f"{checkpoint} of {head}"})
        broken = [d for d, n in self._doc_failures.items() if n >= 3]
        if broken:
            found.append({"task": "projector",
                          "problem": f"{len(broken)} document(s) fail to project, "
                                     f"{broken[0]!r} {self._doc_failures[broken[0]]} times"})
        return found

    def _observe(self, behind: list[tuple[str, int, int]]) -> None:
        """Note progress made by anyone (a checkpoint moved, a document caught up) since the
        last pass: the read side stalls when documents are behind and none of it happens."""
        seen = {doc_id: (checkpoint, head) for doc_id, head, checkpoint in behind}
        before = self._behind
        if not seen or any(before.get(d, (c,))[0] != c for d, (c, _) in seen.items()) \
                or any(d not in seen for d in before):
            self._progress_at = time.monotonic()
        self._behind = seen

    # Work

    async def catch_up(self, progress: Callable[[int], None] | None = None) -> None:
        """One pass: bring every document this projector can lease up to its head."""
        behind = await self.read_model.documents_behind()
        self._observe(behind)
        self.lag = sum(head - checkpoint for _, head, checkpoint in behind)
        self.last_pass_events = self.lag  # what this pass has to project (a busy stream?)
        now = time.monotonic()
        for doc_id, head, _ in behind:
            if self._skip_until.get(doc_id, 0.0) > now:
                continue
            try:
                await self.project(doc_id, head, progress)
            except StorageError:
                raise  # the database: the whole pass backs off
            except Exception:
                # This document's events fail to project (a bug): the others carry on, this
                # one is retried with backoff, and /healthz reports it stuck.
                failures = self._doc_failures.get(doc_id, 0) + 1
                self._doc_failures[doc_id] = failures
                self._skip_until[doc_id] = now + min(0.5 * 2**failures, 60.0)
                log.exception("projecting %s failed (%d times); retrying later", doc_id,
                              failures)
            else:
                if self._doc_failures.pop(doc_id, None) is not None:
                    self._skip_until.pop(doc_id, None)

    async def project(
        self, doc_id: str, head: int, progress: Callable[[int], None] | None = None
    ) -> None:
        """Project `doc_id` up to `head` if its lease can be had; otherwise leave it."""
        while True:
            checkpoint = self._held(doc_id)
            if checkpoint is None:
                asked = time.monotonic()
                checkpoint = await self.read_model.claim(
                    doc_id, self.owner, None, self.lease_seconds
                )
                if checkpoint is None:
                    self._forget(doc_id)
                    return
                self._leases[doc_id] = asked + self.lease_seconds
            self._used[doc_id] = time.monotonic()
            if checkpoint >= head:
                return
            started = time.monotonic()
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
                self._progress_at = time.monotonic()
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
        if (until is None or cached is None
                or until - time.monotonic() < self.lease_seconds / 2):
            return None
        return cached.seq

    def _forget(self, doc_id: str) -> None:
        self._offered.drop(doc_id)
        self._cache.pop(doc_id, None)
        self._leases.pop(doc_id, None)
        self._used.pop(doc_id, None)

    async def _project_batch(self, doc_id: str, checkpoint: int, head: int) -> int:
        cached = self._cache.get(doc_id)
        continuing = cached is not None and cached.seq == checkpoint
        projection = await self._projection(doc_id, checkpoint)
        until = min(head, checkpoint + self.batch_size)
        # Offered events serve only a projection that went on in memory: a new one starts
        # from the database, and what was offered before it may predate a rewrite.
        offered = self._offered.take(doc_id, checkpoint, until) if continuing else []
        if not continuing:
            self._offered.drop(doc_id)
        batch = ProjectionBatch(doc_id, checkpoint, checkpoint)
        try:
            if offered:
                for event, deltas in offered:
                    projection.apply(event, batch, deltas)
            else:
                for event in await self.store.read_list(doc_id, checkpoint, until,
                                                          hashes=False):
                    projection.apply(event, batch)
        except BaseException:
            self._forget(doc_id)
            raise
        projection.finish(batch)
        batch.to_seq = projection.seq
        batch.view = projection.view_row()
        if batch.to_seq == checkpoint:
            return checkpoint
        await self.read_model.save(batch, self.owner, None, self.lease_seconds)
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
                await self.read_model.packed_changes(
                    doc_id, chunk_of(checkpoint + 1) * CHUNK, checkpoint),
            )
        self._cache[doc_id] = projection
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return projection
