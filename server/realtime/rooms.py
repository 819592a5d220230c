"""Opening, sharing and unloading rooms on this node.

A room is loaded from the latest snapshot plus the events after it the first time a
connection (or a command) needs it, shared by everyone on this node, and unloaded a grace
period after its last user leaves, with a snapshot so the next load is cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from server.realtime import protocol
from server.realtime.bus import AWARENESS, EVENT, Bus, BusMessage
from server.realtime.room import Room
from server.settings import Settings
from server.write.commands import CatchUp
from server.write.group_commit import RoomWriter
from storage.errors import StorageError
from storage.event_store import EventStore
from storage.records import EventRecord, SnapshotRecord

log = logging.getLogger(__name__)


class OpenRoom:
    """A loaded room with its writer and the count of its current users."""

    def __init__(self, room: Room, writer: RoomWriter) -> None:
        self.room = room
        self.writer = writer
        self.users = 0
        self.unload_task: asyncio.Task[None] | None = None
        self.handler = self._on_bus

    def _on_bus(self, message: BusMessage) -> None:
        if message.origin == self.writer.bus.node_id:
            return  # our own echo
        if message.kind == EVENT:
            if message.seq > self.room.applied_seq:
                # A hint: the writer applies it if it is the next seq, else first reads the
                # gap from the log; a seq the room has by then is dropped.
                self.writer.submit(CatchUp(message.seq, _as_record(message)))
        elif message.kind == AWARENESS:
            try:
                fresh, _ = self.room.awareness.apply(message.payload)
            except Exception:
                log.warning("dropped malformed awareness from the bus for %s", message.doc_id)
                return
            if fresh:
                self.room.broadcast(protocol.awareness(fresh))


def _as_record(message: BusMessage) -> EventRecord:
    # The bus carries what applying needs; actor and time stay in the log.
    return EventRecord(message.doc_id, message.seq, message.event_kind, message.payload, "",
                       0.0, {})


class RoomManager:
    def __init__(self, store: EventStore, bus: Bus, settings: Settings) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self._rooms: dict[str, OpenRoom] = {}
        self._loading: dict[str, asyncio.Future[OpenRoom]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        bus.on_reconnect(self.catch_up_all)

    def start(self) -> None:
        if self.settings.room_sweep_seconds > 0:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="room-sweep")

    async def _sweep_forever(self) -> None:
        # A bus hint can be lost for good (a node killed between its commit and its publish,
        # a message dropped with no later one behind it): now and then, every open room
        # compares its seq with the log's head, in one query for all of them.
        while True:
            await asyncio.sleep(self.settings.room_sweep_seconds)
            if not self._rooms:
                continue
            try:
                heads = await self.store.head_seqs(list(self._rooms))
            except StorageError as exc:
                log.debug("room sweep skipped: %s", exc)
                continue
            for doc_id, head in heads.items():
                opened = self._rooms.get(doc_id)
                if opened is not None and head > opened.room.applied_seq:
                    opened.writer.submit(CatchUp(head))

    def get(self, doc_id: str) -> OpenRoom | None:
        return self._rooms.get(doc_id)

    @property
    def open_rooms(self) -> int:
        return len(self._rooms)

    async def acquire(self, doc_id: str) -> OpenRoom:
        """The room of doc_id, loaded if needed; pair with release()."""
        opened = self._rooms.get(doc_id)
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
                self._rooms[doc_id] = opened
                pending.set_result(opened)
            else:
                opened = await asyncio.shield(pending)
        opened.users += 1
        if opened.unload_task is not None:
            opened.unload_task.cancel()
            opened.unload_task = None
        return opened

    def release(self, opened: OpenRoom) -> None:
        opened.users -= 1
        if opened.users == 0 and self._rooms.get(opened.room.doc_id) is opened:
            opened.unload_task = asyncio.create_task(self._unload_later(opened))

    async def _load(self, doc_id: str) -> OpenRoom:
        await self.store.ensure_document(doc_id)
        room = Room(doc_id)
        writer = RoomWriter(room, self.store, self.bus, max_batch=self.settings.max_batch,
                            on_poisoned=self._discard)
        opened = OpenRoom(room, writer)
        # Subscribe before reading, so nothing committed meanwhile is missed: a hint for a
        # seq the load already covers is dropped by the writer.
        await self.bus.subscribe(doc_id, opened.handler)
        try:
            snapshot = await self.store.snapshot_at_or_before(doc_id)
            after = snapshot.seq if snapshot else 0
            events = await self.store.read_list(doc_id, after)
            room.load(snapshot.state if snapshot else None, after, events)
        except BaseException:
            await self.bus.unsubscribe(doc_id, opened.handler)
            raise
        writer.start()
        return opened

    async def _unload_later(self, opened: OpenRoom) -> None:
        await asyncio.sleep(self.settings.room_grace_seconds)
        if opened.users == 0 and self._rooms.get(opened.room.doc_id) is opened:
            await self._unload(opened)

    async def _unload(self, opened: OpenRoom, *, snapshot: bool = True) -> None:
        room = opened.room
        self._rooms.pop(room.doc_id, None)
        await self.bus.unsubscribe(room.doc_id, opened.handler)
        await opened.writer.stop()
        # A doc with pending structs would encode without them: no snapshot then.
        if snapshot and not opened.writer.poisoned and room.applied_seq > 0 and not room.pending:
            await self._save_snapshot(room)

    async def _save_snapshot(self, room: Room) -> None:
        latest = await self.store.snapshot_at_or_before(room.doc_id)
        if latest is not None and latest.seq >= room.applied_seq:
            return
        try:
            await self.store.save_snapshot(
                SnapshotRecord(room.doc_id, room.applied_seq, room.state(), room.current_text(),
                               time.time())
            )
        except StorageError as exc:
            log.warning("snapshot of %s at unload failed: %s", room.doc_id, exc)

    def _discard(self, room: Room) -> None:
        """The room's doc can no longer be trusted: drop it and close its connections."""
        opened = self._rooms.get(room.doc_id)
        if opened is not None and opened.room is room:
            self._rooms.pop(room.doc_id, None)
            task = asyncio.create_task(self.bus.unsubscribe(room.doc_id, opened.handler))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        for conn in list(room.connections):
            conn.close(1013, "document is reloading; reconnect and resend")

    def catch_up_all(self) -> None:
        for opened in list(self._rooms.values()):
            opened.writer.submit(CatchUp())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for opened in list(self._rooms.values()):
            if opened.unload_task is not None:
                opened.unload_task.cancel()
            for conn in list(opened.room.connections):
                conn.close(1001, "server shutting down")
            with contextlib.suppress(Exception):
                await self._unload(opened)
