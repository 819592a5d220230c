"""Rooms: the live clients of each document on this node, and the fan-out port they implement.

A room is the set of connections to one document here, with their presence (awareness). It
holds no document state: that is the write side's. After every commit the writer calls this
module (server.write.fanout.FanOut): committed updates go to every local client but their
sender and out on the bus; other nodes' events, once applied, go to the local clients; and the
senders who asked for durable acknowledgements get one.

A commit's updates are merged and encoded once for the whole room, not once per connection:
one frame for every client that sent none of them, and one per sender (everything but its
own), so a batch costs 1 + (its senders) encodings whatever the number of observers. The
frame's bytes are shared by every connection (server.realtime.outbound).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from server.bus import AWARENESS, EVENT, Bus, BusMessage
from server.errors import PalimpsestError, ReadOnlyDocument
from server.events import STATUS_CHANGED, yjs_update
from server.realtime import protocol
from server.realtime.awareness import Applied, AwarenessRelay, Rules, decode
from server.realtime.connection import Connection
from server.realtime.outbound import Outbound
from server.realtime.presence_batch import Part, PresenceBatch, merge
from server.write.fanout import Committed, Origin
from server.ykeyorder import merge_keeping_order
from storage.records import EventRecord

log = logging.getLogger(__name__)

# Connections refused and gone, remembered a while: their writes may still be queued, and
# nothing after a refused message may apply. Writers drain far faster than this many closes.
REMEMBER_REFUSED = 4096

T = TypeVar("T")


@dataclass
class FanOutCounts:
    """What the rooms of this node have fanned out (for /metrics and the tests)."""

    frames: int = 0  # update and presence frames built for a broadcast
    deliveries: int = 0  # connections handed one of them


class Room:
    """The connections to one document on this node, and their presence."""

    # One per open document, thousands at once: slots.
    __slots__ = ("_bus", "_counts", "_presence", "_presence_out", "_step2", "awareness",
                 "connections", "doc_id")

    def __init__(self, doc_id: str, bus: Bus, rules: Rules | None = None,
                 counts: FanOutCounts | None = None) -> None:
        self.doc_id = doc_id
        self.connections: set[Connection] = set()
        self.awareness = AwarenessRelay(rules)
        self._bus = bus
        self._presence: tuple[bytes, Outbound] | None = None  # (snapshot, its frame)
        self._counts = counts if counts is not None else FanOutCounts()
        self._step2: tuple[bytes, Outbound] | None = None  # (update, its frame)
        self._presence_out = PresenceBatch(self._send_presence, lambda: len(self.connections))

    def broadcast(self, frame: bytes | Outbound, *, exclude: Connection | None = None) -> None:
        out = frame if isinstance(frame, Outbound) else Outbound(frame)
        for conn in self.connections:
            if conn is not exclude:
                conn.send(out)

    def broadcast_updates(self, updates: Sequence[tuple[bytes, Connection | None]]) -> None:
        """Send a commit's updates, each paired with the connection that sent it (None: not a
        local client's): every connection gets all of them but its own, in one frame."""
        self._fan_out(updates, _update_frame)

    def _send_presence(self, entries: Sequence[tuple[Part, object | None]]) -> None:
        # A newcomer's snapshot is kept from one batch to the next: what changed since it
        # was built waits in the batch, which reaches every connection of the room, newcomers
        # included. So every client joining within a window gets the same bytes (and sends
        # the same bytes back, looked up rather than decoded: see AwarenessRelay.remember).
        self._presence = None
        self._fan_out(entries, self._presence_frame)

    def _fan_out(self, items: Sequence[tuple[T, object | None]],
                 frame: Callable[[list[T]], Outbound]) -> None:
        """One frame of every item for the connections that sent none of them, and one per
        sender of everything but its own: 1 + (senders) encodings, whatever the room's size."""
        if not items or not self.connections:
            return
        counts = self._counts
        everything = frame([payload for payload, _ in items])
        counts.frames += 1
        senders = {s for _, s in items if isinstance(s, Connection) and s in self.connections}
        for conn in self.connections:
            if conn not in senders:
                conn.send(everything)
        counts.deliveries += len(self.connections) - len(senders)
        for sender in senders:
            others = [payload for payload, s in items if s is not sender]
            if others:
                sender.send(frame(others))
                counts.frames += 1
                counts.deliveries += 1

    def _presence_frame(self, parts: list[Part]) -> Outbound:
        payload = merge(parts)
        self.awareness.remember(payload, [entry for part in parts for entry in part.entries])
        return Outbound(protocol.awareness(payload))

    def close(self) -> None:
        """The room's last connection left: drop presence not yet relayed."""
        self._presence_out.close()

    def presence_frame(self) -> Outbound | None:
        """Every known state as one awareness frame (for a newcomer, or a query), or None. The
        same bytes for everyone who asks until the next batch goes out: a connection that asks
        again and again costs no new copy, and a wave of joiners one snapshot."""
        if self._presence is None:
            known = self.awareness.snapshot()
            if known is None:
                return None
            self._presence = (known, Outbound(protocol.awareness(known)))
        return self._presence[1]

    def sync_step2(self, update: bytes) -> Outbound:
        """Sync step 2 carrying `update`, framed once for every joiner given the same update
        object (the write side answers joiners at one state with the same bytes)."""
        if self._step2 is None or self._step2[0] is not update:
            self._step2 = (update, Outbound(protocol.sync_step2(update)))
        return self._step2[1]

    async def share_presence(self, payload: bytes) -> None:
        """Presence changed here: tell every local client and the other nodes."""
        self._presence_out.add(payload, decode(payload), None)
        await self._bus.publish(BusMessage(self.doc_id, AWARENESS, self._bus.node_id, 0, "",
                                           payload))

    async def presence_from(self, conn: Connection, applied: Applied) -> None:
        """A connection's awareness was accepted: the others (here and on other nodes) get it
        with the relay's clocks, the sender its own entries back, with its own clocks (a
        stock client that hears nothing for 30 s reconnects; its own clocks make the echo a
        no-op for it)."""
        if not applied.relay:
            return
        conn.send(protocol.awareness(applied.echo))
        self._presence_out.add(applied.relay, applied.news, conn, renewal=not applied.changed)
        await self._bus.publish(BusMessage(self.doc_id, AWARENESS, self._bus.node_id, 0, "",
                                           applied.relay))

    def on_bus(self, message: BusMessage) -> None:
        if message.kind != AWARENESS or message.origin == self._bus.node_id:
            return
        try:
            applied = self.awareness.apply(message.origin, message.payload, local=False)
        except Exception:
            log.warning("dropped malformed awareness from the bus for %s", self.doc_id)
            return
        if applied.relay:
            self._presence_out.add(applied.relay, applied.news, None,
                                   renewal=not applied.changed)


