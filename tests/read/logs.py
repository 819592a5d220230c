"""Writing logs for read-side tests: Yjs updates from a pycrdt editor, appended directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pycrdt import Doc, Text, TransactionEvent

from storage.database import Database, is_sqlite, open_database
from storage.event_store import EventStore
from storage.migrate import migrate
from storage.records import NewEvent
from tests.support.replay import Trace


@asynccontextmanager
async def opened(database_url: str) -> AsyncIterator[Database]:
    if is_sqlite(database_url):
        await migrate(database_url)
    db = open_database(database_url)
    try:
        yield db
    finally:
        await db.dispose()


class Editor:
    """A pycrdt document that hands back the update of each edit."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("content", type=Text)
        self._updates: list[bytes] = []
        self._sub = self.doc.observe(self._keep)

    def _keep(self, event: TransactionEvent) -> None:
        self._updates.append(event.update)

    def insert(self, pos: int, value: str) -> bytes:
        """Insert at a character position (converted to pycrdt's UTF-8 byte offsets)."""
        current = str(self.text)
        with self.doc.transaction():
            self.text.insert(len(current[:pos].encode()), value)
        return self._updates.pop()

    def delete(self, pos: int, length: int) -> bytes:
        current = str(self.text)
        start = len(current[:pos].encode())
        end = len(current[: pos + length].encode())
        with self.doc.transaction():
            del self.text[start:end]
        return self._updates.pop()

    def value(self) -> str:
        return str(self.text)


def trace_updates(trace: Trace, count: int) -> list[bytes]:
    """One update per patch of the trace, as an editor typing it would send them."""
    editor = Editor()
    updates: list[bytes] = []
    for pos, delete, insert in trace.patches[:count]:
        with editor.doc.transaction():
            if delete:
                del editor.text[pos : pos + delete]
            if insert:
                editor.text.insert(pos, insert)
        updates.append(editor._updates.pop())
    return updates


async def append(store: EventStore, doc_id: str, kind: str, payload: bytes, actor: str,
                 time: float, meta: dict[str, Any] | None = None) -> int:
    [record] = await store.append(doc_id, [NewEvent(kind, payload, actor, time, meta or {})])
    return record.seq
