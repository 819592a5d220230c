"""Table definitions (SQLAlchemy Core). Migrations create them; code reads them from here."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# The write side: the log is the truth.
documents = Table(
    "documents",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("title", Text, nullable=False, server_default=""),
    # Highest seq appended; raised under the row lock by every append.
    Column("head_seq", BigInteger, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("doc_id", String(200), ForeignKey("documents.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("actor", Text, nullable=False),
    Column("time", Float, nullable=False),
    Column("meta", JSON, nullable=False),
)
Index("ix_events_doc_time", events.c.doc_id, events.c.time)

# Snapshots serve both sides: rooms load from the latest one, the read side reads any seq
# from the nearest one at or below it. A pure function of the log, so rebuild may drop it.
snapshots = Table(
    "snapshots",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("state", LargeBinary, nullable=False),
    Column("text", Text, nullable=False),
    Column("time", Float, nullable=False),
)
