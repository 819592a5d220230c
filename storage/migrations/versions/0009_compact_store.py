"""A compact store: text changes packed a chunk of seqs to a row, compressed snapshots, most
of them with their text only (storage.packing).

`text_changes` (a row per event) becomes `text_change_chunks` (a compressed row per 1,000
seqs). `snapshots` keeps every row, compressed, and the Yjs state only where loading needs
one: every STATE_EVERY seqs, the latest of each document, and any a room saved off the
projector's grid (an unload). Every seq still reads exactly the same text.

Revision ID: 0009
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.packing import CHUNK, PackedChange, chunk_of, pack_changes, pack_state, pack_text

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BATCH = 5000
STATE_EVERY = 10_000  # the projector's default: ten snapshots of 1,000 seqs
GRID = 1000  # the projector's default snapshot spacing
GOVERNANCE = "kind IN ('delete', 'undelete', 'retention')"

_old_changes = sa.table(
    "text_changes", sa.column("doc_id", sa.String), sa.column("seq", sa.BigInteger),
    sa.column("actor", sa.Text), sa.column("ops", sa.JSON),
)
_chunks = sa.table(
    "text_change_chunks", sa.column("doc_id", sa.String), sa.column("chunk", sa.BigInteger),
    sa.column("first_seq", sa.BigInteger), sa.column("data", sa.LargeBinary),
)
_old_snapshots = sa.table(
    "snapshots", sa.column("doc_id", sa.String), sa.column("seq", sa.BigInteger),
    sa.column("state", sa.LargeBinary), sa.column("text", sa.Text), sa.column("time", sa.Float),
)
_new_snapshots = sa.table(
    "snapshots_packed", sa.column("doc_id", sa.String), sa.column("seq", sa.BigInteger),
    sa.column("state", sa.LargeBinary), sa.column("text", sa.LargeBinary),
    sa.column("time", sa.Float),
)


def _pack_changes(bind: sa.Connection) -> None:
    c = _old_changes.c
    doc_ids = [r.doc_id for r in bind.execute(sa.select(c.doc_id).distinct())]
    for doc_id in doc_ids:
        last, chunk = 0, -1
        held: list[PackedChange] = []
        while True:
            rows = bind.execute(
                sa.select(c.seq, c.actor, c.ops).where(c.doc_id == doc_id, c.seq > last)
                .order_by(c.seq).limit(BATCH)
            ).all()
            out = []
            for row in rows:
                seq = int(row.seq)
                if chunk_of(seq) != chunk:
                    if held:
                        out.append({"doc_id": doc_id, "chunk": chunk, "first_seq": held[0].seq,
                                    "data": pack_changes(chunk, held)})
                    chunk, held = chunk_of(seq), []
                held.append(PackedChange(seq, row.actor, [list(op) for op in row.ops]))
            if len(rows) < BATCH and held:
                out.append({"doc_id": doc_id, "chunk": chunk, "first_seq": held[0].seq,
                            "data": pack_changes(chunk, held)})
            if out:
                bind.execute(sa.insert(_chunks), out)
            if len(rows) < BATCH:
                break
            last = int(rows[-1].seq)


def _pack_snapshots(bind: sa.Connection) -> None:
    s = _old_snapshots.c
    latest = dict(bind.execute(sa.select(s.doc_id, sa.func.max(s.seq)).group_by(s.doc_id)).all())
    last: tuple[str, int] = ("", -1)
    while True:
        rows = bind.execute(
            sa.select(_old_snapshots)
            .where(sa.tuple_(s.doc_id, s.seq) > sa.tuple_(sa.literal(last[0]),
                                                        sa.literal(last[1])))
            .order_by(s.doc_id, s.seq).limit(200)
        ).all()
        if not rows:
            return
        out = []
        for row in rows:
            seq = int(row.seq)
            keep_state = (seq % STATE_EVERY == 0 or seq % GRID != 0
                          or seq == int(latest[row.doc_id]))
            out.append({"doc_id": row.doc_id, "seq": seq, "time": row.time,
                        "text": pack_text(row.text),
                        "state": pack_state(bytes(row.state)) if keep_state else None})
        bind.execute(sa.insert(_new_snapshots), out)
        last = (rows[-1].doc_id, int(rows[-1].seq))


def upgrade() -> None:
    assert CHUNK == 1000  # the format this migration writes
    op.create_table(
        "text_change_chunks",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("chunk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    _pack_changes(op.get_bind())
    op.drop_table("text_changes")
    op.create_table(
        "snapshots_packed",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("state", sa.LargeBinary, nullable=True),
        sa.Column("text", sa.LargeBinary, nullable=False),
        sa.Column("time", sa.Float, nullable=False),
    )
    _pack_snapshots(op.get_bind())
    op.drop_table("snapshots")
    op.rename_table("snapshots_packed", "snapshots")
    if op.get_bind().dialect.name == "sqlite":
        _events_without_rowid()


def _events_without_rowid() -> None:
    """SQLite: the log clustered on its primary key (WITHOUT ROWID), so (doc_id, seq) is not
    stored twice, in the table and again in an index of its own."""
    op.drop_index("ix_events_governance", "events")
    op.drop_index("ix_events_doc_time", "events")
    op.drop_index("ix_events_status", "events")  # 0008's
    with op.batch_alter_table("events", recreate="always",
                              table_kwargs={"sqlite_with_rowid": False}):
        pass
    op.create_index("ix_events_doc_time", "events", ["doc_id", "time"])
    op.create_index("ix_events_governance", "events", ["doc_id", "seq"],
                    sqlite_where=sa.text(GOVERNANCE))
    op.create_index("ix_events_status", "events", ["doc_id", "seq"],
                    sqlite_where=sa.text("kind = 'status'"))


def downgrade() -> None:
    raise NotImplementedError("0009 packs the read side: rebuild it with the older code "
                              "(`palimpsest rebuild`) after restoring a backup instead")
