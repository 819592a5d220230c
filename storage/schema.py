"""Table definitions (SQLAlchemy Core). Migrations create them; code reads them from here."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
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
    # The hash of the last event (storage.chain); NULL until the first. Set under the row lock.
    Column("head_hash", LargeBinary, nullable=True),
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
    # SHA-256 chained over the previous event's hash and this one's content (storage.chain).
    Column("hash", LargeBinary, nullable=False),
    # SQLite: clustered on (doc_id, seq), not on a rowid with that key in an index beside it.
    sqlite_with_rowid=False,
)
# No index on time: a time-to-seq lookup reads the few rows of the hot tail and one segment
# (each carries its events' time range) instead (storage.packed_log).

# Sealed stretches of the log, packed (storage.segments): the `update` events of one run of
# consecutive events within one aligned range of SEGMENT seqs, moved here losslessly from
# `events` once the head is LAG seqs past the range (storage.packed_log). The log is the
# union of both tables; every event is in exactly one of them.
event_segments = Table(
    "event_segments",
    metadata,
    Column("doc_id", String(200), ForeignKey("documents.id"), primary_key=True),
    Column("first_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("payload_bytes", BigInteger, nullable=False),
    Column("min_time", Float, nullable=False),
    Column("max_time", Float, nullable=False),
    # The chain's hash before first_seq, and the hash of the event at last_seq.
    Column("prev_hash", LargeBinary, nullable=False),
    Column("last_hash", LargeBinary, nullable=False),
    Column("data", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)
# The few events that say what a document is (deleted or not, its retention policy): the write
# side reads the latest of them without scanning the log.
GOVERNANCE_KINDS = ("delete", "undelete", "retention")
Index("ix_events_governance", events.c.doc_id, events.c.seq,
      sqlite_where=events.c.kind.in_(GOVERNANCE_KINDS),
      postgresql_where=events.c.kind.in_(GOVERNANCE_KINDS))

# Snapshots serve both sides: rooms load from the latest one with a Yjs state, the read side
# reads any seq's text from the nearest one at or below it. A pure function of the log, so
# rebuild may drop it. Both columns are compressed (storage.packing); most rows (the read
# side's, every `snapshot_every` seqs) keep only the text, `state` is NULL.
snapshots = Table(
    "snapshots",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("state", LargeBinary, nullable=True),
    Column("text", LargeBinary, nullable=False),
    Column("time", Float, nullable=False),
)

# The read side: projections of the log, each a pure function of it (invariant 5).
# `palimpsest rebuild` drops and recreates these and replays the log.

# Where the projector has got to in each document's log. Saved in the same transaction as the
# rows a batch writes, so a crash never leaves rows without their position (or the reverse).
# `owner`/`lease_until` give one projector process at a time a document (see projector.py).
projector_checkpoints = Table(
    "projector_checkpoints",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False, server_default="0"),
    Column("owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=False, server_default="0"),
)

# What each event did to the text: ops [pos, deleted, inserted] in UTF-8 byte offsets
# (pycrdt's unit), applied in order. Text at any seq = nearest snapshot's text + these.
# Packed a chunk of 1,000 seqs to a row, compressed (storage.packing). A chunk still filling
# has a row per projector batch (`first_seq`: the batch's first change in it); the batch that
# completes it writes it as one row.
text_change_chunks = Table(
    "text_change_chunks",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("chunk", BigInteger, primary_key=True, autoincrement=False),
    Column("first_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

revisions = Table(
    "revisions",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("from_seq", BigInteger, nullable=False),
    Column("to_seq", BigInteger, nullable=False),
    Column("authors", JSON, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=False),
    Column("inserted", Integer, nullable=False),
    Column("deleted", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    # [[author, events, inserted, deleted], ...] in the order the authors took part.
    Column("shares", JSON, nullable=True),
    Column("restored_from", BigInteger, nullable=True),  # a restore's target seq
)
Index("ix_revisions_doc_to_seq", revisions.c.doc_id, revisions.c.to_seq)

versions = Table(
    "versions",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    # The seq of the event that named it; `seq` is the seq it names.
    Column("event_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("name", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

document_views = Table(
    "document_views",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("title", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("text", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("contributors", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_document_views_updated", document_views.c.updated_at, document_views.c.doc_id)

# Deleted documents (a row while the last delete is not undone): the queries hide them from
# everyone but admins, and list them for admins.
document_lifecycle = Table(
    "document_lifecycle",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("deleted_at", Float, nullable=False),
    Column("deleted_by", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),  # of the DocumentDeleted event
)


READ_MODEL_TABLES = (projector_checkpoints, text_change_chunks, revisions, versions,
                     document_views, document_lifecycle)

# Access: revoked (document, user) pairs, kept with the latest time each was revoked. Not a
# projection of the log (revoking appends no event), so rebuild leaves it alone.
revocations = Table(
    "revocations",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("revoked_at", Float, nullable=False),
)
Index("ix_revocations_revoked_at", revocations.c.revoked_at)
