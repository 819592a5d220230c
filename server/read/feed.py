"""What people see change about a document without editing it, the moment it happens: renames,
restores, named versions. A stream per reader (server-sent events), fed by the bus.

Every node hears every commit on the bus (a hint, `subscribe_all`); for the few kinds people
are told about, the feed reads the event from the log (the truth: title, restored seq, who)
and hands it to each of the document's readers on this node. Keystrokes are not read: their
kind is on the bus message. A reader's queue is bounded: one that does not keep up gets a
`reload` item instead of what it missed, and its client reloads what it shows.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from server.bus import EVENT, BusMessage
from server.events import (
    RENAMED,
    RESTORED,
    VERSION_DELETED,
    VERSION_NAMED,
    VERSION_RENAMED,
    DocumentRenamed,
    RevisionRestored,
    VersionDeleted,
    VersionNamed,
    VersionRenamed,
    decode,
)
from storage.event_store import EventStore
from storage.records import EventRecord

log = logging.getLogger(__name__)

FEED_KINDS = frozenset({RENAMED, RESTORED, VERSION_NAMED, VERSION_RENAMED, VERSION_DELETED})
QUEUE = 64  # items a slow reader may fall behind by
Json = dict[str, Any]


def item(record: EventRecord) -> Json | None:
    """The feed's item for an event, or None for one people are not told about."""
    base: Json = {"kind": record.kind, "seq": record.seq, "actor": record.actor,
                  "time": record.time}
    match decode(record):
        case DocumentRenamed(title):
            return {**base, "title": title}
        case RevisionRestored(_update, restored_from, revision):
            return {**base, "restored_from": restored_from, "revision": revision}
        case VersionNamed(seq, name):
            return {**base, "version": record.seq, "version_seq": seq, "name": name}
        case VersionRenamed(version, name):
            return {**base, "version": version, "name": name}
        case VersionDeleted(version):
            return {**base, "version": version}
        case _:
            return None


class Feed:
    """The readers of each document on this node, and what the bus tells about it."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._readers: dict[str, set[asyncio.Queue[Json]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Seqs to tell, per document, told in order by one task per document at a time.
        self._pending: dict[str, list[int]] = {}

    def reader_count(self) -> int:
        return sum(len(r) for r in self._readers.values())

    def join(self, doc_id: str) -> asyncio.Queue[Json]:
        queue: asyncio.Queue[Json] = asyncio.Queue(QUEUE)
        self._readers.setdefault(doc_id, set()).add(queue)
        return queue

    def leave(self, doc_id: str, queue: asyncio.Queue[Json]) -> None:
        readers = self._readers.get(doc_id)
        if readers is not None:
            readers.discard(queue)
            if not readers:
                del self._readers[doc_id]

    def on_bus(self, message: BusMessage) -> None:
        if (message.kind != EVENT or message.event_kind not in FEED_KINDS
                or message.doc_id not in self._readers):
            return
        pending = self._pending.get(message.doc_id)
        if pending is not None:  # its task is running: it tells this one after the others
            pending.append(message.seq)
            return
        self._pending[message.doc_id] = [message.seq]
        task = asyncio.get_running_loop().create_task(self._drain(message.doc_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, doc_id: str) -> None:
        try:
            pending = self._pending[doc_id]
            while pending:
                await self._tell(doc_id, pending.pop(0))
        finally:
            self._pending.pop(doc_id, None)

    async def _tell(self, doc_id: str, seq: int) -> None:
        try:
            records = [r async for r in self.store.read(doc_id, seq - 1, seq)]
        except Exception:  # the database is down: readers reload when they can
            log.warning("feed: could not read %s/%s", doc_id, seq, exc_info=True)
            self.publish(doc_id, {"kind": "reload", "seq": seq})
            return
        told = item(records[0]) if records else None
        if told is not None:
            self.publish(doc_id, told)

    def publish(self, doc_id: str, told: Json) -> None:
        for queue in list(self._readers.get(doc_id, ())):
            try:
                queue.put_nowait(told)
            except asyncio.QueueFull:
                # Too far behind: drop what waits and tell it to reload instead.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait({"kind": "reload", "seq": told.get("seq", 0)})

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
