"""The event store: per-document append-only logs with gap-free seq.

Every append runs in one transaction that raises `documents.head_seq` first. That UPDATE takes
the document row's lock (Postgres) or the database write lock (SQLite, `BEGIN IMMEDIATE`) and
holds it to commit, so appenders to one document queue behind each other: seqs are handed out
in commit order and a failed transaction gives its seqs back. The same UPDATE returns the
previous event's hash, so each event's hash (storage.chain) is chained in that order too. A
reader that polls `seq > last_seen` can therefore never skip an event: no later seq of that
document becomes visible before an earlier one.

Times come from one clock, the database's (`database_now`), read once the document's lock is
held, before the events are hashed: nodes whose clocks disagree still stamp one document's
events in seq order, and `at_time` reads answer the right seq. (A store built with
`database_clock=False` keeps the times its callers give: tests and imports of past history.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
from sqlalchemy import Float, func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import chain, packed_log
from storage.database import Database
from storage.errors import DocumentNotFound, StorageUnavailable
from storage.packing import pack_state, pack_text, unpack_state, unpack_text
from storage.records import DocumentRecord, EventRecord, NewEvent, SnapshotRecord
from storage.schema import documents, events, snapshots

READ_BATCH = 2000

# The database's clock, in epoch seconds. Postgres: clock_timestamp() is read when evaluated
# (now() is the transaction's start, before the lock wait). SQLite 3.40 has no
# unixepoch('subsec') (3.42), so julianday('now'), which has millisecond resolution.
PG_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def database_now(dialect: str) -> Any:
    """A SQL expression for the database's current time (epoch seconds, float)."""
    return literal_column(PG_NOW if dialect == "postgresql" else SQLITE_NOW, Float)


# Raising head_seq takes the document row's lock; the previous hash and the database's clock
# are read under it, so a later seq never gets an earlier reading than the seq before it
# (barring the database's clock jumping).
_PG_LOCK_HEAD = f"""
UPDATE documents SET head_seq = head_seq + $2 WHERE id = $1
RETURNING head_seq, head_hash, {PG_NOW} AS now
"""
_PG_APPEND = """
WITH appended AS (
    INSERT INTO events (doc_id, seq, kind, payload, actor, time, meta, hash)
    SELECT $1, e.seq, e.kind, e.payload, e.actor, e.time, e.meta::json, e.hash
    FROM unnest($2::int8[], $3::text[], $4::bytea[], $5::text[], $6::float8[], $7::text[],
                $8::bytea[]) AS e(seq, kind, payload, actor, time, meta, hash)
)
UPDATE documents SET head_hash = $9 WHERE id = $1
"""


