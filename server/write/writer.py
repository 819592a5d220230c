"""The document writer: turns queued proposals into committed events, many per transaction.

One writer task per open document. It takes every proposal waiting in its queue, lets each
decide its event against the live document under the document's lock (which validates it and
drops no-ops), appends the events in one transaction, and only after the commit hands them to
the fan-out port and answers whoever waits. While the writer waits on the database, more
proposals queue, so the next batch grows with the load: that is the group commit.

Every command, an editor's keystroke or an API call, comes through here: one seq order, one
fan-out, one acknowledgement path for all.

When the store fails a commit (the database restarting, a full disk), the writer keeps the
batch and the document's lock and retries the same append with backoff (0.1 s doubling to
2 s) for up to `retry_seconds`, while later proposals wait in the queue in their order:
clients stay connected and see their edits stored late rather than lost. Before each retry it
checks whether the failed attempt did commit after all (a connection lost at commit), so
nothing is appended twice. Only past the bound (or with too much queued, or at shutdown) is
the document poisoned: every waiting proposal is refused, its clients are told to reconnect
and resend (1013), and the writer's task ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from server.errors import InvalidUpdate, PalimpsestError, TaintingUpdate, Unavailable
from server.events import Event, encode
from server.write.fanout import Committed, FanOut, Origin
from server.write.lifecycle import ends_live_copy
from server.write.live_document import LiveDocument
from server.write.update_guard import reencodes
from storage.errors import StorageError
from storage.event_store import EventStore
from storage.records import EventRecord, NewEvent

log = logging.getLogger(__name__)

# Decides a command's event against the live document, under its lock: the event to append,
# None for a no-op, or a PalimpsestError raised to refuse it. It may change the document (an
# update is applied to find out whether it changes anything); the commit then stores that.
Decide = Callable[[LiveDocument], Event | None]

RELOADING = "document is reloading; reconnect and resend"
STORAGE_UNAVAILABLE = "storage unavailable; reconnect and resend"
MAX_QUEUED = 10_000  # proposals waiting while a commit is retried, before giving up early


@dataclass(slots=True, eq=False)
class Proposal:
    """A command, ready for the writer (built by server.write.handlers)."""

    decide: Decide
    actor: str
    origin: Origin | None = None
    # The batch must prove the doc still encodes after applying (content other than text).
    check_encoding: bool = False
    done: asyncio.Future[EventRecord | None] | None = None


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Bring the document up to `until_seq` (None: the log's head), after a bus hint or outage.

    `event` is the hinted event itself (from the bus): applied directly when it is the next
    seq; otherwise the log is read, so nothing is applied out of order or twice.
    """

    until_seq: int | None = None
    event: EventRecord | None = None


Work = Proposal | CatchUp


