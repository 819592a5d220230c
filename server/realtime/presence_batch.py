"""Presence relayed in batches: what many clients renew or change within a window goes out as
one awareness frame to everyone, not one frame per client per connection.

Every stock client renews its presence every 15 s, and sends back every state it receives
(y-websocket's provider rebroadcasts each awareness change, its own or not). So each frame of
presence sent to a room of N clients comes back as N messages for the server to read: relaying
each client's renewal at once, a thousand clients cost a million messages every 15 s, quadratic
in the room's size. Two lanes keep it linear:

- Changes (a new client, a moved cursor, a departure) wait at most `window` seconds, Nagle-like:
  the first after a quiet window goes out at once, later ones at the window's end. The window
  grows with the room (`PER_CONNECTION_SECONDS` per connection, 250 ms for a thousand), so the
  echoes a room sends back stay near 4,000 messages a second whatever its size, and a cursor
  in a small room is not delayed at all.
- Renewals (a state its owner already had, only its clock moved) wait up to
  `RENEWAL_SECONDS`, or ride along with the next change. A client drops a remote state it has
  not heard of for 30 s; renewed every 15 s and held at most 5 s here, none is dropped.

Each payload is split once into its entry count and entries, so a frame of many payloads (and
the frame for each sender without its own entries) is a count and a join, not a re-encoding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from pycrdt import write_var_uint

from server.realtime.awareness import Entry
from server.realtime.protocol import Reader

WINDOW_SECONDS = 0.05
PER_CONNECTION_SECONDS = 0.00025
RENEWAL_SECONDS = 5.0

Sender = object | None  # whoever sent an entry (a connection), None for no local client


@dataclass(frozen=True, slots=True)
class Part:
    """One awareness payload, split: its number of entries, and the entries' bytes."""

    count: int
    body: bytes
    entries: list[Entry]  # decoded (as the relay made them)

    @classmethod
    def of(cls, payload: bytes, entries: list[Entry]) -> Part:
        reader = Reader(payload)
        count = reader.var_uint()
        return cls(count, payload[reader.pos:], entries)


Send = Callable[[list[tuple[Part, Sender]]], None]


class PresenceBatch:
    __slots__ = ("_last", "_pending", "_renewal_seconds", "_renewal_timer", "_renewals",
                 "_send", "_size", "_timer", "_window")

    def __init__(self, send: Send, size: Callable[[], int] = lambda: 0,
                 window: float = WINDOW_SECONDS,
                 renewal_seconds: float = RENEWAL_SECONDS) -> None:
        self._send = send
        self._size = size  # the room's number of connections
        self._window = window
        self._renewal_seconds = renewal_seconds
        self._pending: list[tuple[Part, Sender]] = []
        self._renewals: list[tuple[Part, Sender]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._renewal_timer: asyncio.TimerHandle | None = None
        self._last = float("-inf")

    def window(self) -> float:
        """How long changes wait at most, for this room's size."""
        return max(self._window, self._size() * PER_CONNECTION_SECONDS)

    def add(self, payload: bytes, entries: list[Entry], sender: Sender, *,
            renewal: bool = False) -> None:
        """Relay an awareness payload (varUint count, then entries) from `sender`; `renewal`
        when it only renews states their owner already had."""
        loop = asyncio.get_running_loop()
        item = (Part.of(payload, entries), sender)
        if renewal:
            self._renewals.append(item)
            if self._renewal_timer is None:
                self._renewal_timer = loop.call_later(self._renewal_seconds, self._flush)
            return
        now = loop.time()
        window = self.window()
        if self._timer is None and now - self._last >= window:
            self._last = now
            self._pending.append(item)
            self._flush()
            return
        self._pending.append(item)
        if self._timer is None:
            self._timer = loop.call_at(self._last + window, self._flush)

    def _flush(self) -> None:
        """Send the renewals waiting (first: they are older) and the changes together."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._last = asyncio.get_running_loop().time()
        if self._renewal_timer is not None:
            self._renewal_timer.cancel()
            self._renewal_timer = None
        items = self._renewals + self._pending
        self._renewals, self._pending = [], []
        if items:
            self._send(items)

    def close(self) -> None:
        for timer in (self._timer, self._renewal_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._renewal_timer = None
        self._pending, self._renewals = [], []


def merge(parts: list[Part]) -> bytes:
    """Several awareness payloads as one, their entries in order (a later entry for the same
    client has the later clock: receivers apply them in order)."""
    if len(parts) == 1:
        return write_var_uint(parts[0].count) + parts[0].body
    return write_var_uint(sum(p.count for p in parts)) + b"".join(p.body for p in parts)
