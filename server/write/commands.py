"""Commands: what a client or an API call asks the write side to do."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from storage.records import EventRecord

if TYPE_CHECKING:
    from server.realtime.connection import Connection


@dataclass(slots=True)
class ApplyUpdate:
    """Append a Yjs update to a document's log, then show it to everyone."""

    doc_id: str
    update: bytes
    actor: str
    connection: Connection | None = None  # None for API commands (restore)
    message_index: int = 0  # which of the connection's writes this is, for the durable ack
    kind: str = "update"
    text_only: bool = False  # validation found only text content: no re-encode check needed
    meta: dict[str, Any] = field(default_factory=dict)
    # Resolved with the committed record (None when the update was a no-op).
    done: asyncio.Future[EventRecord | None] | None = None


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Bring the room up to `until_seq` (None: the log's head), after a bus hint or outage.

    `event` is the hinted event itself (from the bus): applied directly when it is the room's
    next seq; otherwise the log is read, so nothing is applied out of order or twice.
    """

    until_seq: int | None = None
    event: EventRecord | None = None
