"""A test seam: a Bus that drops, duplicates and reorders the events it delivers.

Redis pub/sub is at most once, and live documents must cope with any of that
(docs/architecture.md, invariant 4).
Real Redis rarely misbehaves on demand, so the fault tests start nodes with
`PALIMPSEST_TEST_BUS_FAULTS=drop=0.2,duplicate=0.2,reorder=0.2,seed=7`, and the app wraps its
bus in this class. Nothing else ever builds it. It sits on the receiving side, between the real
bus and the rooms, and touches only other nodes' EVENT messages (awareness is not checked for
order by anyone, and a node's own echo is dropped by its rooms anyway).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields

from server.bus import EVENT, Bus, BusMessage, Handler

log = logging.getLogger(__name__)

HOLD_SECONDS = 0.05  # how long a held-back message waits for a later one to overtake it


@dataclass(frozen=True)
class Faults:
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    seed: int = 0

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """`drop=0.2,duplicate=0.1,reorder=0.3,seed=7`; unknown names are an error."""
        known = {f.name for f in fields(cls)}
        values: dict[str, float | int] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = part.partition("=")
            if name not in known:
                raise ValueError(f"unknown bus fault {name!r} (known: {sorted(known)})")
            values[name] = int(value) if name == "seed" else float(value)
        return cls(**values)  # type: ignore[arg-type]


class FaultyBus:
    """Wraps a Bus; counts what it did in `counts` and logs the counts when it stops."""

    def __init__(self, inner: Bus, faults: Faults) -> None:
        self.inner = inner
        self.node_id = inner.node_id
        self.faults = faults
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(faults.seed)
        self._wrapped: dict[tuple[str, Handler], Handler] = {}

    async def start(self) -> None:
        log.warning("TEST SEAM: bus deliveries are faulty (%s)", self.faults)
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()
        log.warning("bus faults injected: dropped=%d duplicated=%d reordered=%d delivered=%d",
                    self.counts["dropped"], self.counts["duplicated"],
                    self.counts["reordered"], self.counts["delivered"])

    async def publish(self, message: BusMessage) -> None:
        await self.inner.publish(message)

    async def subscribe(self, doc_id: str, handler: Handler) -> None:
        wrapped = self._wrap(handler)
        self._wrapped[(doc_id, handler)] = wrapped
        await self.inner.subscribe(doc_id, wrapped)

    async def unsubscribe(self, doc_id: str, handler: Handler) -> None:
        wrapped = self._wrapped.pop((doc_id, handler), None)
        if wrapped is not None:
            await self.inner.unsubscribe(doc_id, wrapped)

    async def subscribe_all(self, handler: Handler) -> None:
        await self.inner.subscribe_all(self._wrap(handler))

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self.inner.on_reconnect(callback)

    def _wrap(self, handler: Handler) -> Handler:
        held: list[BusMessage] = []  # at most one message held back, to be overtaken
        loop = asyncio.get_running_loop()

        def deliver(message: BusMessage) -> None:
            self.counts["delivered"] += 1
            handler(message)

        def release(message: BusMessage) -> None:
            if held and held[0] is message:
                held.clear()
                deliver(message)

        def faulty(message: BusMessage) -> None:
            if message.kind != EVENT or message.origin == self.node_id:
                handler(message)
                return
            roll = self._rng.random()
            f = self.faults
            if roll < f.drop:
                self.counts["dropped"] += 1
            elif roll < f.drop + f.reorder and not held:
                held.append(message)  # delivered after the next message, or after a while
                loop.call_later(HOLD_SECONDS, release, message)
            else:
                deliver(message)
                if held:
                    self.counts["reordered"] += 1
                    deliver(held.pop())
            if self._rng.random() < f.duplicate:
                self.counts["duplicated"] += 1
                loop.call_later(self._rng.random() * HOLD_SECONDS, deliver, message)

        return faulty
