"""The room writer: turns queued commands into committed events, many per transaction.

One writer task per open room. It takes every command waiting in the room's queue, applies
them to the room's doc under the room lock (to validate and to drop no-ops), appends the ones
that change something in one transaction, and only after the commit broadcasts them to this
node's connections, publishes them on the bus and acknowledges them. While the writer waits
on the database, clients keep queueing, so the next batch grows with the load: that is the
group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from server.errors import InvalidUpdate, PalimpsestError, TaintingUpdate, Unavailable
from server.realtime import protocol
from server.realtime.bus import EVENT, Bus, BusMessage
from server.realtime.room import Room
from server.write.commands import ApplyUpdate, CatchUp
from server.write.update_guard import reencodes
from storage.errors import StorageError
from storage.event_store import EventStore
from storage.records import EventRecord, NewEvent

log = logging.getLogger(__name__)

Command = ApplyUpdate | CatchUp


class RoomWriter:
    def __init__(
        self,
        room: Room,
        store: EventStore,
        bus: Bus,
        *,
        max_batch: int,
        on_poisoned: Callable[[Room], None],
    ) -> None:
        self.room = room
        self.store = store
        self.bus = bus
        self.max_batch = max_batch
        self.queue: asyncio.Queue[Command] = asyncio.Queue()
        self._on_poisoned = on_poisoned
        self._task: asyncio.Task[None] | None = None
        self.poisoned = False
        self._catch_up_retry: asyncio.TimerHandle | None = None
        self._catch_up_failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"writer-{self.room.doc_id}")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        if self._catch_up_retry is not None:
            self._catch_up_retry.cancel()
        await self.queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def submit(self, command: Command) -> None:
        if self.poisoned:
            _fail(command, Unavailable("document is reloading; reconnect and resend"))
            return
        self.queue.put_nowait(command)

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            batch: list[Command] = [first]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._process(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("room writer for %s failed", self.room.doc_id)
                self._poison(batch, Unavailable("internal error; reconnect and resend"))
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def _process(self, batch: list[Command]) -> None:
        # Consecutive updates commit together; a CatchUp is handled where it stands.
        updates: list[ApplyUpdate] = []
        for command in batch:
            if isinstance(command, ApplyUpdate):
                updates.append(command)
                continue
            if updates:
                await self._commit(updates)
                updates = []
            await self._catch_up(command)
        if updates:
            await self._commit(updates)

    async def _commit(self, commands: list[ApplyUpdate]) -> None:
        room = self.room
        accepted: list[ApplyUpdate] = []
        no_ops: list[ApplyUpdate] = []
        records: list[EventRecord] = []
        async with room.lock:
            # Re-encoding costs O(delete set): 0.5 ms a batch on a 260,000-edit document. Text
            # is what yrs encodes on every edit, so only batches with other content (as the
            # validation's pre-scan found) pay for it.
            state_before = None if all(c.text_only for c in commands) else room.doc.get_state()
            for command in commands:
                if self.poisoned:
                    _fail(command, Unavailable("document is reloading; reconnect and resend"))
                    continue
                if command.connection is not None and command.connection.closing:
                    continue  # rejected earlier: nothing after a rejected message applies
                try:
                    changed = room.try_apply(command.update)
                except TaintingUpdate as exc:
                    # The doc now holds what the log never will: rebuild it. Everyone else
                    # in the batch is told to reconnect and resend.
                    _fail(command, exc)
                    self._poison(
                        commands, Unavailable("document is reloading; reconnect and resend"))
                    return
                except InvalidUpdate as exc:
                    _fail(command, exc)
                    continue
                (accepted if changed else no_ops).append(command)
            if accepted and state_before is not None and not reencodes(room.doc, state_before):
                # Applied, yet the doc can no longer encode what it holds (a yrs fault): store
                # nothing, rebuild the doc from the log.
                self._poison(accepted, InvalidUpdate("update cannot be re-encoded"))
                return
            if accepted:
                now = time.time()
                new = [NewEvent(c.kind, c.update, c.actor, now, c.meta) for c in accepted]
                try:
                    records = await self.store.append(room.doc_id, new)
                    # Another node may have appended since our last event: read those in too.
                    missed = await self._read_missed(records[0].seq - 1)
                except StorageError as exc:
                    # The doc now holds changes the log does not (or lacks events before
                    # ours): it must be rebuilt. Resends after the reconnect are no-ops.
                    log.warning("commit to %s failed: %s", room.doc_id, exc)
                    self._poison(accepted, Unavailable("storage unavailable; reconnect and resend"))
                    return
                room.applied_seq = records[-1].seq
            else:
                missed = []

        for event in missed:
            await self._show(event, origin=None)
        for command, record in zip(accepted, records, strict=True):
            await self._show(record, origin=command)
            if command.done is not None and not command.done.done():
                command.done.set_result(record)
        for command in no_ops:
            if command.done is not None and not command.done.done():
                command.done.set_result(None)
        self._acknowledge(commands)

    async def _read_missed(self, until_seq: int) -> list[EventRecord]:
        room = self.room
        if until_seq <= room.applied_seq:
            return []
        missed = await self.store.read_list(room.doc_id, room.applied_seq, until_seq)
        for event in missed:
            room.apply_event(event)
        return missed

    async def _catch_up(self, command: CatchUp) -> None:
        room = self.room
        until_seq = command.until_seq
        if until_seq is not None and until_seq <= room.applied_seq:
            return  # a seq the room has: a duplicate, or a hint its own commit overtook
        hinted = command.event
        try:
            async with room.lock:
                if hinted is not None and hinted.seq == room.applied_seq + 1:
                    events = [hinted]  # the next seq: the log has nothing to add
                else:
                    # A gap, or no hint at all (an outage): read the log, in order, before
                    # applying anything after the gap.
                    events = await self.store.read_list(room.doc_id, room.applied_seq, until_seq)
                for event in events:
                    room.apply_event(event)
        except StorageError as exc:
            log.warning("catch-up of %s failed: %s", room.doc_id, exc)
            self._retry_catch_up()
            return
        self._catch_up_failures = 0
        for event in events:
            await self._show(event, origin=None)

    def _retry_catch_up(self) -> None:
        # The hint that failed may be the last one for a while: without a retry the room
        # would stay behind until the next event or bus reconnect.
        if self._catch_up_retry is not None:
            return
        self._catch_up_failures += 1
        delay = min(0.1 * 2**self._catch_up_failures, 5.0)

        def retry() -> None:
            self._catch_up_retry = None
            self.submit(CatchUp())

        self._catch_up_retry = asyncio.get_running_loop().call_later(delay, retry)

    async def _show(self, event: EventRecord, origin: ApplyUpdate | None) -> None:
        """Fan a committed event out: local connections (not its sender), then the bus."""
        room = self.room
        if event.kind in ("update", "restore"):
            sender = origin.connection if origin is not None else None
            room.broadcast_update(event.payload, exclude=sender)
        if origin is not None:
            await self.bus.publish(
                BusMessage(room.doc_id, EVENT, self.bus.node_id, event.seq, event.kind,
                           event.payload)
            )

    def _acknowledge(self, commands: list[ApplyUpdate]) -> None:
        latest: dict[int, ApplyUpdate] = {}
        for command in commands:
            conn = command.connection
            if conn is not None and conn.wants_ack:
                latest[conn.id] = command
        for command in latest.values():
            assert command.connection is not None
            command.connection.send(protocol.ack(command.message_index, self.room.applied_seq))

    def _poison(self, commands: list[ApplyUpdate] | list[Command], error: PalimpsestError) -> None:
        if not self.poisoned:
            self.poisoned = True
            self._on_poisoned(self.room)
        for command in commands:
            _fail(command, error)
        while not self.queue.empty():
            _fail(self.queue.get_nowait(), error)
            self.queue.task_done()


def _fail(command: Command, error: PalimpsestError) -> None:
    if isinstance(command, CatchUp):
        return
    if command.connection is not None:
        command.connection.close_for(error)
    if command.done is not None and not command.done.done():
        command.done.set_exception(error)
