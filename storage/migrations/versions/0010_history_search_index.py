"""History search made exact: the words each stretch of MARK_EVERY events touched.

A new table, `history_words` (storage.insight_schema). Its rows come from the insight
follower's fold, so an existing store is converted by folding again: every insight row is
dropped and every document's insight checkpoint goes back to 0 (keeping `rewritten_at`, the
rewrite each follower already started over for). The follower folds each document again from
its log on its next pass, as `palimpsest rebuild` would; until then its review status,
activity and search answers are empty or behind (they wait on the checkpoint like any lag).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FOLDED = ("review_status", "status_history", "activity_minutes", "activity_authors",
          "search_texts", "history_marks")


def upgrade() -> None:
    op.create_table(
        "history_words",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("stretch", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("words", sa.LargeBinary, nullable=False),
    )
    for table in FOLDED:
        op.execute(f"DELETE FROM {table}")
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DELETE FROM search_fts")
        op.execute("INSERT INTO search_fts(search_fts) VALUES ('optimize')")
    op.execute("UPDATE insight_checkpoints SET seq = 0")


def downgrade() -> None:
    op.drop_table("history_words")
