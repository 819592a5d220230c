"""Per-connection rate limits and connection counts: plain values, no I/O, O(1) per call.

A connection over its message or byte rate is slowed down, never closed: `ConnectionRate.delay`
says how long its receive loop waits before handling the message (meanwhile nothing is read
from its socket: TCP backpressure), so a stock client replaying fast loses nothing. A full
connection count refuses the newcomer with AtCapacity (4503, retried by stock clients); other
limits close the one connection that crossed them (server.errors: RateLimited 4429, TooLarge
1009); the server and every other connection carry on. The table of limits, their defaults and
environment variables is in docs/protocol.md.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from server.errors import AtCapacity, RateLimited, TooLarge
from server.settings import Limits

K = TypeVar("K")


class TokenBucket:
    """`rate` units per second, with a burst of one second's worth.

    A full bucket always lets one message through, whatever its size, so a single frame
    larger than a second's allowance (but within the frame limit) is not refused forever.
    A rate of 0 means unlimited.
    """

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = float(rate)
        self.capacity = float(rate)
        self.tokens = float(rate)
        self.stamp = now

    def take(self, amount: float, now: float) -> bool:
        if self.rate <= 0:
            return True
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.capacity:
            tokens = self.capacity
        self.stamp = now
        if tokens < amount and tokens < self.capacity:
            self.tokens = tokens
            return False
        self.tokens = tokens - amount
        return True

    def delay(self, amount: float, now: float) -> float:
        """Take `amount` now, going into debt if need be; the seconds until the debt is paid
        (0 when the bucket had enough). Waiting that long before acting keeps the rate."""
        if self.rate <= 0:
            return 0.0
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.capacity:
            tokens = self.capacity
        self.stamp = now
        self.tokens = tokens - amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class ConnectionRate:
    """The message and byte rate limits of one connection."""

    __slots__ = ("_bytes", "_messages")

    def __init__(self, limits: Limits, now: float | None = None) -> None:
        start = time.monotonic() if now is None else now
        self._messages = TokenBucket(limits.messages_per_second, start)
        self._bytes = TokenBucket(limits.bytes_per_second, start)

    def delay(self, size: int, now: float | None = None) -> float:
        """Count one message of `size` bytes; the seconds to wait before handling it so that
        neither rate is exceeded (0 within both)."""
        at = time.monotonic() if now is None else now
        return max(self._messages.delay(1, at), self._bytes.delay(size, at))

    def check(self, size: int, now: float | None = None) -> None:
        """Count one message of `size` bytes; RateLimited if it is over either rate."""
        at = time.monotonic() if now is None else now
        if not self._messages.take(1, at):
            raise RateLimited("too many messages per second on this connection")
        if not self._bytes.take(size, at):
            raise RateLimited("too many bytes per second on this connection")


class ConnectionCounts:
    """Live connections per document, per user and document, and per client address, on this
    node. A full count refuses the newcomer with AtCapacity (4503): a stock client retries, and
    gets in when a slot frees. The per-user count keeps one user (a reader's token, say) from
    taking every slot of a document; users are the tokens' user ids (an open server has none,
    there the address count is the bound)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.by_document: Counter[str] = Counter()
        self.by_address: Counter[str] = Counter()
        self.by_user: Counter[tuple[str, str]] = Counter()

    def admit(self, doc_id: str, address: str, user: str | None = None) -> None:
        """Count a new connection; AtCapacity (and not counted) if any count is full."""
        per_doc = self.limits.connections_per_document
        per_address = self.limits.connections_per_address
        per_user = self.limits.connections_per_user
        if per_doc > 0 and self.by_document[doc_id] >= per_doc:
            raise AtCapacity(f"too many connections to this document (limit {per_doc}); "
                             "retry later")
        if per_user > 0 and user is not None and self.by_user[(doc_id, user)] >= per_user:
            raise AtCapacity(f"too many connections of this user to this document "
                             f"(limit {per_user}); retry later")
        if per_address > 0 and self.by_address[address] >= per_address:
            raise AtCapacity(f"too many connections from this address (limit {per_address}); "
                             "retry later")
        self.by_document[doc_id] += 1
        self.by_address[address] += 1
        if user is not None:
            self.by_user[(doc_id, user)] += 1

    def leave(self, doc_id: str, address: str, user: str | None = None) -> None:
        _decrement(self.by_document, doc_id)
        _decrement(self.by_address, address)
        if user is not None:
            _decrement(self.by_user, (doc_id, user))


def _decrement(counter: Counter[K], key: K) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


class DocumentSize:
    """A cheap upper bound on one document's encoded size, measured exactly only near the limit.

    Every accepted write adds its length (an update never grows the encoded document by more
    than its own size, give or take a few header bytes). When the bound would cross the limit,
    the room's doc is encoded once to measure it, at most once a second, so a document that sits
    at its limit cannot make every write pay for a full encode.
    """

    REMEASURE_SECONDS = 1.0

    __slots__ = ("bound", "measured_at")

    def __init__(self) -> None:
        self.bound: int | None = None
        self.measured_at = float("-inf")

    def check(self, update_size: int, limit: int, measure: Callable[[], int]) -> None:
        """Raise TooLarge if adding update_size would take the document over `limit`;
        `measure()` gives the document's encoded size."""
        if limit <= 0:
            return
        now = time.monotonic()
        if self.bound is None:
            self.bound = measure()
            self.measured_at = now
        if self.bound + update_size > limit and now - self.measured_at >= self.REMEASURE_SECONDS:
            self.bound = measure()
            self.measured_at = now
        if self.bound + update_size > limit:
            raise TooLarge(f"document would grow past its {limit}-byte limit")
        self.bound += update_size


