"""The log read back cold: what every client must converge to."""

from __future__ import annotations

from pycrdt import Doc, Text

from storage.database import open_database
from storage.event_store import EventStore

UPDATE_KINDS = ("update", "restore")


async def log_seqs_and_text(database_url: str, doc_id: str) -> tuple[list[int], int, str]:
    """(every seq in the log, the document's head_seq, the text of a cold replay)."""
    db = open_database(database_url, pool_size=1)
    try:
        store = EventStore(db)
        events = await store.read_list(doc_id)
        head = await store.head_seq(doc_id)
    finally:
        await db.dispose()
    doc = Doc()
    text = doc.get("content", type=Text)
    for event in events:
        if event.kind in UPDATE_KINDS:
            doc.apply_update(event.payload)
    return [e.seq for e in events], head, str(text)


def assert_gap_free(seqs: list[int], head: int) -> None:
    assert seqs == list(range(1, head + 1)), (
        f"log of {len(seqs)} events is not 1..{head}: first gaps "
        f"{sorted(set(range(1, head + 1)) - set(seqs))[:10]}"
    )
