"""Commands from the HTTP API, through the same append path as the editors' updates.

Create, rename and name-a-version are events with JSON meta and no Yjs payload, appended
with the event store and announced on the bus. A restore is a Yjs update computed against
the room's current doc and submitted to the room's writer like any client's edit, so live
editors receive it at once and the log only grows (invariant 6).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Text, merge_updates

from server.errors import BadRequest, Conflict, NotFound
from server.realtime.bus import EVENT, Bus, BusMessage
from server.realtime.rooms import RoomManager
from server.write.commands import ApplyUpdate
from server.write.restore import plan_restore
from server.write.validation import EMPTY_UPDATE
from storage.event_store import EventStore
from storage.records import EventRecord, NewEvent

DOC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$")
MAX_TITLE = 200
MAX_VERSION_NAME = 200
UPDATE_KINDS = frozenset({"update", "restore"})
# An empty Yjs update (no structs, no deletes): a restore that changes nothing still records.


@dataclass(frozen=True, slots=True)
class CreateDocument:
    title: str
    actor: str
    doc_id: str | None = None


@dataclass(frozen=True, slots=True)
class RenameDocument:
    doc_id: str
    title: str
    actor: str


@dataclass(frozen=True, slots=True)
class NameVersion:
    doc_id: str
    seq: int
    name: str
    actor: str


@dataclass(frozen=True, slots=True)
class RestoreRevision:
    doc_id: str
    seq: int
    actor: str
    revision: int | None = None  # set when the caller chose a revision (for the record)


def new_document_id() -> str:
    return uuid.uuid4().hex[:12]


def clean_title(title: object) -> str:
    if not isinstance(title, str):
        raise BadRequest("title must be a string")
    cleaned = title.strip()
    if len(cleaned) > MAX_TITLE:
        raise BadRequest(f"title is longer than {MAX_TITLE} characters")
    return cleaned


class CommandService:
    def __init__(self, store: EventStore, rooms: RoomManager, bus: Bus) -> None:
        self.store = store
        self.rooms = rooms
        self.bus = bus
        # Not our node id: the rooms on this node drop their own echo, but must catch up
        # with events appended beside their writer.
        self.origin = f"{bus.node_id}/api"

    async def _append(
        self, doc_id: str, kind: str, actor: str, meta: dict[str, Any]
    ) -> EventRecord:
        [record] = await self.store.append(
            doc_id, [NewEvent(kind, b"", actor, time.time(), meta)]
        )
        await self._announce(record)
        return record

    async def _announce(self, record: EventRecord) -> None:
        await self.bus.publish(
            BusMessage(record.doc_id, EVENT, self.origin, record.seq, record.kind,
                       record.payload)
        )

    async def _head(self, doc_id: str) -> int:
        doc = await self.store.document(doc_id)
        if doc is None:
            raise NotFound(f"document {doc_id!r} does not exist")
        return doc.head_seq

    async def create(self, command: CreateDocument) -> EventRecord:
        title = clean_title(command.title)
        doc_id = command.doc_id if command.doc_id is not None else new_document_id()
        if not isinstance(doc_id, str) or not DOC_ID.match(doc_id):
            raise BadRequest("id must be 1-200 letters, digits, '.', '_', '~' or '-'")
        if not await self.store.ensure_document(doc_id, title):
            raise Conflict(f"document {doc_id!r} already exists")
        return await self._append(doc_id, "create", command.actor, {"title": title})

    async def rename(self, command: RenameDocument) -> EventRecord:
        title = clean_title(command.title)
        await self._head(command.doc_id)
        return await self._append(command.doc_id, "rename", command.actor, {"title": title})

    async def name_version(self, command: NameVersion) -> EventRecord:
        name = command.name.strip() if isinstance(command.name, str) else None
        if not name or len(name) > MAX_VERSION_NAME:
            raise BadRequest(f"name must be 1-{MAX_VERSION_NAME} characters")
        head = await self._head(command.doc_id)
        if command.seq < 0:
            raise BadRequest("seq must be 0 or more")
        if command.seq > head:
            raise NotFound(f"document {command.doc_id!r} has no seq {command.seq}")
        return await self._append(
            command.doc_id, "version", command.actor, {"seq": command.seq, "name": name}
        )

    async def text_at(self, doc_id: str, seq: int) -> str:
        """The text after events 1..seq, straight from the log (the write side's own view)."""
        snapshot = await self.store.snapshot_at_or_before(doc_id, seq)
        doc: Doc[Any] = Doc()
        if snapshot is not None:
            doc.apply_update(snapshot.state)
        after = snapshot.seq if snapshot is not None else 0
        updates = [e.payload for e in await self.store.read_list(doc_id, after, seq)
                   if e.kind in UPDATE_KINDS]
        if updates:
            doc.apply_update(merge_updates(*updates))
        return str(doc.get("content", type=Text))

    async def restore(self, command: RestoreRevision) -> EventRecord:
        """Append one event that makes the text what it was at `command.seq`."""
        head = await self._head(command.doc_id)
        if command.seq < 0:
            raise BadRequest("seq must be 0 or more")
        if command.seq > head:
            raise NotFound(f"document {command.doc_id!r} has no seq {command.seq}")
        target = await self.text_at(command.doc_id, command.seq)
        meta: dict[str, Any] = {"restored_from": command.seq}
        if command.revision is not None:
            meta["revision"] = command.revision
        opened = await self.rooms.acquire(command.doc_id)
        try:
            room = opened.room
            async with room.lock:
                update = plan_restore(room.state(), room.current_text(), target)
            record: EventRecord | None = None
            if update is not None:
                done: asyncio.Future[EventRecord | None] = (
                    asyncio.get_running_loop().create_future()
                )
                opened.writer.submit(
                    ApplyUpdate(command.doc_id, update, command.actor, None, kind="restore",
                                meta=meta, done=done)
                )
                record = await done
        finally:
            self.rooms.release(opened)
        if record is None:
            # Already that text: still record who restored what, with an empty update.
            [record] = await self.store.append(
                command.doc_id,
                [NewEvent("restore", EMPTY_UPDATE, command.actor, time.time(), meta)],
            )
            await self._announce(record)
        return record
