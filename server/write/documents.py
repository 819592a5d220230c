"""Opening, sharing and unloading live documents on this node.

A document is loaded from the latest snapshot plus the events after it the first time an
editor (or a command) needs it, shared by everyone on this node, and unloaded a grace period
after its last user leaves, with a snapshot so the next load is cheap. Each open document has
one writer; the bus tells it when another node has appended, and a sweep compares every open
document with the log's head now and then, since bus hints can be lost.

The sweep runs under the node's `Supervisor` (restarted with backoff after any failure). A
writer whose commits fail retries them itself (server/write/writer.py); `problems()` reports
documents that have been unable to commit for `stall_seconds`. A snapshot keeps pending
structs (server/ydoc.py), so a struct whose dependencies never arrive does not stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from server.bus import EVENT, Bus, BusMessage
from server.errors import Gone, PalimpsestError
from server.review_status import DRAFT
from server.supervision import Supervisor
from server.write.fanout import FanOut
from server.write.lifecycle import DELETED_REASON
from server.write.live_document import LiveDocument
from server.write.writer import CatchUp, DocumentWriter
from server.ydoc import read_history
from storage.errors import StorageError
from storage.event_store import EventStore
from storage.history import save_snapshot_unless_rewritten
from storage.lifecycle import deletion
from storage.records import EventRecord, SnapshotRecord
from storage.status import status_in_log

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DocumentSettings:
    max_batch: int = 256
    grace_seconds: float = 5.0  # how long a document stays loaded after its last user leaves
    sweep_seconds: float = 2.0  # how often open documents are compared with the log (0: never)
    commit_retry_seconds: float = 30.0  # how long a writer retries a failing commit
    stall_seconds: float = 10.0  # a document failing to commit this long makes /healthz fail


class OpenDocument:
    """A loaded document with its writer and the count of its current users."""

    def __init__(self, writer: DocumentWriter, node_id: str) -> None:
        self.writer = writer
        self.users = 0
        self.unload_task: asyncio.Task[None] | None = None
        self._node_id = node_id

    @property
    def doc_id(self) -> str:
        return self.writer.doc_id

    def on_bus(self, message: BusMessage) -> None:
        if message.kind != EVENT or message.origin == self._node_id:
            return  # presence and revocations are the realtime side's; our own echo is ours
        if message.seq > self.writer.document.applied_seq:
            # A hint: the writer applies it if it is the next seq, else first reads the gap
            # from the log; a seq the document has by then is dropped.
            self.writer.submit(CatchUp(message.seq, _as_record(message)))


def _as_record(message: BusMessage) -> EventRecord:
    # The bus carries what applying needs; actor and time stay in the log.
    return EventRecord(message.doc_id, message.seq, message.event_kind, message.payload, "",
                       0.0, {})


class LiveDocuments:
    def __init__(self, store: EventStore, bus: Bus, fanout: FanOut,
                 settings: DocumentSettings, supervisor: Supervisor | None = None) -> None:
        self.supervisor = supervisor or Supervisor()
        self.store = store
        self.bus = bus
        self.fanout = fanout
        self.settings = settings
        self._open: dict[str, OpenDocument] = {}
        self._loading: dict[str, asyncio.Future[OpenDocument]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.loads = 0  # documents loaded from the log (at most one load at a time per document)
        bus.on_reconnect(self.catch_up_all)

    def start(self) -> None:
        if self.settings.sweep_seconds > 0:
            self._sweeper = self.supervisor.spawn("document-sweep", self._sweep_forever)

    async def _sweep_forever(self) -> None:
        # A bus hint can be lost for good (a node killed between its commit and its publish,
        # a message dropped with no later one behind it): now and then, every open document
        # compares its seq with the log's head, in one query for all of them.
        while True:
            await asyncio.sleep(self.settings.sweep_seconds)
            if not self._open:
                continue
            try:
                heads = await self.store.head_seqs(list(self._open))
            except StorageError as exc:
                log.debug("document sweep skipped: %s", exc)
                continue
            for doc_id, head in heads.items():
                opened = self._open.get(doc_id)
                if opened is not None and head > opened.writer.document.applied_seq:
                    opened.writer.submit(CatchUp(head))

    def problems(self) -> list[dict[str, str]]:
        """Documents whose commits have been failing for `stall_seconds`, for /healthz."""
        now = time.monotonic()
        failing = [(o.writer.failing_since, o.doc_id, o.writer.last_error)
                   for o in self._open.values() if o.writer.failing_since is not None
                   and now - o.writer.failing_since > self.settings.stall_seconds]
        if not failing:
            return []
        since, doc_id, error = min(failing)
        return [{"task": "writers",
                 "problem": f"{len(failing)} document(s) cannot commit; {doc_id!r} for "
                            f"{now - since:.1f} s: {error}"}]

    def get(self, doc_id: str) -> OpenDocument | None:
        return self._open.get(doc_id)

    @property
    def open_count(self) -> int:
        return len(self._open)

    async def acquire(self, doc_id: str, *, deleted_ok: bool = False) -> OpenDocument:
        """The document, loaded if needed; pair with release(). Gone if it was deleted
        (unless `deleted_ok`: the command that undeletes it)."""
        # Only when it is neither open nor being loaded here (whoever started the load asked a
        # moment ago; a join storm asks once): deleting a document retires its open copies.
        if (not deleted_ok and doc_id not in self._open and doc_id not in self._loading
                and await deletion(self.store.db, doc_id) is not None):
            raise Gone(DELETED_REASON)
        opened = self._open.get(doc_id)
        if opened is None:
            pending = self._loading.get(doc_id)
            if pending is None:
                pending = asyncio.get_running_loop().create_future()
                self._loading[doc_id] = pending
                try:
                    opened = await self._load(doc_id)
                except BaseException as exc:
                    pending.set_exception(exc)
                    pending.exception()  # mark retrieved: the waiters (if any) re-raise it
                    raise
                finally:
                    self._loading.pop(doc_id, None)
                self._open[doc_id] = opened
                pending.set_result(opened)
            else:
                opened = await asyncio.shield(pending)
        opened.users += 1
        if opened.unload_task is not None:
            opened.unload_task.cancel()
            opened.unload_task = None
        return opened

    def release(self, opened: OpenDocument) -> None:
        opened.users -= 1
        if opened.users == 0 and self._open.get(opened.doc_id) is opened:
            opened.unload_task = asyncio.create_task(self._unload_later(opened))

    async def _load(self, doc_id: str) -> OpenDocument:
        # A read first: opening a document that exists writes nothing (so a full disk or a
        # read-only database still lets clients in to read and to queue their edits).
        if await self.store.document(doc_id) is None:
            await self.store.ensure_document(doc_id)
        self.loads += 1
        document = LiveDocument(doc_id)
        writer = DocumentWriter(document, self.store, self.fanout,
                                max_batch=self.settings.max_batch, on_poisoned=self._discard,
                                retry_seconds=self.settings.commit_retry_seconds)
        opened = OpenDocument(writer, self.bus.node_id)
        # Subscribe before reading, so nothing committed meanwhile is missed: a hint for a
        # seq the load already covers is dropped by the writer.
        await self.bus.subscribe(doc_id, opened.on_bus)
        try:
            document.load(await read_history(self.store, doc_id))
            # The review status in force at the seq loaded (later ones come as events).
            document.status = await status_in_log(self.store.db, doc_id,
                                                  document.applied_seq) or DRAFT
        except BaseException:
            await self.bus.unsubscribe(doc_id, opened.on_bus)
            raise
        writer.start()
        return opened

    async def _unload_later(self, opened: OpenDocument) -> None:
        await asyncio.sleep(self.settings.grace_seconds)
        if opened.users == 0 and self._open.get(opened.doc_id) is opened:
            await self._unload(opened)

    async def _unload(self, opened: OpenDocument) -> None:
        self._open.pop(opened.doc_id, None)
        await self.bus.unsubscribe(opened.doc_id, opened.on_bus)
        writer = opened.writer
        await writer.stop()
        document = writer.document
        if not writer.poisoned and document.applied_seq > 0:
            await self._save_snapshot(document)

    async def _save_snapshot(self, document: LiveDocument, attempts: int = 4) -> None:
        # With its pending structs (server/ydoc.py): yrs leaves them out of document.state().
        snapshot = SnapshotRecord(document.doc_id, document.applied_seq,
                                  document.pending.snapshot_state(document.doc),
                                  document.current_text(), time.time())
        for attempt in range(attempts):
            try:
                latest = await self.store.snapshot_at_or_before(document.doc_id)
                if latest is not None and latest.seq >= document.applied_seq:
                    return
                # Refused if the log was rewritten after this copy's seq: it may hold erased
                # text.
                await save_snapshot_unless_rewritten(self.store.db, snapshot)
                return
            except StorageError as exc:
                # The first use of a pooled connection after a database restart fails: try
                # again, a few times (bounded: this also runs at shutdown).
                if attempt + 1 == attempts:
                    log.warning("snapshot of %s at unload failed: %s", document.doc_id, exc)
                    return
                await asyncio.sleep(0.1 * 2**attempt)

    def _discard(self, writer: DocumentWriter, error: PalimpsestError) -> None:
        """The document's state can no longer be trusted: drop it; its clients reconnect."""
        opened = self._open.get(writer.doc_id)
        if opened is not None and opened.writer is writer:
            self._open.pop(writer.doc_id, None)
        else:
            opened = None
        # Its writer task ends once the batch in hand is done (nothing more is queued).
        task = asyncio.create_task(self._drop(writer, opened))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self.fanout.reset(writer.doc_id, error)

    async def _drop(self, writer: DocumentWriter, opened: OpenDocument | None) -> None:
        if opened is not None:
            await self.bus.unsubscribe(writer.doc_id, opened.on_bus)
        await writer.stop()

    def retire(self, doc_id: str, error: PalimpsestError) -> None:
        """Drop the document's live copy on this node, if open; its clients are closed with
        `error`'s code (see DocumentWriter.retire)."""
        opened = self._open.get(doc_id)
        if opened is not None:
            opened.writer.retire(error)

    def catch_up_all(self) -> None:
        for opened in list(self._open.values()):
            opened.writer.submit(CatchUp())

    async def close(self) -> None:
        """Stop the sweep, finish every writer's queue and snapshot what was open."""
        await self.supervisor.stop(self._sweeper)
        self._sweeper = None
        for opened in list(self._open.values()):
            if opened.unload_task is not None:
                opened.unload_task.cancel()
            try:
                await self._unload(opened)
            except Exception:
                log.exception("unloading %s at shutdown failed", opened.doc_id)
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await task
