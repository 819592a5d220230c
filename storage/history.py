"""Rewriting a document's stored history: erasure and compaction share this one transaction.

A `Rewrite` changes some events' payloads or metas and deletes some seq ranges, then re-chains
every hash from the first event it touched to the head and appends the audit event that
records it (its seq and hash chained like any append's). It runs in one transaction that
first raises `documents.head_seq`, the row lock every append takes, so it is serialised with
appenders on every node: an append that waited for it chains on the rewritten head.

Packed segments (storage.packed_log) from the first event the rewrite reads on are unpacked
into rows first, and the rewritten log is packed again before the commit.

The same transaction resets the document's read models and drops its snapshots (the projector
rebuilds them from the rewritten log). The projector checkpoint row is reset first: on
PostgreSQL that waits for a projector save in flight, and a projector that read the old log
then fails its save (its owner and checkpoint no longer match) instead of writing old rows.
The deleted flag (`document_lifecycle`) is kept: no rewrite touches delete events.

A snapshot saved when a room unloads could carry the old content back in after a rewrite:
`save_snapshot_unless_rewritten` refuses one when a rewrite was committed after its seq, in a
transaction serialised with the rewrite by the same row lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, and_, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import chain, packed_log
from storage.database import Database
from storage.errors import DocumentNotFound, StorageError
from storage.event_store import snapshot_upsert
from storage.insights import restart_document
from storage.records import EventRecord, NewEvent, SnapshotRecord
from storage.schema import (
    document_views,
    documents,
    events,
    projector_checkpoints,
    revisions,
    snapshots,
    text_change_chunks,
    versions,
)

# The kinds of the audit events a rewrite appends (server.events names them too).
REWRITE_KINDS = ("erasure", "compaction")
BATCH = 2000


class HistoryChanged(StorageError):
    """An event the rewrite was planned on has changed (another rewrite came first)."""


@dataclass(frozen=True)
class Rewrite:
    doc_id: str
    audit: NewEvent  # appended at the head; the rewrite adds its figures to the meta
    expected: Mapping[int, bytes]  # seq -> the hash each event planned on must still have
    payloads: Mapping[int, bytes] = field(default_factory=dict)  # seq -> new payload
    metas: Mapping[int, dict[str, Any]] = field(default_factory=dict)  # seq -> new meta
    removed: Sequence[tuple[int, int]] = ()  # inclusive seq ranges deleted from the log


@dataclass(frozen=True)
class Rewritten:
    audit: EventRecord
    rechained_from: int  # the first seq whose hash changed
    previous_head_hash: bytes | None
    events_before: int  # events in the log before, and after (the audit event not counted)
    events_after: int
    bytes_before: int  # payload bytes, before and after
    bytes_after: int


async def rewrite(db: Database, plan: Rewrite) -> Rewritten:
    async with db.write() as conn:
        return await _rewrite_in(conn, plan)


async def _stats(conn: AsyncConnection, doc_id: str) -> tuple[int, int]:
    return await packed_log.stats(conn, doc_id)


async def _check_expected(conn: AsyncConnection, doc_id: str,
                          expected: Mapping[int, bytes]) -> None:
    seqs = sorted(expected)
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        rows = (await conn.execute(
            select(events.c.seq, events.c.hash)
            .where(events.c.doc_id == doc_id, events.c.seq.in_(chunk))
        )).all()
        found = {int(r.seq): bytes(r.hash) for r in rows}
        for seq in chunk:
            if found.get(seq) != expected[seq]:
                raise HistoryChanged(f"event {seq} of {doc_id!r} changed since it was read")


async def _apply(conn: AsyncConnection, plan: Rewrite) -> None:
    doc = plan.doc_id
    where = and_(events.c.doc_id == bindparam("d"), events.c.seq == bindparam("s"))
    if plan.payloads:
        await conn.execute(
            update(events).where(where).values(payload=bindparam("p")),
            [{"d": doc, "s": s, "p": p} for s, p in sorted(plan.payloads.items())],
        )
    if plan.metas:
        await conn.execute(
            update(events).where(where).values(meta=bindparam("m", type_=JSON)),
            [{"d": doc, "s": s, "m": m} for s, m in sorted(plan.metas.items())],
        )
    for first, last in plan.removed:
        await conn.execute(delete(events).where(
            events.c.doc_id == doc, events.c.seq >= first, events.c.seq <= last))


async def _rechain(conn: AsyncConnection, doc_id: str, first: int) -> bytes:
    """Recompute every hash from seq `first` on; returns the last one (of the head)."""
    previous = await packed_log.hash_before(conn, doc_id, first)
    last = first - 1
    set_hash = (update(events)
                .where(events.c.doc_id == bindparam("d"), events.c.seq == bindparam("s"))
                .values(hash=bindparam("h")))
    while True:
        rows = (await conn.execute(
            select(events.c.seq, events.c.kind, events.c.payload, events.c.actor,
                   events.c.time, events.c.meta)
            .where(events.c.doc_id == doc_id, events.c.seq > last)
            .order_by(events.c.seq).limit(BATCH)
        )).all()
        if not rows:
            return previous
        changed = []
        for r in rows:
            previous = chain.event_hash(previous, int(r.seq), r.kind, bytes(r.payload),
                                        r.actor, r.time, r.meta or {})
            changed.append({"d": doc_id, "s": int(r.seq), "h": previous})
        await conn.execute(set_hash, changed)
        last = int(rows[-1].seq)


async def reset_read_models(conn: AsyncConnection, doc_id: str) -> None:
    """Forget the document's projection and snapshots: the projector starts it again from 0.

    The checkpoint row first (see the module docstring); the deleted flag stays."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    reset = {"seq": 0, "owner": None, "lease_until": 0.0}
    await conn.execute(
        insert(projector_checkpoints).values(doc_id=doc_id, **reset)
        .on_conflict_do_update(index_elements=["doc_id"], set_=reset)
    )
    for table in (text_change_chunks, revisions, versions, document_views, snapshots):
        await conn.execute(delete(table).where(table.c.doc_id == doc_id))