class Rooms:
    """Every room on this node; the write side's fan-out port."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._rooms: dict[str, Room] = {}
        self._connections: dict[int, Connection] = {}
        self._refused_gone: OrderedDict[int, None] = OrderedDict()
        self.counts = FanOutCounts()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def get(self, doc_id: str) -> Room | None:
        return self._rooms.get(doc_id)

    async def join(self, conn: Connection, rules: Rules | None = None) -> Room:
        """Add a connection to its document's room (created with these awareness rules)."""
        room = self._rooms.get(conn.doc_id)
        if room is None:
            room = self._rooms[conn.doc_id] = Room(conn.doc_id, self.bus, rules, self.counts)
            await self.bus.subscribe(conn.doc_id, room.on_bus)
        room.connections.add(conn)
        self._connections[conn.id] = conn
        return room

    async def leave(self, room: Room, conn: Connection) -> None:
        room.connections.discard(conn)
        self._connections.pop(conn.id, None)
        if conn.refused:
            self._refused_gone[conn.id] = None
            while len(self._refused_gone) > REMEMBER_REFUSED:
                self._refused_gone.popitem(last=False)
        gone = room.awareness.release(conn.id)
        if not room.connections and self._rooms.get(room.doc_id) is room:
            del self._rooms[room.doc_id]
            room.close()
            await self.bus.unsubscribe(room.doc_id, room.on_bus)
        if gone is not None:
            await room.share_presence(gone)

    def close_all(self, code: int, reason: str) -> None:
        for conn in list(self._connections.values()):
            conn.close(code, reason)

    # The fan-out port (server.write.fanout.FanOut)

    async def publish(self, doc_id: str, events: Sequence[Committed]) -> None:
        room = self._rooms.get(doc_id)
        if room is not None:
            updates: list[tuple[bytes, Connection | None]] = []
            for committed in events:
                update = yjs_update(committed.record)
                if update is not None:
                    origin = committed.origin
                    updates.append((update, self._connections.get(origin.client)
                                    if origin is not None else None))
            room.broadcast_updates(updates)
        for committed in events:
            record = committed.record
            if room is not None:
                _tell_status(room, record)
            await self.bus.publish(BusMessage(doc_id, EVENT, self.bus.node_id, record.seq,
                                              record.kind, record.payload))

    def show(self, doc_id: str, events: Sequence[EventRecord]) -> None:
        room = self._rooms.get(doc_id)
        if room is None:
            return
        room.broadcast_updates([(update, None) for update in map(yjs_update, events)
                                if update is not None])
        for record in events:
            _tell_status(room, record)

    def acknowledge(self, doc_id: str, origins: Sequence[Origin], head_seq: int) -> None:
        latest: dict[int, int] = {}
        for origin in origins:
            latest[origin.client] = max(origin.message, latest.get(origin.client, 0))
        for client, message in latest.items():
            conn = self._connections.get(client)
            if conn is not None and conn.wants_ack:
                conn.send(protocol.ack(message, head_seq))

    def reject(self, doc_id: str, origin: Origin, error: PalimpsestError) -> None:
        conn = self._connections.get(origin.client)
        if conn is None:
            return
        if isinstance(error, ReadOnlyDocument):
            # Answered as a read-only connection's edit is: told, not closed.
            conn.send(protocol.permission_denied(error.message))
            return
        conn.close_for(error)

    def accepts(self, origin: Origin) -> bool:
        conn = self._connections.get(origin.client)
        if conn is None:  # a client that simply left still has its writes kept
            return origin.client not in self._refused_gone
        return not conn.refused

    def reset(self, doc_id: str, error: PalimpsestError) -> None:
        room = self._rooms.get(doc_id)
        for conn in list(room.connections if room is not None else ()):
            conn.close_for(error)


def _update_frame(updates: list[bytes]) -> Outbound:
    # Merged keeping JSON objects' key order (yrs would reorder them).
    update = updates[0] if len(updates) == 1 else merge_keeping_order(*updates)
    return Outbound(protocol.sync_update(update))




FROZEN = {b"published": "document is published: read-only until reopened",
          b"archived": "document is archived: read-only until unarchived"}


def _tell_status(room: Room, record: EventRecord) -> None:
    """A published or archived document is read-only: every live client is told at once, with
    the y-websocket permission-denied message (a stock client logs it; ours shows it)."""
    if record.kind == STATUS_CHANGED and record.payload in FROZEN:
        room.broadcast(protocol.permission_denied(FROZEN[record.payload]))


def present(rooms: Rooms) -> dict[str, list[str]]:
    """Who is connected to which document on this node (users, or actors without auth)."""
    return {doc_id: sorted({conn.user or conn.actor for conn in room.connections})
            for doc_id, room in rooms._rooms.items() if room.connections}
