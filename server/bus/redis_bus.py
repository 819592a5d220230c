"""The bus between nodes on Redis pub/sub: one channel per document, one pattern for all.

Publishing never blocks the writer: messages go into an outbox that one task sends, pipelined,
in order; if Redis is away the outbox waits and retries (a hint published late is still a
hint, and a duplicate is dropped by its receiver). While Redis stays away the outbox is
compacted to the newest event per document, which is all a receiver needs to find its gap.

Subscribing uses one connection per node that this module owns outright: redis-py's `PubSub`
reconnects and resubscribes by itself, silently, and a silent reconnect is exactly when
messages were lost, so every open room must catch up from the log. Here every reconnect goes
through `_subscribe_forever`, which resubscribes everything, waits for Redis to confirm (a PING
answered after the SUBSCRIBEs), and only then calls the `on_reconnect` callbacks.

Its three tasks (subscriber, publisher, watchdog) run under a `Supervisor`: whatever escapes
their own handling is logged and they start again with backoff; `/healthz` reports one that
died or keeps failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.bus import EVENT, BusMessage, Handler
from server.bus import codec as bus_codec
from server.bus.keys import RedisKeys
from server.supervision import Supervisor

log = logging.getLogger(__name__)

_Outgoing = tuple[bytes, bytes, bool]  # channel, encoded message, is an event


class RedisBus:
    """The Bus protocol on Redis. Build in the app's lifespan; `start()` then `stop()`."""

    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        prefix: str = "palimpsest",
        ping_interval: float = 1.0,
        max_backoff: float = 2.0,
        max_outbox: int = 10_000,
        start_timeout: float = 5.0,
        confirm_timeout: float = 2.0,
        supervisor: Supervisor | None = None,
    ) -> None:
        self._supervisor = supervisor or Supervisor()
        self.node_id = node_id
        self.keys = RedisKeys(prefix)
        self._url = url
        self._ping_interval = ping_interval
        self._max_backoff = max_backoff
        self._max_outbox = max_outbox
        self._start_timeout = start_timeout
        self._confirm_timeout = confirm_timeout
        self._handlers: dict[str, list[Handler]] = {}
        self._all: list[Handler] = []
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._outbox: deque[_Outgoing] = deque()
        self._outbox_ready = asyncio.Event()
        self._outbox_empty = asyncio.Event()
        self._publisher: Redis | None = None
        self._sub_pool: ConnectionPool | None = None
        self._conn: Any = None  # the live subscriber connection, None while down
        self._lock = asyncio.Lock()  # orders (un)subscribe commands against a resubscribe
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        self._ready_token = b""
        self._ready = asyncio.Event()  # subscribed and confirmed
        self._last_heard = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self.connections = 0  # times the subscriber connection became ready (1 + reconnects)

    # Lifecycle

    async def start(self) -> None:
        self._publisher = Redis.from_url(self._url, socket_connect_timeout=2, socket_timeout=5)
        # No retries on the subscriber: a lost connection must surface here, never be mended
        # quietly underneath (see the module docstring).
        self._sub_pool = ConnectionPool.from_url(
            self._url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        self._tasks = [
            self._supervisor.spawn("redis-bus-subscriber", self._subscribe_forever),
            self._supervisor.spawn("redis-bus-publisher", self._publish_forever),
            self._supervisor.spawn("redis-bus-watchdog", self._watch),
        ]
        try:
            await asyncio.wait_for(self._ready.wait(), self._start_timeout)
        except TimeoutError:
            log.error("Redis is unreachable; serving without the bus until it answers")

    async def stop(self) -> None:
        # Give the outbox a moment to drain: a hint lost at shutdown only delays other nodes.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), 1.0)
        for task in self._tasks:
            await self._supervisor.stop(task)
        self._tasks = []
        if self._publisher is not None:
            await self._publisher.aclose()
        if self._sub_pool is not None:
            await self._sub_pool.disconnect()

    async def _drained(self) -> None:
        if self._outbox:
            await self._outbox_empty.wait()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    # The Bus protocol

    async def publish(self, message: BusMessage) -> None:
        self._outbox.append(
            (self.keys.doc_channel(message.doc_id), bus_codec.encode(message),
             message.kind == EVENT)
        )
        if len(self._outbox) > self._max_outbox:
            self._compact_outbox()
        self._outbox_empty.clear()
        self._outbox_ready.set()

    async def subscribe(self, doc_id: str, handler: Handler) -> None:
        handlers = self._handlers.setdefault(doc_id, [])
        handlers.append(handler)
        if len(handlers) == 1:
            await self._send_subscription("SUBSCRIBE", self.keys.doc_channel(doc_id))

    async def unsubscribe(self, doc_id: str, handler: Handler) -> None:
        handlers = self._handlers.get(doc_id, [])
        if handler in handlers:
            handlers.remove(handler)
        if handlers:
            return
        self._handlers.pop(doc_id, None)
        async with self._lock:
            # Checked again under the lock: the document may have been reopened meanwhile.
            if self._conn is not None and doc_id not in self._handlers:
                await self._send(self._conn, "UNSUBSCRIBE", self.keys.doc_channel(doc_id))

    async def subscribe_all(self, handler: Handler) -> None:
        self._all.append(handler)
        if len(self._all) == 1:
            await self._send_subscription("PSUBSCRIBE", self.keys.all_docs_pattern())

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect_callbacks.append(callback)

    async def _send_subscription(self, command: str, channel: bytes) -> None:
        """Subscribe on the live connection and wait for Redis to confirm it.

        Callers read the log right after subscribing; waiting for the confirmation means no
        event committed after that read can be published before we listen. While Redis is
        down nothing is sent: the reconnect subscribes everything and catches every room up.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._confirmations.setdefault(channel, [])
        waiters.append(waiter)
        try:
            async with self._lock:
                if self._conn is None or not await self._send(self._conn, command, channel):
                    return
            try:
                await asyncio.wait_for(asyncio.shield(waiter), self._confirm_timeout)
            except TimeoutError:
                log.warning("Redis did not confirm %s %r in time", command, channel)
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._confirmations.pop(channel, None)

    async def _send(self, conn: Any, *args: bytes | str) -> bool:
        try:
            await conn.send_command(*args)
        except (RedisError, OSError) as exc:
            # The subscriber task sees the broken connection too, and reconnects.
            log.warning("Redis %s failed: %s", args[0], exc)
            return False
        return True

    # Subscriber

    async def _subscribe_forever(self) -> None:
        assert self._sub_pool is not None
        backoff = 0.05
        while True:
            conn = self._sub_pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.connect()
                self._last_heard = asyncio.get_running_loop().time()
                await self._resubscribe(conn)
                while True:
                    response = await conn.read_response(push_request=True)
                    self._last_heard = asyncio.get_running_loop().time()
                    if self._dispatch(response):
                        backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the connection means: start over
                log.warning("Redis subscriber connection lost (%r); reconnecting", exc)
            finally:
                self._conn = None
                self._ready.clear()
                for waiters in self._confirmations.values():
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)  # the reconnect's catch-up covers them
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
            await asyncio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, self._max_backoff)

    async def _resubscribe(self, conn: Any) -> None:
        async with self._lock:
            if self._all:
                await conn.send_command("PSUBSCRIBE", self.keys.all_docs_pattern())
            channels = [self.keys.doc_channel(doc_id) for doc_id in self._handlers]
            for start in range(0, len(channels), 1000):
                await conn.send_command("SUBSCRIBE", *channels[start : start + 1000])
            # Redis answers in order: once this PING's answer arrives, every SUBSCRIBE above
            # is in force, so a catch-up that starts then misses nothing.
            self._ready_token = os.urandom(8).hex().encode()
            await conn.send_command("PING", self._ready_token)
            self._conn = conn

    def _dispatch(self, response: Any) -> bool:
        """Handle one thing Redis sent; True when it completed a (re)connection."""
        if isinstance(response, bytes):  # PING's answer before any subscription
            return self._pong(response)
        if not isinstance(response, list) or not response:
            return False
        kind = response[0]
        if kind == b"message":
            self._deliver(response[1], response[2], via_pattern=False)
        elif kind == b"pmessage":
            self._deliver(response[2], response[3], via_pattern=True)
        elif kind in (b"subscribe", b"psubscribe"):
            for waiter in self._confirmations.get(response[1], ()):
                if not waiter.done():
                    waiter.set_result(None)
        elif kind == b"pong" and len(response) > 1:
            return self._pong(response[1])
        return False

    def _pong(self, token: bytes) -> bool:
        if token != self._ready_token or self._ready.is_set():
            return False
        self._ready.set()
        self.connections += 1
        if self.connections > 1:
            log.info("Redis bus reconnected; catching every open room up from the log")
        for callback in list(self._reconnect_callbacks):
            try:
                callback()
            except Exception:
                log.exception("bus reconnect callback failed")
        return True

    def _deliver(self, channel: bytes, data: bytes, *, via_pattern: bool) -> None:
        doc_id = self.keys.doc_id_of(channel)
        if doc_id is None:
            return
        try:
            message = bus_codec.decode(doc_id, data)
        except bus_codec.BadBusMessage as exc:
            log.warning("dropped a bus message on %r: %s", channel, exc)
            return
        if via_pattern:
            handlers = list(self._all) if message.kind == EVENT else []
        else:
            handlers = list(self._handlers.get(doc_id, ()))
        for handler in handlers:
            try:
                handler(message)
            except Exception:  # one bad subscriber must not stop delivery to the rest
                log.exception("bus handler failed for %s", doc_id)

    async def _watch(self) -> None:
        """Ping the subscriber connection; drop it when Redis has gone quiet for too long."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_interval)
            conn = self._conn
            if conn is None:
                continue
            if loop.time() - self._last_heard > 3 * self._ping_interval:
                log.warning("no word from Redis for %.1fs; reconnecting",
                            loop.time() - self._last_heard)
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
                continue
            async with self._lock:
                if self._conn is conn:
                    await self._send(conn, "PING")

    # Publisher

    async def _publish_forever(self) -> None:
        assert self._publisher is not None
        backoff = 0.05
        if self._outbox:
            self._outbox_ready.set()  # restarted after a failure with messages waiting
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), 500))]
                try:
                    if len(batch) == 1:
                        await self._publisher.publish(batch[0][0], batch[0][1])
                    else:
                        async with self._publisher.pipeline(transaction=False) as pipe:
                            for channel, data, _ in batch:
                                pipe.publish(channel, data)
                            await pipe.execute()
                except (RedisError, OSError) as exc:
                    self._outbox.extendleft(reversed(batch))
                    log.warning("publishing to Redis failed (%s); retrying in %.2fs", exc,
                                backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                except Exception:
                    # Not Redis being away: these messages would fail again. They are hints;
                    # receivers find the gap in the log (the room sweep, the next event).
                    log.exception("publishing %d bus messages failed; dropped them", len(batch))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                backoff = 0.05
            self._outbox_empty.set()

    def _compact_outbox(self) -> None:
        """Keep only the newest event per document: receivers read the rest from the log."""
        newest: dict[bytes, int] = {}
        items = list(self._outbox)
        for index, (channel, _, is_event) in enumerate(items):
            if is_event:
                newest[channel] = index
        keep = set(newest.values())
        self._outbox = deque(item for index, item in enumerate(items) if index in keep)
        log.warning("Redis outbox over %d messages: kept the newest event of %d documents",
                    self._max_outbox, len(keep))