def snapshot_upsert(dialect: str, snap: SnapshotRecord) -> Any:
    """The statement that saves a snapshot with its state, compressed (storage.packing). Where
    the read side saved the text alone at that seq, the state is added to that row."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(snapshots)
    return insert.values(
        doc_id=snap.doc_id, seq=snap.seq, state=pack_state(snap.state),
        text=pack_text(snap.text), time=snap.time,
    ).on_conflict_do_update(index_elements=["doc_id", "seq"],
                            set_={"state": insert.excluded.state})


event_record = packed_log.event_record  # for the other storage modules that read event rows
log = logging.getLogger(__name__)


class EventStore:
    """Appends to and reads the log. Owns no engine: the Database is handed in."""

    def __init__(self, db: Database, *, database_clock: bool = False) -> None:
        self.db = db
        # True for the server: every event and document is stamped with the database's time.
        self.database_clock = database_clock

    def _insert(self) -> Any:
        return (postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert)(documents)

    async def ensure_document(self, doc_id: str, title: str = "") -> bool:
        """Create the document if it does not exist; True when this call created it."""
        stmt = (
            self._insert()
            .values(id=doc_id, title=title, head_seq=0,
                    created_at=database_now(self.db.dialect) if self.database_clock
                    else time.time())
            .on_conflict_do_nothing(index_elements=["id"])
        )
        async with self.db.write() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def append(self, doc_id: str, new: Sequence[NewEvent]) -> list[EventRecord]:
        """Append `new` to the document's log in one transaction; returns them with seqs."""
        if not new:
            return []
        async with self.db.write() as conn:
            records = await self.append_in(conn, doc_id, new)
        if packed_log.due(records[0].seq, records[-1].seq):
            await self.pack_quietly(doc_id)
        return records

    async def pack(self, doc_id: str) -> int:
        """Pack the document's sealed ranges (storage.packed_log); the events moved."""
        async with self.db.write() as conn:
            head = await packed_log.lock_document(conn, doc_id)
            return 0 if head is None else await packed_log.pack_due(conn, doc_id, head)

    async def pack_quietly(self, doc_id: str) -> None:
        """`pack` after an append that sealed a range: the append is committed whatever
        happens here, and a failed pack is retried by the next one that seals a range."""
        try:
            await self.pack(doc_id)
        except Exception:
            log.exception("packing the log of %r failed (it stays in rows for now)", doc_id)

    async def append_in(
        self, conn: AsyncConnection, doc_id: str, new: Sequence[NewEvent]
    ) -> list[EventRecord]:
        """Append inside a transaction the caller holds (from `db.write()`)."""
        if self.db.dialect == "postgresql":
            return await self._append_postgres(conn, doc_id, new)
        # Raising head_seq first is what serialises appenders (see the module docstring).
        row = (
            await conn.execute(
                update(documents)
                .where(documents.c.id == doc_id)
                .values(head_seq=documents.c.head_seq + len(new))
                .returning(documents.c.head_seq, documents.c.head_hash)
            )
        ).first()
        if row is None:
            raise DocumentNotFound(doc_id)
        first = row.head_seq - len(new) + 1
        stamp: float | None = None
        if self.database_clock:
            # Under the write lock (BEGIN IMMEDIATE): never earlier than the previous event,
            # whatever the clock did meanwhile.
            previous = select(events.c.time).where(events.c.doc_id == doc_id,
                                                   events.c.seq == first - 1).scalar_subquery()
            stamp = float((await conn.execute(
                select(func.max(database_now("sqlite"), func.coalesce(previous, 0.0)))
            )).scalar_one())
        records = [
            EventRecord(doc_id, first + i, e.kind, e.payload, e.actor,
                        e.time if stamp is None else stamp, e.meta)
            for i, e in enumerate(new)
        ]
        # The hash chain, on the previous hash read under the same lock (storage.chain).
        records = chain.link(row.head_hash, records)
        await conn.execute(
            events.insert(),
            [
                {
                    "doc_id": doc_id,
                    "seq": r.seq,
                    "kind": r.kind,
                    "payload": r.payload,
                    "actor": r.actor,
                    "time": r.time,
                    "meta": r.meta,
                    "hash": r.hash,
                }
                for r in records
            ],
        )
        await conn.execute(
            update(documents).where(documents.c.id == doc_id).values(head_hash=records[-1].hash)
        )
        return records

    async def _append_postgres(
        self, conn: AsyncConnection, doc_id: str, new: Sequence[NewEvent]
    ) -> list[EventRecord]:
        # Two statements in one transaction, whatever the batch size: raising head_seq takes
        # the row lock and returns the previous hash; the insert and the new head hash follow.
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            async with driver.transaction():
                head = await driver.fetchrow(_PG_LOCK_HEAD, doc_id, len(new))
                if head is None:
                    raise DocumentNotFound(doc_id)
                first = head["head_seq"] - len(new) + 1
                stamp = float(head["now"]) if self.database_clock else None
                records = [
                    EventRecord(doc_id, first + i, e.kind, e.payload, e.actor,
                                e.time if stamp is None else stamp, e.meta)
                    for i, e in enumerate(new)
                ]
                # The hash chain, on the previous hash read under the same lock.
                records = chain.link(head["head_hash"], records)
                await driver.execute(
                    _PG_APPEND,
                    doc_id,
                    [r.seq for r in records],
                    [r.kind for r in records],
                    [r.payload for r in records],
                    [r.actor for r in records],
                    [r.time for r in records],
                    [json.dumps(r.meta) if r.meta else "{}" for r in records],
                    [r.hash for r in records],
                    records[-1].hash,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Raw driver errors bypass SQLAlchemy: drop the connection from the pool ourselves
            # (db.write() then translates the error).
            await conn.invalidate(exc)
            raise
        except asyncpg.InternalClientError as exc:
            # The connection's protocol state is broken ("another operation is in progress",
            # seen after Postgres restarts): never hand it out again, and say "unavailable",
            # which callers retry, rather than an unknown error.
            await conn.invalidate(exc)
            raise StorageUnavailable(str(exc) or type(exc).__name__) from exc
        except asyncio.CancelledError:
            # Cancelled mid-statement, the connection is left mid-protocol: drop it.
            await conn.invalidate()
            raise
        return records

    async def read(
        self, doc_id: str, after_seq: int = 0, until_seq: int | None = None, *,
        hashes: bool = True,
    ) -> AsyncIterator[EventRecord]:
        """Stream events with after_seq < seq <= until_seq, in seq order, in batches, from
        rows and packed segments alike (each batch read in one snapshot). Without `hashes`,
        packed events come with an empty hash (not recomputed: readers that need no hash)."""
        last: int | None = after_seq
        while last is not None:
            async with self.db.snapshot() as conn:
                batch, last = await packed_log.read_events(conn, doc_id, last, until_seq,
                                                           READ_BATCH, hashes=hashes)
            for record in batch:
                yield record

    async def read_list(
        self, doc_id: str, after_seq: int = 0, until_seq: int | None = None, *,
        hashes: bool = True,
    ) -> list[EventRecord]:
        return [e async for e in self.read(doc_id, after_seq, until_seq, hashes=hashes)]

    async def document(self, doc_id: str) -> DocumentRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(documents).where(documents.c.id == doc_id))).first()
        if row is None:
            return None
        return DocumentRecord(row.id, row.title, row.head_seq, row.created_at)

    async def head_seq(self, doc_id: str) -> int:
        doc = await self.document(doc_id)
        if doc is None:
            raise DocumentNotFound(doc_id)
        return doc.head_seq

    async def head_seqs(self, doc_ids: Sequence[str]) -> dict[str, int]:
        """The head_seq of each of `doc_ids` that exists, in one query per 500 ids."""
        heads: dict[str, int] = {}
        for start in range(0, len(doc_ids), 500):
            query = select(documents.c.id, documents.c.head_seq).where(
                documents.c.id.in_(doc_ids[start : start + 500])
            )
            async with self.db.read() as conn:
                rows = (await conn.execute(query)).all()
            heads.update((r.id, r.head_seq) for r in rows)
        return heads

    async def document_ids(self) -> list[str]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(documents.c.id).order_by(documents.c.id))).all()
        return [r.id for r in rows]

    async def documents_behind(self, checkpoints: dict[str, int]) -> list[tuple[str, int]]:
        """(doc_id, head_seq) of every document whose head is past its given checkpoint."""
        async with self.db.read() as conn:
            rows = (await conn.execute(select(documents.c.id, documents.c.head_seq))).all()
        return [(r.id, r.head_seq) for r in rows if r.head_seq > checkpoints.get(r.id, 0)]

    # Snapshots live beside the log: any node loads a room from the latest one.

    async def save_snapshot(self, snap: SnapshotRecord) -> None:
        async with self.db.write() as conn:
            await conn.execute(snapshot_upsert(self.db.dialect, snap))

    async def snapshot_at_or_before(
        self, doc_id: str, seq: int | None = None
    ) -> SnapshotRecord | None:
        """The latest snapshot with a Yjs state and snapshot.seq <= seq (any seq when None).
        (The read side's text-only snapshots are left out: they cannot load a document.)"""
        query = select(snapshots).where(snapshots.c.doc_id == doc_id,
                                        snapshots.c.state.is_not(None))
        if seq is not None:
            query = query.where(snapshots.c.seq <= seq)
        query = query.order_by(snapshots.c.seq.desc()).limit(1)
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return SnapshotRecord(row.doc_id, row.seq, unpack_state(bytes(row.state)),
                              unpack_text(bytes(row.text)), row.time)

    async def count_events(self, doc_id: str) -> int:
        async with self.db.snapshot() as conn:
            return await packed_log.count(conn, doc_id)
