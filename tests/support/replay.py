"""Independent checks against the stored log: a cold replay, and reading a trace."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from pycrdt import Doc, Text

from storage.database import open_database
from storage.event_store import EventStore
from storage.records import EventRecord

# The project's own copy of the traces (licences in its README.md).
TRACES = Path(__file__).resolve().parents[1] / "data" / "editing-traces"


async def stored_events(database_url: str, doc_id: str) -> list[EventRecord]:
    db = open_database(database_url)
    try:
        return await EventStore(db).read_list(doc_id)
    finally:
        await db.dispose()


async def cold_replay(database_url: str, doc_id: str) -> str:
    """The text that replaying the whole log from seq 1 in a fresh Doc gives."""
    doc = Doc()
    text = doc.get("content", type=Text)
    for event in await stored_events(database_url, doc_id):
        if event.kind in ("update", "restore"):
            doc.apply_update(event.payload)
    return str(text)


@dataclass(frozen=True)
class Trace:
    start: str
    end: str
    patches: list[tuple[int, int, str]]

    def text_after(self, count: int) -> str:
        """An independent replay on a Python string of the first `count` patches."""
        chars = list(self.start)
        for pos, delete, insert in self.patches[:count]:
            chars[pos : pos + delete] = list(insert)
        return "".join(chars)


def load_trace(name: str = "automerge-paper") -> Trace:
    data = json.loads(gzip.open(TRACES / f"{name}.json.gz").read())
    patches = [(p[0], p[1], p[2]) for txn in data["txns"] for p in txn["patches"]]
    return Trace(data["startContent"], data["endContent"], patches)
