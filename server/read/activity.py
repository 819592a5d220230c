"""Queries of the activity read model, and the live stream of what happens in the documents.

Activity answers sum the per-minute rows (storage.activity) into minute, hour or day buckets:
one item per bucket and author. The stream (`ActivityStream`) follows the bus: every event
committed on any node reaches every node's subscribers within the bus's latency, as one small
JSON message naming the document; a subscriber only hears of documents it may read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from server.bus import Bus, BusMessage
from server.errors import BadRequest
from server.read.insight_freshness import InsightFreshness
from server.read.queries import iso, parse_time
from storage.activity import ActivityRow, activity
from storage.database import Database
from storage.insights import InsightStore

Json = dict[str, Any]
BUCKETS = {"minute": 60, "hour": 3600, "day": 86400}
DEFAULT_WINDOW = 7 * 86400.0  # `since` left out: the last week
STREAM_QUEUE = 256  # messages a slow subscriber may fall behind before it is dropped


def bucket_seconds(name: str | None) -> int:
    if name is None or name == "":
        return BUCKETS["hour"]
    if name not in BUCKETS:
        raise BadRequest(f"bucket must be one of {', '.join(BUCKETS)}")
    return BUCKETS[name]


def since_time(value: str | None, now: float) -> float:
    return now - DEFAULT_WINDOW if not value else parse_time(value)


def _items(rows: list[ActivityRow]) -> list[Json]:
    """Sum rows of several documents into one item per bucket and author."""
    merged: dict[tuple[int, str], Json] = {}
    for r in rows:
        item = merged.setdefault((r.start, r.author), {
            "start": iso(r.start), "author": r.author, "events": 0, "inserted": 0,
            "deleted": 0, "words_added": 0, "words_removed": 0, "active_seconds": 0.0,
            "documents": []})
        for name in ("events", "inserted", "deleted", "words_added", "words_removed"):
            item[name] += getattr(r, name)
        item["active_seconds"] = round(item["active_seconds"] + r.active_seconds, 3)
        item["documents"].append(r.doc_id)
    return [merged[key] for key in sorted(merged)]


class ActivityQueries:
    def __init__(self, db: Database, freshness: InsightFreshness) -> None:
        self.db = db
        self.insights = InsightStore(db)
        self.freshness = freshness

    async def document(self, doc_id: str, bucket: int, since: float,
                       min_seq: int | None = None) -> Json:
        seq = await self.freshness.seq(doc_id, min_seq)
        items = _items(await activity(self.db, bucket, since, doc_id))
        for item in items:
            del item["documents"]
        return {"items": items, "seq": seq, "bucket": bucket}

    async def across(self, bucket: int, since: float,
                     readable: Callable[[str], bool]) -> Json:
        rows = [r for r in await activity(self.db, bucket, since) if readable(r.doc_id)]
        seqs = {doc_id: await self.insights.checkpoint(doc_id)
                for doc_id in sorted({r.doc_id for r in rows})}
        return {"items": _items(rows), "seqs": seqs, "seq": sum(seqs.values()),
                "bucket": bucket}


class ActivityStream:
    """Every committed event's hint from the bus, fanned out to this node's SSE subscribers."""

    def __init__(self) -> None:
        self._subscribers: set[tuple[asyncio.Queue[str], Callable[[str], bool]]] = set()

    async def start(self, bus: Bus) -> None:
        await bus.subscribe_all(self._on_bus)

    def _on_bus(self, message: BusMessage) -> None:
        if not self._subscribers:
            return
        data = json.dumps({"id": message.doc_id, "seq": message.seq,
                           "kind": message.event_kind}, separators=(",", ":"))
        for subscriber in list(self._subscribers):
            queue, readable = subscriber
            if not readable(message.doc_id):
                continue
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                self._subscribers.discard(subscriber)  # too slow: its stream ends

    async def messages(self, readable: Callable[[str], bool],
                       keepalive: float = 15.0) -> AsyncIterator[str]:
        """SSE lines for one subscriber: `data: {...}` per event, a comment as keepalive."""
        queue: asyncio.Queue[str] = asyncio.Queue(STREAM_QUEUE)
        subscriber = (queue, readable)
        self._subscribers.add(subscriber)
        try:
            yield ": connected\n\n"
            while subscriber in self._subscribers:
                try:
                    data = await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield f"data: {data}\n\n"
        finally:
            self._subscribers.discard(subscriber)
