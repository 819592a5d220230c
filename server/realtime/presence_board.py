"""Who is in which document right now, across every node: presence, never stored in the log.

Each node publishes on the bus, every `every` seconds and whenever a connection comes or goes,
the users connected to each of its documents (one small JSON message on a channel no document
can have: document ids start with a letter or digit). Every node keeps the latest summary of
each other node and forgets a node that has been silent for three periods (it died).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from server.bus import AWARENESS, Bus, BusMessage
from server.realtime.rooms import Rooms, present
from server.supervision import Supervisor

log = logging.getLogger(__name__)

BOARD = "~presence"  # never a document id (server.write.validation)
PRESENCE = "presence"


class PresenceBoard:
    def __init__(self, rooms: Rooms, bus: Bus, *, every: float = 2.0,
                 supervisor: Supervisor | None = None) -> None:
        self.rooms = rooms
        self.bus = bus
        self.every = every
        self.supervisor = supervisor or Supervisor()
        self._remote: dict[str, tuple[dict[str, list[str]], float]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.bus.subscribe(BOARD, self._on_bus)
        self._task = self.supervisor.spawn("presence-board", self._publish_forever)

    async def stop(self) -> None:
        await self.supervisor.stop(self._task)
        self._task = None

    async def _publish_forever(self) -> None:
        last: dict[str, list[str]] | None = None
        published_at = 0.0
        while True:
            here = present(self.rooms)
            # Changes go out within a tick; the rest is the heartbeat that keeps us listed.
            if here != last or time.monotonic() - published_at >= self.every:
                await self.bus.publish(BusMessage(
                    BOARD, AWARENESS, self.bus.node_id, 0, PRESENCE,
                    json.dumps(here, separators=(",", ":")).encode()))
                last, published_at = here, time.monotonic()
            await asyncio.sleep(min(0.25, self.every))

    def _on_bus(self, message: BusMessage) -> None:
        if message.event_kind != PRESENCE or message.origin == self.bus.node_id:
            return
        try:
            summary = json.loads(message.payload)
            if not isinstance(summary, dict):
                raise ValueError("not an object")
            clean = {str(doc): [str(u) for u in users] for doc, users in summary.items()
                     if isinstance(users, list)}
        except ValueError:
            log.warning("dropped a malformed presence summary from node %s", message.origin)
            return
        self._remote[message.origin] = (clean, time.monotonic())

    def who(self) -> dict[str, list[str]]:
        """Every document someone is in, on any node, with who (sorted)."""
        now = time.monotonic()
        merged: dict[str, set[str]] = {d: set(u) for d, u in present(self.rooms).items()}
        for node, (summary, seen) in list(self._remote.items()):
            if now - seen > 3 * self.every:
                del self._remote[node]
                continue
            for doc_id, users in summary.items():
                merged.setdefault(doc_id, set()).update(users)
        return {doc_id: sorted(users) for doc_id, users in sorted(merged.items())}
