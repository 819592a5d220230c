"""Checking stored logs against their hash chain (`palimpsest verify`), and reading it.

`verify_document` walks one log in seq order, recomputing every hash (storage.chain): the
first event whose stored hash differs from the one its content and its predecessor give is
where the log was altered (a changed payload, meta, actor, time or kind, or a removed event:
the next one no longer chains). It also checks that `documents.head_hash` and `head_seq` name
the last event, so a removed tail is found too. It checks the log up to the head it read
first, so a live server may keep appending meanwhile (a rewrite meanwhile, an erasure or a
compaction, shows as a break: run it again).

Packed segments (storage.segments) keep the hash of their last event and the first bytes of
every event's hash: reading one recomputes its chain from the hash before it and marks the
first event that does not match (BROKEN), so the walk below names the altered event there too
(or the segment's last event, when only its stored last hash disagrees).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from storage import packed_log
from storage.chain import GENESIS, Verifier
from storage.database import Database
from storage.errors import DocumentNotFound
from storage.event_store import EventStore
from storage.schema import documents
from storage.segments import CorruptSegment


@dataclass(frozen=True, slots=True)
class Verdict:
    doc_id: str
    events: int  # events checked
    head_seq: int
    head_hash: bytes
    first_broken: int | None  # None: the whole chain holds
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken is None


async def count_events(db: Database, doc_id: str | None = None) -> int:
    async with db.snapshot() as conn:
        return await packed_log.count(conn, doc_id)


async def verify_document(store: EventStore, doc_id: str,
                          on_progress: Callable[[int], None] | None = None) -> Verdict:
    async with store.db.read() as conn:
        doc = (await conn.execute(
            select(documents.c.head_seq, documents.c.head_hash).where(documents.c.id == doc_id)
        )).first()
    if doc is None:
        raise DocumentNotFound(doc_id)
    head_seq = int(doc.head_seq)
    stored_head = bytes(doc.head_hash) if doc.head_hash is not None else GENESIS
    verifier = Verifier()
    last_seq, done = 0, 0
    # Up to the head read above: appends that commit meanwhile are not this verdict's.
    try:
        async for record in store.read(doc_id, until_seq=head_seq):
            last_seq = record.seq
            if not verifier.feed(record):
                break
            done += 1
            if on_progress is not None and done % 1000 == 0:
                on_progress(1000)
    except CorruptSegment as exc:
        return Verdict(doc_id, verifier.count, head_seq, stored_head, exc.first_seq, str(exc))
    if on_progress is not None:
        on_progress(done % 1000)
    if verifier.first_broken is not None:
        return Verdict(doc_id, verifier.count, head_seq, stored_head, verifier.first_broken,
                       "its stored hash is not the hash of its content and predecessor")
    if verifier.expected != stored_head or last_seq != head_seq:
        # Events past the last one found were removed, or the head itself was altered.
        return Verdict(doc_id, verifier.count, head_seq, stored_head, last_seq + 1,
                       f"the document's head (seq {head_seq}) is not its last event "
                       f"(seq {last_seq})")
    return Verdict(doc_id, verifier.count, head_seq, stored_head, None)


async def hash_at(db: Database, doc_id: str, seq: int) -> bytes | None:
    """The chain's hash after event `seq` (GENESIS at 0); None if there is no such event."""
    if seq <= 0:
        return GENESIS
    async with db.snapshot() as conn:
        return await packed_log.hash_at(conn, doc_id, seq)
