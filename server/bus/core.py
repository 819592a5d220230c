"""The fan-out bus between nodes: a hint that the log has grown, never the truth.

Messages may be lost, duplicated or reordered (Redis pub/sub is at most once): receivers drop
seqs they have and fill gaps from the log. `LocalBus` runs in process for the embedded mode;
`server.bus.redis_bus.RedisBus` carries the same messages between nodes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

EVENT = "event"
AWARENESS = "awareness"
REVOKE = "revoke"  # an admin revoked a user's access to the document (server.realtime.sessions)


@dataclass(frozen=True, slots=True)
class BusMessage:
    doc_id: str
    kind: str  # EVENT, AWARENESS or REVOKE
    origin: str  # node id of the publisher, so a node can drop its own echo
    seq: int  # the event's seq (0 for awareness)
    event_kind: str  # the event's kind (update, restore, rename, ...); "" for awareness
    payload: bytes


Handler = Callable[[BusMessage], None]


class Bus(Protocol):
    node_id: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, message: BusMessage) -> None: ...

    async def subscribe(self, doc_id: str, handler: Handler) -> None: ...

    async def unsubscribe(self, doc_id: str, handler: Handler) -> None: ...

    async def subscribe_all(self, handler: Handler) -> None:
        """Every document's EVENT messages (the projector's wake-up)."""
        ...

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` after the bus recovers from an outage (messages may be lost)."""
        ...


class LocalBus:
    """In-process bus: delivers synchronously to this process's subscribers."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._handlers: dict[str, list[Handler]] = {}
        self._all: list[Handler] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._handlers.clear()
        self._all.clear()

    async def publish(self, message: BusMessage) -> None:
        handlers = list(self._handlers.get(message.doc_id, ()))
        if message.kind == EVENT:
            handlers += self._all
        for handler in handlers:
            try:
                handler(message)
            except Exception:  # one bad subscriber must not stop delivery to the rest
                log.exception("bus handler failed for %s", message.doc_id)

    async def subscribe(self, doc_id: str, handler: Handler) -> None:
        self._handlers.setdefault(doc_id, []).append(handler)

    async def unsubscribe(self, doc_id: str, handler: Handler) -> None:
        handlers = self._handlers.get(doc_id, [])
        if handler in handlers:
            handlers.remove(handler)
        if not handlers:
            self._handlers.pop(doc_id, None)

    async def subscribe_all(self, handler: Handler) -> None:
        self._all.append(handler)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        return None  # nothing to lose in process