async def _rewrite_in(conn: AsyncConnection, plan: Rewrite) -> Rewritten:
    doc_id = plan.doc_id
    head = (await conn.execute(
        update(documents).where(documents.c.id == doc_id)
        .values(head_seq=documents.c.head_seq + 1)
        .returning(documents.c.head_seq, documents.c.head_hash)
    )).first()
    if head is None:
        raise DocumentNotFound(doc_id)
    audit_seq = int(head.head_seq)
    previous_head = bytes(head.head_hash) if head.head_hash is not None else None
    events_before, bytes_before = await _stats(conn, doc_id)
    # Packed segments from the first event the rewrite reads or touches on go back into rows
    # (the rewrite re-chains every hash from there); packed again at the end.
    reads = [*plan.expected, *plan.payloads, *plan.metas, *(first for first, _ in plan.removed)]
    await packed_log.unpack_from(conn, doc_id, min(reads, default=audit_seq))
    await _check_expected(conn, doc_id, plan.expected)
    await _apply(conn, plan)
    touched = [*plan.payloads, *plan.metas, *(first for first, _ in plan.removed)]
    first = min(touched, default=audit_seq)
    last_hash = await _rechain(conn, doc_id, first) if touched else previous_head
    events_after, bytes_after = await _stats(conn, doc_id)
    new = plan.audit
    meta = {**new.meta, "rechained_from": first,
            "previous_head_hash": previous_head.hex() if previous_head else None,
            "events_before": events_before, "events_after": events_after,
            "bytes_before": bytes_before, "bytes_after": bytes_after}
    [audit] = chain.link(last_hash, [EventRecord(doc_id, audit_seq, new.kind, new.payload,
                                                 new.actor, new.time, meta)])
    await conn.execute(events.insert().values(
        doc_id=doc_id, seq=audit.seq, kind=audit.kind, payload=audit.payload,
        actor=audit.actor, time=audit.time, meta=audit.meta, hash=audit.hash))
    await conn.execute(update(documents).where(documents.c.id == doc_id)
                       .values(head_hash=audit.hash))
    await packed_log.pack_due(conn, doc_id, audit.seq)
    await reset_read_models(conn, doc_id)
    await restart_document(conn, doc_id, audit.seq)  # the status, activity and search rows
    return Rewritten(audit, first, previous_head, events_before, events_after, bytes_before,
                     bytes_after)


async def save_snapshot_unless_rewritten(db: Database, snap: SnapshotRecord) -> bool:
    """Save a room's snapshot unless the log was rewritten after its seq; True if saved."""
    async with db.write() as conn:
        # The document row's lock: a rewrite in flight commits first (and is seen below), or
        # waits for this save and then deletes what it saved.
        locked = (await conn.execute(
            select(documents.c.id).where(documents.c.id == snap.doc_id).with_for_update()
        )).first()
        if locked is None:
            return False
        rewritten = (await conn.execute(
            select(events.c.seq).where(events.c.doc_id == snap.doc_id, events.c.seq > snap.seq,
                                       events.c.kind.in_(REWRITE_KINDS)).limit(1)
        )).first()
        if rewritten is not None:
            return False
        await conn.execute(snapshot_upsert(db.dialect, snap))
    return True
