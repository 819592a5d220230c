"""Command handlers: one per command type, every one through the document's writer.

A handler checks what needs no live document (shapes, sizes, that the document exists), reads
what it needs from the log, then proposes a decision to the document's writer, which runs it
under the document's lock in the next group commit. So an editor's keystroke, a rename and a
restore get their seqs, their fan-out and their acknowledgement the same way.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from pycrdt import Doc, Text

from server.errors import (
    BadRequest,
    Conflict,
    HistoryRewritten,
    NotFound,
    PalimpsestError,
    ReadOnlyDocument,
)
from server.events import (
    DocumentCreated,
    DocumentDeleted,
    DocumentRenamed,
    DocumentUndeleted,
    Event,
    HistoryCompacted,
    HistoryErased,
    RetentionSet,
    RevisionRestored,
    StatusChanged,
    UpdateApplied,
    VersionDeleted,
    VersionNamed,
    VersionRenamed,
    decode,
    encode,
)
from server.review_status import check_transition, clean_note, clean_target
from server.write.commands import (
    ApplyUpdate,
    ChangeStatus,
    Command,
    CompactHistory,
    CopyDocument,
    CreateDocument,
    DeleteDocument,
    DeleteVersion,
    EraseHistory,
    NameVersion,
    RenameDocument,
    RenameVersion,
    RestoreRevision,
    SetRetention,
    UndeleteDocument,
)
from server.write.compaction import plan_rewrite
from server.write.copy import text_update
from server.write.documents import LiveDocuments
from server.write.erasure import plan_erasure
from server.write.fanout import Committed, Origin
from server.write.lifecycle import REWRITTEN_REASON
from server.write.live_document import LiveDocument
from server.write.read_only import READ_ONLY_MESSAGE, would_change
from server.write.restore import plan_restore
from server.write.validation import (
    EMPTY_UPDATE,
    check_doc_id,
    clean_reason,
    clean_title,
    clean_version_name,
)
from server.write.writer import DocumentWriter, Proposal
from server.ydoc import PendingUpdates, read_history, replay
from storage.event_store import EventStore
from storage.history import HistoryChanged, Rewrite, rewrite
from storage.lifecycle import deletion
from storage.records import EventRecord
from storage.scrub import scrub

MAX_KEEP_DAYS = 36_500.0


def update_proposal(command: ApplyUpdate, origin: Origin | None = None) -> Proposal:
    """An editor's update: applied to find out whether it changes anything (a resend after a
    reconnect does not, and is stored as nothing)."""
    update = command.update

    def decide(document: LiveDocument) -> Event | None:
        if document.read_only:
            # Published or archived since the edge let it through: refused as a read-only
            # connection's update is (nothing stored), unless it changes nothing.
            if would_change(document.doc, update):
                raise ReadOnlyDocument(READ_ONLY_MESSAGE)
            return None
        return UpdateApplied(update) if document.try_apply(update) else None

    return Proposal(decide, command.actor, origin, check_encoding=not command.text_only)


class WriteSide:
    """The write side's entrance: editors' updates and the API's commands."""

    def __init__(self, store: EventStore, documents: LiveDocuments) -> None:
        self.store = store
        self.documents = documents
        self._handlers: dict[type, Callable[[Any], Coroutine[Any, Any, EventRecord]]] = {
            CreateDocument: self._create,
            RenameDocument: self._rename,
            NameVersion: self._name_version,
            RestoreRevision: self._restore,
            DeleteDocument: self._delete,
            UndeleteDocument: self._undelete,
            SetRetention: self._set_retention,
            EraseHistory: self._erase,
            CompactHistory: self._compact,
            RenameVersion: self._rename_version,
            DeleteVersion: self._delete_version,
            CopyDocument: self._copy,
            ChangeStatus: self._change_status,
        }

    def propose_update(self, writer: DocumentWriter, command: ApplyUpdate,
                       origin: Origin) -> None:
        """The editors' path: queued without waiting; the fan-out port answers the sender."""
        writer.submit(update_proposal(command, origin))

    async def execute(self, command: Command) -> EventRecord:
        """Run an API command; its committed event, or a PalimpsestError saying why not."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"no handler for {type(command).__name__}")
        return await handler(command)

    async def _propose(self, doc_id: str, decide: Callable[[LiveDocument], Event | None],
                       actor: str, *, deleted_ok: bool = False) -> EventRecord | None:
        opened = await self.documents.acquire(doc_id, deleted_ok=deleted_ok)
        try:
            done: asyncio.Future[EventRecord | None] = asyncio.get_running_loop().create_future()
            opened.writer.submit(Proposal(decide, actor, None, done=done))
            return await done
        finally:
            self.documents.release(opened)

    async def _decided(self, doc_id: str, event: Event, actor: str) -> EventRecord:
        record = await self._propose(doc_id, lambda _document: event, actor)
        assert record is not None  # a decision that always has an event
        return record

    async def _head(self, doc_id: str) -> int:
        doc = await self.store.document(doc_id)
        if doc is None:
            raise NotFound(f"document {doc_id!r} does not exist")
        return doc.head_seq

    async def _seq_in_log(self, doc_id: str, seq: int) -> None:
        head = await self._head(doc_id)
        if seq < 0:
            raise BadRequest("seq must be 0 or more")
        if seq > head:
            raise NotFound(f"document {doc_id!r} has no seq {seq}")

    # One handler per command

    async def _create(self, command: CreateDocument) -> EventRecord:
        title = clean_title(command.title)
        check_doc_id(command.doc_id)
        if not await self.store.ensure_document(command.doc_id, title):
            raise Conflict(f"document {command.doc_id!r} already exists")
        return await self._decided(command.doc_id, DocumentCreated(title), command.actor)

    async def _rename(self, command: RenameDocument) -> EventRecord:
        title = clean_title(command.title)
        await self._head(command.doc_id)
        return await self._decided(command.doc_id, DocumentRenamed(title), command.actor)

    async def _name_version(self, command: NameVersion) -> EventRecord:
        name = clean_version_name(command.name)
        await self._seq_in_log(command.doc_id, command.seq)
        return await self._decided(command.doc_id, VersionNamed(command.seq, name),
                                   command.actor)

    async def _restore(self, command: RestoreRevision) -> EventRecord:
        """One event that makes every root type what it was at `command.seq` (history only
        grows). CannotRestore (422) and nothing appended if some content cannot be."""
        await self._seq_in_log(command.doc_id, command.seq)
        target = await self.state_at(command.doc_id, command.seq)

        def decide(document: LiveDocument) -> Event:
            if document.read_only:  # published or archived: its text stays as it is
                raise ReadOnlyDocument(f"document is {document.status}: reopen it first")
            # Planned against the live document under its lock, so concurrent edits that
            # committed meanwhile are kept where the restore does not touch them.
            update = plan_restore(document.state(), target)
            if update is not None:  # yrs wrote its JSON objects: their writers' key order
                update = document.pending.key_orders.restore(update)
            if update is None:
                # Already that document: still record who restored what, with an empty update.
                return RevisionRestored(EMPTY_UPDATE, command.seq, command.revision)
            document.try_apply(update)
            return RevisionRestored(update, command.seq, command.revision)

        record = await self._propose(command.doc_id, decide, command.actor)
        assert record is not None
        return record

    async def _delete(self, command: DeleteDocument) -> EventRecord:
        """Through the writer like any command: the commit closes the live connections for
        good (server.write.lifecycle) on every node; a deleted document is Gone to acquire."""
        reason = clean_reason(command.reason, required=False)
        await self._head(command.doc_id)
        return await self._decided(command.doc_id, DocumentDeleted(reason), command.actor)

    async def _undelete(self, command: UndeleteDocument) -> EventRecord:
        await self._head(command.doc_id)
        if await deletion(self.store.db, command.doc_id) is None:
            raise Conflict(f"document {command.doc_id!r} is not deleted")
        record = await self._propose(command.doc_id, lambda _document: DocumentUndeleted(),
                                     command.actor, deleted_ok=True)
        assert record is not None
        return record

    async def _set_retention(self, command: SetRetention) -> EventRecord:
        keep = command.keep_days
        if keep is not None and not (math.isfinite(keep) and 0 <= keep <= MAX_KEEP_DAYS):
            raise BadRequest(f"keep_days must be from 0 to {MAX_KEEP_DAYS:.0f}, or null")
        await self._head(command.doc_id)
        return await self._decided(command.doc_id, RetentionSet(keep), command.actor)

    async def _erase(self, command: EraseHistory) -> EventRecord:
        """Rewrite the selected events' content in the log (placeholders), re-chain, record
        who/when/why/which, reset the read side, and drop every live copy: its clients
        reconnect to the rewritten state (server.write.erasure, storage.history)."""
        reason = clean_reason(command.reason)
        head = await self._head(command.doc_id)
        plan = await plan_erasure(self.store, command.doc_id, head, from_seq=command.from_seq,
                                  to_seq=command.to_seq, actor=command.erased_actor)
        audit = encode(HistoryErased(reason, plan.events, command.from_seq, command.to_seq,
                                     command.erased_actor), command.actor, time.time())
        try:
            done = await rewrite(self.store.db, Rewrite(command.doc_id, audit, plan.expected,
                                                        plan.payloads, plan.metas))
        except HistoryChanged as exc:
            raise Conflict(f"{exc}; retry") from None
        await self._rewritten(done.audit, HistoryRewritten(REWRITTEN_REASON))
        # No byte of the old content left in SQLite's files (storage.scrub).
        await scrub(self.store.db)
        return done.audit

    async def _compact(self, command: CompactHistory) -> EventRecord:
        """Merge each planned run into one event (server.write.compaction). Every state the
        live copies hold stays the same: they only catch up with the audit event."""
        await self._head(command.doc_id)
        plan = await plan_rewrite(self.store, command.doc_id, command.segments)
        if not plan.merged:
            raise Conflict(f"nothing left to compact in {command.doc_id!r}: plan again")
        audit = encode(HistoryCompacted(command.before_time, plan.merged, plan.absorbed),
                       command.actor, time.time())
        try:
            done = await rewrite(self.store.db, Rewrite(
                command.doc_id, audit, plan.expected, plan.payloads, plan.metas, plan.removed))
        except HistoryChanged as exc:
            raise Conflict(f"{exc}; plan again") from None
        await self._rewritten(done.audit, None)
        return done.audit

    async def _change_status(self, command: ChangeStatus) -> EventRecord:
        """Decided under the document's lock, in the commit that appends it: of two
        concurrent transitions from one status, the second sees the first's result."""
        target = clean_target(command.to_status)
        note = clean_note(command.note)
        await self._head(command.doc_id)

        def decide(document: LiveDocument) -> Event:
            check_transition(document.status, target)
            event = StatusChanged(document.status, target, note)
            document.status = target
            return event

        record = await self._propose(command.doc_id, decide, command.actor)
        assert record is not None
        return record

    async def _rewritten(self, audit: EventRecord, error: PalimpsestError | None) -> None:
        """After a rewrite: drop this node's live copy (if `error`), and announce the audit
        event like any commit (other nodes' live copies catch up with it, or drop theirs;
        projectors wake and rebuild the document)."""
        if error is not None:
            self.documents.retire(audit.doc_id, error)
        await self.documents.fanout.publish(audit.doc_id, [Committed(audit, None)])

    async def _version_named(self, doc_id: str, version: int) -> None:
        """NotFound unless the event at seq `version` named a version (whether that name
        still stands is the read side's to check, before the command)."""
        head = await self._head(doc_id)
        records = [r async for r in self.store.read(doc_id, version - 1, version)] \
            if 0 < version <= head else []
        if not records or not isinstance(decode(records[0]), VersionNamed):
            raise NotFound(f"document {doc_id!r} has no version {version}")

    async def _rename_version(self, command: RenameVersion) -> EventRecord:
        name = clean_version_name(command.name)
        await self._version_named(command.doc_id, command.version)
        return await self._decided(command.doc_id, VersionRenamed(command.version, name),
                                   command.actor)

    async def _delete_version(self, command: DeleteVersion) -> EventRecord:
        await self._version_named(command.doc_id, command.version)
        return await self._decided(command.doc_id, VersionDeleted(command.version),
                                   command.actor)

    async def _copy(self, command: CopyDocument) -> EventRecord:
        """A new document whose first edit is the source's text at `seq`: its own history
        starts there (the source's stays the source's)."""
        title = clean_title(command.title)
        check_doc_id(command.doc_id)
        await self._seq_in_log(command.source_id, command.seq)
        text = await self.text_at(command.source_id, command.seq)
        if not await self.store.ensure_document(command.doc_id, title):
            raise Conflict(f"document {command.doc_id!r} already exists")
        created = await self._decided(command.doc_id, DocumentCreated(title), command.actor)
        if not text:
            return created

        def decide(document: LiveDocument) -> Event | None:
            update = text_update(document.state(), document.current_text(), text)
            return UpdateApplied(update) if document.try_apply(update) else None

        await self._propose(command.doc_id, decide, command.actor)
        return created
    async def state_at(self, doc_id: str, seq: int) -> bytes:
        """The whole Yjs state after events 1..seq, straight from the log."""
        doc: Doc[Any] = Doc()
        if seq > 0:
            history = await read_history(self.store, doc_id, seq)
            replay(doc, history.state, history.events, PendingUpdates())
        return doc.get_update()

    async def text_at(self, doc_id: str, seq: int) -> str:
        """The text after events 1..seq, straight from the log (the write side's own view)."""
        doc: Doc[Any] = Doc()
        history = await read_history(self.store, doc_id, seq)
        replay(doc, history.state, history.events, PendingUpdates())
        return str(doc.get("content", type=Text))
