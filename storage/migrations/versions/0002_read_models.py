"""The read side: projector checkpoints, text changes, revisions, versions, document views.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projector_checkpoints",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
    )
    op.create_table(
        "text_changes",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("ops", sa.JSON, nullable=False),
        sa.Column("inserted", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False),
    )
    op.create_table(
        "revisions",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("from_seq", sa.BigInteger, nullable=False),
        sa.Column("to_seq", sa.BigInteger, nullable=False),
        sa.Column("authors", sa.JSON, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=False),
        sa.Column("inserted", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
    )
    op.create_index("ix_revisions_doc_to_seq", "revisions", ["doc_id", "to_seq"])
    op.create_table(
        "versions",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("event_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "document_views",
        sa.Column("doc_id", sa.String(200), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("contributors", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_document_views_updated", "document_views", ["updated_at", "doc_id"])


def downgrade() -> None:
    op.drop_index("ix_document_views_updated", "document_views")
    op.drop_table("document_views")
    op.drop_table("versions")
    op.drop_index("ix_revisions_doc_to_seq", "revisions")
    op.drop_table("revisions")
    op.drop_table("text_changes")
    op.drop_table("projector_checkpoints")