class DocumentWriter:
    def __init__(
        self,
        document: LiveDocument,
        store: EventStore,
        fanout: FanOut,
        *,
        max_batch: int,
        on_poisoned: Callable[[DocumentWriter, PalimpsestError], None],
        retry_seconds: float = 30.0,
    ) -> None:
        self.document = document
        self.doc_id = document.doc_id
        self.store = store
        self.fanout = fanout
        self.max_batch = max_batch
        self.queue: asyncio.Queue[Work] = asyncio.Queue()
        self._on_poisoned = on_poisoned
        self._task: asyncio.Task[None] | None = None
        self.poisoned = False
        self.retry_seconds = retry_seconds
        self.failing_since: float | None = None  # monotonic: a commit has failed since then
        self.last_error = ""
        self._closing = False
        self.retired: PalimpsestError | None = None  # why this copy serves no one any more
        self._catch_up_retry: asyncio.TimerHandle | None = None
        self._catch_up_failures = 0
        if getattr(fanout, "wants_text_deltas", False):
            document.capture_text_deltas()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"writer-{self.doc_id}")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Finish what is queued, then stop. A commit being retried gives up at its next
        failure: at shutdown the clients are told to reconnect (elsewhere) and resend."""
        if self._task is None:
            return
        self._closing = True
        if self._catch_up_retry is not None:
            self._catch_up_retry.cancel()
        if not self._task.done():
            await self.queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def submit(self, work: Work) -> None:
        if self.poisoned:
            self._refuse(work, Unavailable(RELOADING))
            return
        self.queue.put_nowait(work)

    # What the edges may read of the live document

    async def state_vector(self) -> bytes:
        self._check_retired()
        async with self.document.lock:
            return self.document.state_vector()

    async def missing_from(self, state_vector: bytes) -> bytes:
        self._check_retired()
        async with self.document.lock:
            return self.document.missing_from(state_vector)

    def _check_retired(self) -> None:
        # A connection that joined while the copy was being retired must not be answered
        # from it (it may hold erased content, or a deleted document).
        if self.retired is not None:
            raise self.retired

    # The loop

    async def _run(self) -> None:
        # Runs until stopped or poisoned: a poisoned document's state cannot be trusted, its
        # clients reload it into a new writer, and this task must not linger.
        while not self.poisoned:
            first = await self.queue.get()
            batch: list[Work] = [first]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._process(batch)
            except asyncio.CancelledError:
                raise
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # pycrdt panics are BaseExceptions
                log.exception("writer of %s failed", self.doc_id)
                self._poison(batch, Unavailable("internal error; reconnect and resend"))
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def _process(self, batch: list[Work]) -> None:
        # Consecutive proposals commit together; a CatchUp is handled where it stands.
        proposals: list[Proposal] = []
        for work in batch:
            if isinstance(work, Proposal):
                proposals.append(work)
                continue
            if proposals:
                await self._commit(proposals)
                proposals = []
            await self._catch_up(work)
        if proposals:
            await self._commit(proposals)

    async def _commit(self, proposals: list[Proposal]) -> None:
        document = self.document
        accepted: list[Proposal] = []
        new: list[NewEvent] = []
        no_ops: list[Proposal] = []
        refused: set[int] = set()  # clients refused in this batch: their later writes drop
        records: list[EventRecord] = []
        missed: list[EventRecord] = []
        deltas: list[list[Any] | None] = []  # of each accepted proposal, when captured
        async with document.lock:
            document.take_text_deltas()  # what catch-ups applied: not ours
            # Re-encoding costs O(delete set): 0.5 ms a batch on a 260,000-edit document. Text
            # is what yrs encodes on every edit, so only batches with other content (as the
            # validation's pre-scan found) pay for it.
            check = any(p.check_encoding for p in proposals)
            state_before = document.state_vector() if check else None
            now = time.time()
            for proposal in proposals:
                origin = proposal.origin
                if self.poisoned:
                    self._refuse(proposal, Unavailable(RELOADING))
                    continue
                if origin is not None and (
                        origin.client in refused or not self.fanout.accepts(origin)):
                    continue  # nothing after a refused message applies
                document.take_text_deltas()
                try:
                    event = proposal.decide(document)
                except TaintingUpdate as exc:
                    # The doc now holds what the log never will: rebuild it. Everyone else
                    # in the batch is told to reconnect and resend.
                    self._refuse(proposal, exc)
                    self._poison(proposals, Unavailable(RELOADING))
                    return
                except PalimpsestError as exc:
                    self._refuse(proposal, exc)
                    if origin is not None:
                        refused.add(origin.client)
                    continue
                if event is None:
                    no_ops.append(proposal)
                else:
                    accepted.append(proposal)
                    new.append(encode(event, proposal.actor, now))
                    deltas.append(document.take_text_deltas())
            if accepted and state_before is not None and not reencodes(document.doc,
                                                                       state_before):
                # Applied, yet the doc can no longer encode what it holds (a yrs fault): store
                # nothing, rebuild the doc from the log.
                self._poison(accepted, InvalidUpdate("update cannot be re-encoded"))
                return
            if accepted:
                try:
                    records, missed = await self._append(new)
                except StorageError:
                    # The doc now holds changes the log does not (or lacks events before
                    # ours): it must be rebuilt. Resends after the reconnect are no-ops.
                    self._poison(accepted, Unavailable(STORAGE_UNAVAILABLE))
                    return
                document.applied_seq = records[-1].seq

        if missed:
            self.fanout.show(self.doc_id, missed)
        if records:
            if missed:  # applied after ours, out of log order: the deltas do not follow it
                deltas = [None] * len(records)
            await self.fanout.publish(
                self.doc_id,
                [Committed(r, p.origin, d)
                 for p, r, d in zip(accepted, records, deltas, strict=True)],
            )
        for proposal, record in zip(accepted, records, strict=True):
            _resolve(proposal, record)
        for proposal in no_ops:
            _resolve(proposal, None)
        origins = [p.origin for p in proposals
                   if p.origin is not None and p.origin.client not in refused]
        if origins:
            self.fanout.acknowledge(self.doc_id, origins, document.applied_seq)
        self._retire_if_ended([*missed, *records])

    async def _append(self, new: list[NewEvent]) -> tuple[list[EventRecord], list[EventRecord]]:
        """Append `new` (retrying, bounded); its records and the events other nodes appended
        before them, now applied. Raises StorageError once retrying is over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_seconds
        failures = 0
        while True:
            try:
                if failures:
                    landed = await self._landed(new)
                    if landed is not None:
                        records, missed = landed
                        break
                records = await self.store.append(self.doc_id, new)
                # Another node may have appended since our last event: read those in too.
                missed = await self._read_missed(records[0].seq - 1)
                break
            except StorageError as exc:
                failures += 1
                self.last_error = str(exc)[:300]
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                delay = min(0.1 * 2 ** (failures - 1), 2.0)
                if (self._closing or loop.time() + delay > deadline
                        or self.queue.qsize() > MAX_QUEUED):
                    log.warning("commit to %s failed %d times, giving up: %s", self.doc_id,
                                failures, exc)
                    raise
                if failures == 1:
                    log.warning("commit to %s failed, retrying for up to %.0f s: %s",
                                self.doc_id, self.retry_seconds, exc)
                await asyncio.sleep(delay)
        if failures:
            log.info("commit to %s succeeded after %d failures", self.doc_id, failures)
        self.failing_since = None
        return records, missed

    async def _landed(
        self, new: list[NewEvent]
    ) -> tuple[list[EventRecord], list[EventRecord]] | None:
        """After a failed append: did it commit all the same (the reply was lost)? Then its
        records, and the events before them (applied now); None if it did not."""
        document = self.document
        after = await self.store.read_list(self.doc_id, document.applied_seq)
        n = len(new)
        for start in range(len(after) - n + 1):
            run = after[start:start + n]
            if all((r.kind, r.payload, r.actor) == (e.kind, e.payload, e.actor)
                   for r, e in zip(run, new, strict=True)):
                missed = after[:start]
                for event in missed:
                    document.apply_event(event)
                return run, missed
        return None

    async def _read_missed(self, until_seq: int) -> list[EventRecord]:
        document = self.document
        if until_seq <= document.applied_seq:
            return []
        missed = await self.store.read_list(self.doc_id, document.applied_seq, until_seq)
        for event in missed:
            document.apply_event(event)
        return missed

    async def _catch_up(self, work: CatchUp) -> None:
        document = self.document
        until_seq = work.until_seq
        if until_seq is not None and until_seq <= document.applied_seq:
            return  # a seq the document has: a duplicate, or a hint its own commit overtook
        hinted = work.event
        try:
            async with document.lock:
                if hinted is not None and hinted.seq == document.applied_seq + 1:
                    events = [hinted]  # the next seq: the log has nothing to add
                else:
                    # A gap, or no hint at all (an outage): read the log, in order, before
                    # applying anything after the gap.
                    events = await self.store.read_list(self.doc_id, document.applied_seq,
                                                        until_seq)
                events = [e for e in events if document.apply_event(e)]
        except StorageError as exc:
            log.warning("catch-up of %s failed: %s", self.doc_id, exc)
            self._retry_catch_up()
            return
        self._catch_up_failures = 0
        if events:
            self.fanout.show(self.doc_id, events)
            self._retire_if_ended(events)

    def _retry_catch_up(self) -> None:
        # The hint that failed may be the last one for a while: without a retry the document
        # would stay behind until the next event or bus reconnect.
        if self._catch_up_retry is not None:
            return
        self._catch_up_failures += 1
        delay = min(0.1 * 2**self._catch_up_failures, 5.0)

        def retry() -> None:
            self._catch_up_retry = None
            self.submit(CatchUp())

        self._catch_up_retry = asyncio.get_running_loop().call_later(delay, retry)

    def _retire_if_ended(self, records: Sequence[EventRecord]) -> None:
        ended = ends_live_copy(records)
        if ended is not None:
            self.retire(ended)

    def retire(self, error: PalimpsestError) -> None:
        """This live copy must serve no one any more (the document was deleted, or its stored
        history rewritten): queued work is refused with `error`, and the owner drops the copy
        and closes its clients with `error`'s code."""
        if self.poisoned:
            return
        self.retired = error
        self.poisoned = True
        self._on_poisoned(self, error)
        while not self.queue.empty():
            self._refuse(self.queue.get_nowait(), error)
            self.queue.task_done()

    def _refuse(self, work: Work, error: PalimpsestError) -> None:
        if isinstance(work, CatchUp):
            return
        if work.origin is not None:
            self.fanout.reject(self.doc_id, work.origin, error)
        if work.done is not None and not work.done.done():
            work.done.set_exception(error)

    def _poison(self, work: Sequence[Work], error: PalimpsestError) -> None:
        if not self.poisoned:
            self.poisoned = True
            if self._catch_up_retry is not None:
                self._catch_up_retry.cancel()
                self._catch_up_retry = None
            self._on_poisoned(self, Unavailable(RELOADING))
        for item in work:
            self._refuse(item, error)
        while not self.queue.empty():
            self._refuse(self.queue.get_nowait(), error)
            self.queue.task_done()


def _resolve(proposal: Proposal, record: EventRecord | None) -> None:
    if proposal.done is not None and not proposal.done.done():
        proposal.done.set_result(record)
