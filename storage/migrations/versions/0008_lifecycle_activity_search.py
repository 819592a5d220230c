"""Review status, live activity and search: the insight read models and their checkpoints.

New tables only (storage.insight_schema), plus a partial index on the log's `status` events so
the write side reads a document's status without scanning its log. The tables fill from the
log on the insight follower's first pass (or `palimpsest rebuild`): an existing store needs no
conversion. Search: a `tsvector` column with a GIN index on PostgreSQL, an FTS5 table on SQLite.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

STATUS = "kind = 'status'"


def upgrade() -> None:
    op.create_index("ix_events_status", "events", ["doc_id", "seq"],
                    sqlite_where=sa.text(STATUS), postgresql_where=sa.text(STATUS))
    op.create_table(
        "insight_checkpoints",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rewritten_at", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "review_status",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.Column("changed_by", sa.Text, nullable=False),
        sa.Column("published_seq", sa.BigInteger, nullable=True),
        sa.Column("published_at", sa.Float, nullable=True),
    )
    op.create_index("ix_review_status_status", "review_status", ["status"])
    op.create_table(
        "status_history",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_table(
        "activity_minutes",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("author", sa.Text, primary_key=True),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("inserted", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False),
        sa.Column("words_added", sa.Integer, nullable=False),
        sa.Column("words_removed", sa.Integer, nullable=False),
        sa.Column("active_seconds", sa.Float, nullable=False),
    )
    op.create_index("ix_activity_minutes_start", "activity_minutes", ["start"])
    op.create_table(
        "activity_authors",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("author", sa.Text, primary_key=True),
        sa.Column("last_time", sa.Float, nullable=False),
    )
    op.create_table(
        "search_texts",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE search_texts ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
                   "(setweight(to_tsvector('english', title), 'A') || "
                   "setweight(to_tsvector('english', body), 'B')) STORED")
        op.execute("CREATE INDEX ix_search_texts_tsv ON search_texts USING GIN (tsv)")
    else:
        op.execute("CREATE VIRTUAL TABLE search_fts USING fts5(doc_id UNINDEXED, title, body, "
                   "tokenize='porter unicode61')")
    op.create_table(
        "history_marks",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("text", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE search_fts")
    for table in ("history_marks", "search_texts", "activity_authors", "activity_minutes",
                  "status_history", "review_status", "insight_checkpoints"):
        op.drop_table(table)
    op.drop_index("ix_events_status", "events")
