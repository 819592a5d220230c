"""Governance: the hash chain over every log, deleted documents, governance events' index.

Adds `events.hash` and `documents.head_hash` and computes the chain of every existing event
(storage.chain), so an existing store verifies right after the upgrade; the read model
`document_lifecycle` (deleted documents); and a partial index on the events that say what a
document is (deleted, undeleted, its retention policy).

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.chain import GENESIS, event_hash

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

GOVERNANCE = "kind IN ('delete', 'undelete', 'retention')"
BATCH = 2000

_documents = sa.table("documents", sa.column("id", sa.String), sa.column("head_hash",
                                                                          sa.LargeBinary))
_events = sa.table(
    "events", sa.column("doc_id", sa.String), sa.column("seq", sa.BigInteger),
    sa.column("kind", sa.String), sa.column("payload", sa.LargeBinary),
    sa.column("actor", sa.Text), sa.column("time", sa.Float), sa.column("meta", sa.JSON),
    sa.column("hash", sa.LargeBinary),
)


def _chain_existing_events(bind: sa.Connection) -> None:
    """Compute every existing event's hash, document by document, in seq order."""
    doc_ids = [row.id for row in bind.execute(sa.select(_documents.c.id))]
    e = _events.c
    for doc_id in doc_ids:
        previous, last = GENESIS, 0
        while True:
            rows = bind.execute(
                sa.select(e.seq, e.kind, e.payload, e.actor, e.time, e.meta)
                .where(e.doc_id == doc_id, e.seq > last).order_by(e.seq).limit(BATCH)
            ).all()
            if not rows:
                break
            updates = []
            for row in rows:
                previous = event_hash(previous, int(row.seq), row.kind, bytes(row.payload),
                                      row.actor, float(row.time), row.meta or {})
                updates.append({"d": doc_id, "s": int(row.seq), "h": previous})
            bind.execute(
                sa.update(_events).where(e.doc_id == sa.bindparam("d"), e.seq == sa.bindparam("s"))
                .values(hash=sa.bindparam("h")),
                updates,
            )
            last = int(rows[-1].seq)
        if last:
            bind.execute(sa.update(_documents).where(_documents.c.id == doc_id)
                         .values(head_hash=previous))


def upgrade() -> None:
    op.add_column("documents", sa.Column("head_hash", sa.LargeBinary, nullable=True))
    op.add_column("events", sa.Column("hash", sa.LargeBinary, nullable=True))
    _chain_existing_events(op.get_bind())
    with op.batch_alter_table("events") as batch:
        batch.alter_column("hash", existing_type=sa.LargeBinary, nullable=False)
    op.create_index("ix_events_governance", "events", ["doc_id", "seq"],
                    sqlite_where=sa.text(GOVERNANCE), postgresql_where=sa.text(GOVERNANCE))
    op.create_table(
        "document_lifecycle",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("deleted_at", sa.Float, nullable=False),
        sa.Column("deleted_by", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("document_lifecycle")
    op.drop_index("ix_events_governance", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("hash")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("head_hash")
