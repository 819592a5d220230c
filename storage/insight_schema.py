"""Tables of the three read models that follow the log beside the projector's: the review
status, live activity and search (server.read.insights). Each is a pure function of the log,
kept with its own checkpoint, rebuilt by `palimpsest rebuild`.

The search text lives in a table per backend: PostgreSQL keeps a `tsvector` column with a GIN
index on `search_texts`; SQLite an FTS5 virtual table `search_fts` beside the plain rows (its
DDL is in the migration, not here: SQLAlchemy cannot describe a virtual table).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, LargeBinary, String, Table, Text

from storage.schema import events, metadata

# Where the insight follower has got to in each document's log (its own, not the projector's).
insight_checkpoints = Table(
    "insight_checkpoints",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False, server_default="0"),
    # The seq of the last history rewrite (erasure, compaction) this follower started over
    # for: folding the log again from 0, it meets that audit event and must not start over.
    Column("rewritten_at", BigInteger, nullable=False, server_default="0"),
)

# A document's review status now (no row: draft) and what it published last.
review_status = Table(
    "review_status",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("seq", BigInteger, nullable=False),  # of the transition into it
    Column("changed_at", Float, nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("published_seq", BigInteger, nullable=True),
    Column("published_at", Float, nullable=True),
)
Index("ix_review_status_status", review_status.c.status)

status_history = Table(
    "status_history",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("from_status", String(16), nullable=False),
    Column("to_status", String(16), nullable=False),
    Column("actor", Text, nullable=False),
    Column("time", Float, nullable=False),
    Column("note", Text, nullable=False),
)

# Edits per document, author and minute (hours and days are sums of minutes).
activity_minutes = Table(
    "activity_minutes",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("start", BigInteger, primary_key=True, autoincrement=False),  # epoch seconds
    Column("author", Text, primary_key=True),
    Column("events", Integer, nullable=False),
    Column("inserted", Integer, nullable=False),
    Column("deleted", Integer, nullable=False),
    Column("words_added", Integer, nullable=False),
    Column("words_removed", Integer, nullable=False),
    Column("active_seconds", Float, nullable=False),
)
Index("ix_activity_minutes_start", activity_minutes.c.start)

# Each author's last edit per document: where active time resumes after a restart.
activity_authors = Table(
    "activity_authors",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("author", Text, primary_key=True),
    Column("last_time", Float, nullable=False),
)

# The current text of each document, for full-text search (PostgreSQL adds `tsv`).
search_texts = Table(
    "search_texts",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

# The text at a few seqs of each document (zlib), every MARK_EVERY events: where history
# search starts before narrowing down with the read side's text at any seq.
history_marks = Table(
    "history_marks",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("text", LargeBinary, nullable=False),
)

# The words each stretch of MARK_EVERY events touched (zlib, distinct, sorted, newline-joined,
# ASCII-lower-cased): history search replays a stretch whose ends agree only when one of them
# could belong to the phrase. `stretch` is (seq - 1) // MARK_EVERY of the events it holds.
history_words = Table(
    "history_words",
    metadata,
    Column("doc_id", String(200), primary_key=True),
    Column("stretch", BigInteger, primary_key=True, autoincrement=False),
    Column("words", LargeBinary, nullable=False),
)

INSIGHT_TABLES = (insight_checkpoints, review_status, status_history, activity_minutes,
                  activity_authors, search_texts, history_marks, history_words)

# The write side reads a document's latest status event through this partial index.
STATUS_KIND = "status"
Index("ix_events_status", events.c.doc_id, events.c.seq,
      sqlite_where=events.c.kind == STATUS_KIND, postgresql_where=events.c.kind == STATUS_KIND)
