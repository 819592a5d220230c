"""Command handlers: one per command type, every one through the document's writer.

A handler checks what needs no live document (shapes, sizes, that the document exists), reads
what it needs from the log, then proposes a decision to the document's writer, which runs it
under the document's lock in the next group commit. So an editor's keystroke, a rename and a
restore get their seqs, their fan-out and their acknowledgement the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from pycrdt import Doc, Text

from server.errors import BadRequest, Conflict, NotFound
from server.events import (
    DocumentCreated,
    DocumentRenamed,
    Event,
    RevisionRestored,
    UpdateApplied,
    VersionNamed,
)
from server.write.commands import (
    ApplyUpdate,
    Command,
    CreateDocument,
    NameVersion,
    RenameDocument,
    RestoreRevision,
)
from server.write.documents import LiveDocuments
from server.write.fanout import Origin
from server.write.live_document import LiveDocument
from server.write.restore import plan_restore
from server.write.validation import EMPTY_UPDATE, check_doc_id, clean_title, clean_version_name
from server.write.writer import DocumentWriter, Proposal
from server.ydoc import PendingUpdates, read_history, replay
from storage.event_store import EventStore
from storage.records import EventRecord


def update_proposal(command: ApplyUpdate, origin: Origin | None = None) -> Proposal:
    """An editor's update: applied to find out whether it changes anything (a resend after a
    reconnect does not, and is stored as nothing)."""
    update = command.update

    def decide(document: LiveDocument) -> Event | None:
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
                       actor: str) -> EventRecord | None:
        opened = await self.documents.acquire(doc_id)
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
        """One event that makes the text what it was at `command.seq` (history only grows)."""
        await self._seq_in_log(command.doc_id, command.seq)
        target = await self.text_at(command.doc_id, command.seq)

        def decide(document: LiveDocument) -> Event:
            # Planned against the live document under its lock, so concurrent edits that
            # committed meanwhile are kept where the restore does not touch them.
            update = plan_restore(document.state(), document.current_text(), target)
            if update is None:
                # Already that text: still record who restored what, with an empty update.
                return RevisionRestored(EMPTY_UPDATE, command.seq, command.revision)
            document.try_apply(update)
            return RevisionRestored(update, command.seq, command.revision)

        record = await self._propose(command.doc_id, decide, command.actor)
        assert record is not None
        return record

    async def text_at(self, doc_id: str, seq: int) -> str:
        """The text after events 1..seq, straight from the log (the write side's own view)."""
        doc: Doc[Any] = Doc()
        history = await read_history(self.store, doc_id, seq)
        replay(doc, history.state, history.events, PendingUpdates())
        return str(doc.get("content", type=Text))
