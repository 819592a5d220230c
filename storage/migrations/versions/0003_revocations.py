"""Revocations: which user lost which document, and when (tokens minted before are refused).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revocations",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("revoked_at", sa.Float, nullable=False),
    )
    op.create_index("ix_revocations_revoked_at", "revocations", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_revocations_revoked_at", "revocations")
    op.drop_table("revocations")
