"""History people read: revisions are working sessions with each author's share, and a
restore's revision says what it restored.

Adds `revisions.shares` and `revisions.restored_from`. The grouping rules changed with them
(several authors per revision, breaks at named versions), so the existing read side is
emptied: the projector rebuilds every document's read models from the log, as
`palimpsest rebuild` would (they are a pure function of it). The log and the snapshots are
kept, and so are deleted documents' rows; reads of a document wait (bounded) until the
projector has reached them again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The read-model tables a rebuild recreates (storage.schema.READ_MODEL_TABLES), but for
# document_lifecycle: it does not depend on the grouping, and emptying it would show deleted
# documents until the projector caught up (a replay rewrites it only at a delete/undelete).
READ_SIDE = ("projector_checkpoints", "text_changes", "revisions", "versions",
             "document_views")


def _empty_read_side() -> None:
    for table in READ_SIDE:
        op.execute(sa.text(f"DELETE FROM {table}"))


def upgrade() -> None:
    with op.batch_alter_table("revisions") as batch:
        batch.add_column(sa.Column("shares", sa.JSON, nullable=True))
        batch.add_column(sa.Column("restored_from", sa.BigInteger, nullable=True))
    _empty_read_side()


def downgrade() -> None:
    with op.batch_alter_table("revisions") as batch:
        batch.drop_column("restored_from")
        batch.drop_column("shares")
    _empty_read_side()
