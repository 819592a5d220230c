"""A packed log: sealed ranges of each document's `update` events move into `event_segments`.

A new table, `event_segments` (storage.schema, format storage.segments). Every document's
ranges of SEGMENT seqs that end at least LAG seqs behind its head are packed, as the event
store does after an append (storage.packed_log): each run of consecutive `update` events in
a range becomes one row holding them compressed, with the hash before the run and the hash
of its last event; their rows are deleted. Packing is lossless: every seq reads back the same
event (seq, kind, payload, actor, time, meta, hash), and `palimpsest verify` still passes.
The time index `ix_events_doc_time` is dropped (time lookups read the tail's rows and one
segment's time range). On SQLite, run VACUUM afterwards to give the freed pages back to the
file system (docs/operations.md).

`downgrade` unpacks every segment back into rows and restores the index.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from storage.chain import GENESIS
from storage.records import EventRecord
from storage.segments import SEGMENT, PackedSegment, pack, unpack

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

LAG = SEGMENT  # storage.packed_log's
PACKED_KINDS = ("update",)
PRESET = 6  # once, offline: xz's default preset (smaller than the live packer's)

_events = sa.table(
    "events", sa.column("doc_id", sa.String), sa.column("seq", sa.BigInteger),
    sa.column("kind", sa.String), sa.column("payload", sa.LargeBinary),
    sa.column("actor", sa.Text), sa.column("time", sa.Float), sa.column("meta", sa.JSON),
    sa.column("hash", sa.LargeBinary),
)
_segments = sa.table(
    "event_segments", sa.column("doc_id", sa.String), sa.column("first_seq", sa.BigInteger),
    sa.column("last_seq", sa.BigInteger), sa.column("event_count", sa.Integer),
    sa.column("payload_bytes", sa.BigInteger), sa.column("min_time", sa.Float),
    sa.column("max_time", sa.Float), sa.column("prev_hash", sa.LargeBinary),
    sa.column("last_hash", sa.LargeBinary), sa.column("data", sa.LargeBinary),
)


def _record(doc_id: str, r: Any) -> EventRecord:
    return EventRecord(doc_id, int(r.seq), r.kind, bytes(r.payload), r.actor, r.time,
                       r.meta or {}, bytes(r.hash))


def _pack_document(bind: sa.Connection, doc_id: str, head: int) -> None:
    e = _events.c
    previous = GENESIS  # the hash of the last event read (the log is walked in seq order)
    packable_end = ((head - LAG) // SEGMENT) * SEGMENT
    for k in range(packable_end // SEGMENT):
        rows = [_record(doc_id, r) for r in bind.execute(
            sa.select(_events).where(e.doc_id == doc_id, e.seq > k * SEGMENT,
                                     e.seq <= (k + 1) * SEGMENT).order_by(e.seq)).all()]
        runs: list[tuple[bytes, list[EventRecord]]] = []
        for record in rows:
            if record.kind in PACKED_KINDS:
                if not runs or runs[-1][1][-1].hash != previous:
                    runs.append((previous, []))
                runs[-1][1].append(record)
            previous = record.hash
        segments = [pack(prev, run, PRESET) for prev, run in runs]
        if not segments:
            continue
        bind.execute(_segments.insert(), [_row(doc_id, s) for s in segments])
        bind.execute(sa.delete(_events).where(
            e.doc_id == doc_id, e.seq > k * SEGMENT, e.seq <= (k + 1) * SEGMENT,
            e.kind.in_(PACKED_KINDS)))


def _row(doc_id: str, s: PackedSegment) -> dict[str, Any]:
    return {"doc_id": doc_id, "first_seq": s.first_seq, "last_seq": s.last_seq,
            "event_count": s.count, "payload_bytes": s.payload_bytes, "min_time": s.min_time,
            "max_time": s.max_time, "prev_hash": s.prev_hash, "last_hash": s.last_hash,
            "data": s.data}


def upgrade() -> None:
    op.create_table(
        "event_segments",
        sa.Column("doc_id", sa.String(200), sa.ForeignKey("documents.id"), primary_key=True),
        sa.Column("first_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("payload_bytes", sa.BigInteger, nullable=False),
        sa.Column("min_time", sa.Float, nullable=False),
        sa.Column("max_time", sa.Float, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary, nullable=False),
        sa.Column("last_hash", sa.LargeBinary, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )
    op.drop_index("ix_events_doc_time", "events")
    bind = op.get_bind()
    heads = bind.execute(sa.text("SELECT id, head_seq FROM documents ORDER BY id")).all()
    for doc_id, head in heads:
        _pack_document(bind, str(doc_id), int(head))


def downgrade() -> None:
    bind = op.get_bind()
    s = _segments.c
    for row in bind.execute(sa.select(_segments).order_by(s.doc_id, s.first_seq)).all():
        seg = PackedSegment(int(row.first_seq), int(row.last_seq), int(row.event_count),
                            int(row.payload_bytes), row.min_time, row.max_time,
                            bytes(row.prev_hash), bytes(row.last_hash), bytes(row.data))
        bind.execute(_events.insert(), [
            {"doc_id": r.doc_id, "seq": r.seq, "kind": r.kind, "payload": r.payload,
             "actor": r.actor, "time": r.time, "meta": r.meta, "hash": r.hash}
            for r in unpack(str(row.doc_id), seg)
        ])
    op.drop_table("event_segments")
    op.create_index("ix_events_doc_time", "events", ["doc_id", "time"])
