"""Retention and purging, run by `palimpsest compact | purge` and on the server's schedule.

Part of the composition (like app.py and cli.py, it may use both sides): the read side plans a
compaction from its revisions and versions (server.read.retention), the write side carries it
out (a `CompactHistory` command); purging removes documents deleted longer ago than the
period (storage.lifecycle). The schedule (`PALIMPSEST_MAINTENANCE_INTERVAL_SECONDS`, off by
default) does both for every document, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.errors import PalimpsestError
from server.events import RETENTION_SET, RetentionSet, decode
from server.read.projector import Projector
from server.read.retention import plan_compaction
from server.retention import DAY, horizon
from server.write.commands import CompactHistory
from server.write.handlers import WriteSide
from storage.errors import StorageError
from storage.event_store import EventStore
from storage.lifecycle import deleted_before, latest_event, purge
from storage.read_model import ReadModel

log = logging.getLogger(__name__)

MAINTENANCE_ACTOR = "palimpsest-retention"


@dataclass(frozen=True, slots=True)
class Compacted:
    doc_id: str
    seq: int  # of the audit event
    keep_days: float
    merged: int
    absorbed: int
    events_before: int
    events_after: int
    bytes_before: int
    bytes_after: int

    @classmethod
    def of(cls, doc_id: str, keep_days: float, seq: int, meta: dict[str, Any]) -> Compacted:
        return cls(doc_id, seq, keep_days, int(meta["merged"]), int(meta["absorbed"]),
                   int(meta["events_before"]), int(meta["events_after"]),
                   int(meta["bytes_before"]), int(meta["bytes_after"]))


class Maintenance:
    def __init__(self, store: EventStore, read_model: ReadModel, write: WriteSide,
                 projector: Projector | None, *, keep_days: float | None,
                 deleted_retention_days: float, actor: str = MAINTENANCE_ACTOR) -> None:
        self.store = store
        self.read_model = read_model
        self.write = write
        self.projector = projector  # to project a document before planning (the command line)
        self.keep_days = keep_days
        self.deleted_retention_days = deleted_retention_days
        self.actor = actor
        self._task: asyncio.Task[None] | None = None

    async def policy(self, doc_id: str, override: float | None = None) -> float | None:
        """How many days of events the document keeps whole: the override, else its own
        policy, else the default (None: keep everything)."""
        if override is not None:
            return override
        latest = await latest_event(self.store.db, doc_id, (RETENTION_SET,))
        if latest is not None:
            event = decode(latest)
            if isinstance(event, RetentionSet) and event.keep_days is not None:
                return event.keep_days
        return self.keep_days

    async def compact(self, doc_id: str, keep_days: float | None = None,
                      now: float | None = None) -> Compacted | None:
        """Compact one document under its policy; None when there is nothing to merge."""
        keep = await self.policy(doc_id, keep_days)
        if keep is None:
            return None
        if self.projector is not None:
            await self.projector.project(doc_id, await self.store.head_seq(doc_id))
        before = horizon(time.time() if now is None else now, keep)
        segments = await plan_compaction(self.store.db, self.read_model, doc_id, before)
        if not segments:
            return None
        record = await self.write.execute(
            CompactHistory(doc_id, self.actor, before, tuple(segments)))
        if self.projector is not None:
            await self.projector.project(doc_id, record.seq)
        return Compacted.of(doc_id, keep, record.seq, record.meta)

    async def compact_all(self, keep_days: float | None = None,
                          on_document: Callable[[str, Compacted | None], None] | None = None,
                          ) -> list[Compacted]:
        done = []
        for doc_id in await self.store.document_ids():
            try:
                result = await self.compact(doc_id, keep_days)
            except (PalimpsestError, StorageError) as exc:
                log.warning("compaction of %s failed: %s", doc_id, exc)
                continue
            if on_document is not None:
                on_document(doc_id, result)
            if result is not None:
                done.append(result)
        return done

    async def purge(self, older_than_days: float | None = None, now: float | None = None,
                    doc_id: str | None = None) -> dict[str, int]:
        """Remove every row of the documents (or of `doc_id` only) deleted more than the
        period ago; returns the number of events removed per document."""
        days = self.deleted_retention_days if older_than_days is None else older_than_days
        cutoff = (time.time() if now is None else now) - days * DAY
        candidates = [doc_id] if doc_id is not None else await deleted_before(self.store.db,
                                                                               cutoff)
        purged = {}
        for candidate in candidates:  # each checked again under its row lock
            removed = await purge(self.store.db, candidate, cutoff)
            if removed >= 0:
                purged[candidate] = removed
                log.info("purged %s (%s events)", candidate, removed)
        return purged

    # The schedule

    def start(self, interval: float) -> None:
        if interval > 0:
            self._task = asyncio.create_task(self._run(interval), name="maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                compacted = await self.compact_all()
                purged = await self.purge()
                log.info("maintenance: %s documents compacted, %s purged", len(compacted),
                         len(purged))
            except StorageError as exc:
                log.warning("maintenance pass failed: %s", exc)
            except Exception:
                log.exception("maintenance pass failed")
