"""Presence relayed in batches: what many clients renew within a short window goes out as one
awareness frame to everyone, not one frame per client per connection.

Every stock client renews its presence every 15 s, so a document with N clients relays N/15
awareness messages a second to N connections each: with a thousand clients that is 67,000
frames a second for the server to write and for the clients to decode, for states that did not
change. Batched over `window` seconds (like Nagle's algorithm: the first message after a quiet
window goes out at once, later ones wait for the window's end), it is at most 1/window frames a
second to each connection, whatever the number of clients, and a lone user's cursor is not
delayed at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pycrdt import write_var_uint

from server.realtime.protocol import Reader

WINDOW_SECONDS = 0.05

Sender = object | None  # whoever sent an entry (a connection), None for no local client
Send = Callable[[list[tuple[bytes, Sender]]], None]


class PresenceBatch:
    def __init__(self, send: Send, window: float = WINDOW_SECONDS) -> None:
        self._send = send
        self._window = window
        self._pending: list[tuple[bytes, Sender]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._last = float("-inf")

    def add(self, payload: bytes, sender: Sender) -> None:
        """Relay an awareness payload (varUint count, then entries) from `sender`."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._timer is None and now - self._last >= self._window:
            self._last = now
            self._send([(payload, sender)])
            return
        self._pending.append((payload, sender))
        if self._timer is None:
            self._timer = loop.call_at(self._last + self._window, self._flush)

    def _flush(self) -> None:
        self._timer = None
        self._last = asyncio.get_running_loop().time()
        pending, self._pending = self._pending, []
        if pending:
            self._send(pending)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = []


def merge(payloads: list[bytes]) -> bytes:
    """Several awareness payloads as one, their entries in order (a later entry for the same
    client has the later clock: receivers apply them in order)."""
    if len(payloads) == 1:
        return payloads[0]
    count = 0
    bodies: list[bytes] = []
    for payload in payloads:
        reader = Reader(payload)
        count += reader.var_uint()
        bodies.append(payload[reader.pos:])
    return write_var_uint(count) + b"".join(bodies)
