"""The read-model tables: what the projector writes and the query API reads.

Every row here is a pure function of the log (invariant 5); `reset` drops them all for
`palimpsest rebuild`. A projector writes a document's rows only while it holds that
document's lease, and saves its checkpoint in the same transaction as the rows.

Leases are timed by the database's clock (`now=None`, what the projector passes), read inside
the claim, renew and save statements: a node whose own clock is off neither keeps a lease
past its time nor steals one early.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import packed_log
from storage.database import Database
from storage.event_store import database_now
from storage.lifecycle import Deletion, save_deletion
from storage.packing import (
    CHUNK,
    PackedChange,
    chunk_of,
    pack_changes,
    pack_state,
    pack_text,
    unpack_changes,
    unpack_text,
)
from storage.records import EventRecord
from storage.schema import (
    READ_MODEL_TABLES,
    document_views,
    documents,
    event_segments,
    events,
    metadata,
    projector_checkpoints,
    revisions,
    snapshots,
    text_change_chunks,
    versions,
)
from storage.segments import SEGMENT, time_of


@dataclass(frozen=True, slots=True)
class RevisionRow:
    doc_id: str
    number: int
    from_seq: int
    to_seq: int
    authors: list[str]
    started_at: float
    ended_at: float
    inserted: int
    deleted: int
    events: int
    kind: str
    shares: list[list[Any]] | None = None  # [[author, events, inserted, deleted], ...]
    restored_from: int | None = None


@dataclass(frozen=True, slots=True)
class VersionRow:
    doc_id: str
    event_seq: int
    seq: int
    name: str
    actor: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ViewRow:
    doc_id: str
    title: str
    seq: int
    text: str
    size: int
    contributors: list[str]
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ChangeRow:
    seq: int
    actor: str
    ops: list[Any]
    inserted: int
    deleted: int


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """A snapshot the projector saves: the text at `seq` and the Yjs state, which the save
    keeps on the latest one and every `state_every` seqs only (a state is ten times a text)."""

    seq: int
    text: str
    time: float
    state: bytes | None = None


@dataclass(frozen=True, slots=True)
class EventInfo:
    seq: int
    kind: str
    actor: str
    time: float
    size: int
    meta: dict[str, Any]


@dataclass
class ProjectionBatch:
    """Everything one projector batch writes for one document, in one transaction."""

    doc_id: str
    from_seq: int  # the checkpoint the batch started from
    to_seq: int  # the checkpoint it leaves
    changes: list[ChangeRow] = field(default_factory=list)
    # Every change already saved in the chunk of the batch's first change (storage.packing):
    # the batch that completes a chunk rewrites it as one row, with these.
    chunk_before: list[PackedChange] = field(default_factory=list)
    revisions: list[RevisionRow] = field(default_factory=list)  # replaces rows >= the first
    versions: list[VersionRow] = field(default_factory=list)
    # Applied after the new versions, in this order: (event_seq, new name); event_seqs.
    version_names: list[tuple[int, str]] = field(default_factory=list)
    versions_deleted: list[int] = field(default_factory=list)
    view: ViewRow | None = None
    snapshots: list[SnapshotRow] = field(default_factory=list)
    # Yjs states are kept on the latest snapshot and on those at multiples of this (0: all).
    state_every: int = 0
    deletion_changed: bool = False  # the document was deleted (deletion) or undeleted (None)
    deletion: Deletion | None = None


@dataclass(frozen=True, slots=True)
class Position:
    head: int
    created_at: float
    title: str
    checkpoint: int
    snapshot_below: int  # 0 when there is none (the empty text at seq 0)
    snapshot_above: int | None
    event_time: float | None  # of the event at the seq asked about
    view_seq: int | None


class LeaseLost(Exception):
    """Another projector took the document (or moved its checkpoint) meanwhile."""


class ReadModel:
    """SQL of the read side. Owns no engine: the Database is handed in."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert)(table)

    # The projector's side

    async def documents_behind(self) -> list[tuple[str, int, int]]:
        """(doc_id, head_seq, checkpoint) of every document whose log is ahead of its views."""
        checkpoint = func.coalesce(projector_checkpoints.c.seq, 0)
        query = (
            select(documents.c.id, documents.c.head_seq, checkpoint.label("checkpoint"))
            .select_from(
                documents.outerjoin(
                    projector_checkpoints, projector_checkpoints.c.doc_id == documents.c.id
                )
            )
            .where(documents.c.head_seq > checkpoint)
            .order_by(documents.c.id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [(r.id, int(r.head_seq), int(r.checkpoint)) for r in rows]

    def _now(self, now: float | None) -> Any:
        return database_now(self.db.dialect) if now is None else now

    async def claim(self, doc_id: str, owner: str, now: float | None,
                    lease: float) -> int | None:
        """Take or renew the document's lease; its checkpoint, or None if another holds it.
        `now` None: the database's clock (explicit times are for tests)."""
        at = self._now(now)
        create = self._insert(projector_checkpoints).values(
            doc_id=doc_id, seq=0, owner=None, lease_until=0.0
        ).on_conflict_do_nothing(index_elements=["doc_id"])
        take = (
            update(projector_checkpoints)
            .where(
                projector_checkpoints.c.doc_id == doc_id,
                or_(
                    projector_checkpoints.c.owner.is_(None),
                    projector_checkpoints.c.owner == owner,
                    projector_checkpoints.c.lease_until < at,
                ),
            )
            .values(owner=owner, lease_until=at + lease)
            .returning(projector_checkpoints.c.seq)
        )
        async with self.db.write() as conn:
            await conn.execute(create)
            seq = (await conn.execute(take)).scalar_one_or_none()
        return None if seq is None else int(seq)

    async def renew(self, owner: str, doc_ids: Sequence[str], lease: float) -> set[str]:
        """Extend the leases `owner` holds on `doc_ids` by `lease` seconds from the database's
        now; the documents whose lease it still had (one that lapsed and was taken is not)."""
        held: set[str] = set()
        async with self.db.write() as conn:
            for start in range(0, len(doc_ids), 500):
                rows = (await conn.execute(
                    update(projector_checkpoints)
                    .where(projector_checkpoints.c.owner == owner,
                           projector_checkpoints.c.doc_id.in_(doc_ids[start:start + 500]))
                    .values(lease_until=database_now(self.db.dialect) + lease)
                    .returning(projector_checkpoints.c.doc_id)
                )).all()
                held.update(r.doc_id for r in rows)
        return held

    async def release(self, owner: str, doc_ids: Sequence[str] | None = None) -> None:
        """Give up the leases `owner` holds (all of them by default, on a clean stop)."""
        async with self.db.write() as conn:
            ids = [None] if doc_ids is None else list(doc_ids)
            for start in range(0, len(ids), 500):
                query = update(projector_checkpoints).where(
                    projector_checkpoints.c.owner == owner)
                if doc_ids is not None:
                    query = query.where(
                        projector_checkpoints.c.doc_id.in_(ids[start:start + 500]))
                await conn.execute(query.values(owner=None, lease_until=0.0))

    async def save(self, batch: ProjectionBatch, owner: str, now: float | None,
                   lease: float) -> None:
        """Write a batch's rows and move the checkpoint, atomically; LeaseLost if not ours."""
        async with self.db.write() as conn:
            await self._save_in(conn, batch, owner, now, lease)

    async def _save_in(
        self, conn: AsyncConnection, batch: ProjectionBatch, owner: str, now: float | None,
        lease: float
    ) -> None:
        # The checkpoint moves first: on Postgres that row lock makes a second projector's
        # claim or save wait for this commit, and the seq/owner guard makes a stale one fail.
        moved = await conn.execute(
            update(projector_checkpoints)
            .where(
                projector_checkpoints.c.doc_id == batch.doc_id,
                projector_checkpoints.c.seq == batch.from_seq,
                projector_checkpoints.c.owner == owner,
            )
            .values(seq=batch.to_seq, lease_until=self._now(now) + lease)
        )
        if moved.rowcount != 1:
            raise LeaseLost(batch.doc_id)
        doc_id = batch.doc_id
        if batch.changes:
            await self._save_changes(conn, doc_id, batch)
        if batch.revisions:
            first = min(r.number for r in batch.revisions)
            await conn.execute(
                delete(revisions).where(revisions.c.doc_id == doc_id, revisions.c.number >= first)
            )
            await conn.execute(
                revisions.insert(),
                [{"doc_id": doc_id, "number": r.number, "from_seq": r.from_seq,
                  "to_seq": r.to_seq, "authors": r.authors, "started_at": r.started_at,
                  "ended_at": r.ended_at, "inserted": r.inserted, "deleted": r.deleted,
                  "events": r.events, "kind": r.kind, "shares": r.shares,
                  "restored_from": r.restored_from} for r in batch.revisions],
            )
        if batch.versions:
            await conn.execute(
                versions.insert(),
                [{"doc_id": doc_id, "event_seq": v.event_seq, "seq": v.seq, "name": v.name,
                  "actor": v.actor, "created_at": v.created_at} for v in batch.versions],
            )
        for event_seq, name in batch.version_names:
            await conn.execute(
                update(versions)
                .where(versions.c.doc_id == doc_id, versions.c.event_seq == event_seq)
                .values(name=name))
        if batch.versions_deleted:
            await conn.execute(
                delete(versions).where(versions.c.doc_id == doc_id,
                                       versions.c.event_seq.in_(batch.versions_deleted)))
        if batch.view is not None:
            v = batch.view
            await conn.execute(delete(document_views).where(document_views.c.doc_id == doc_id))
            await conn.execute(
                document_views.insert().values(
                    doc_id=doc_id, title=v.title, seq=v.seq, text=v.text, size=v.size,
                    contributors=v.contributors, created_at=v.created_at,
                    updated_at=v.updated_at,
                )
            )
        if batch.snapshots:
            await conn.execute(
                self._insert(snapshots).on_conflict_do_nothing(index_elements=["doc_id", "seq"]),
                [{"doc_id": doc_id, "seq": snap.seq, "text": pack_text(snap.text),
                  "time": snap.time,
                  "state": None if snap.state is None else pack_state(snap.state)}
                 for snap in batch.snapshots],
            )
            if batch.state_every > 0:
                s = snapshots.c
                await conn.execute(
                    update(snapshots)
                    .where(s.doc_id == doc_id, s.seq < batch.snapshots[-1].seq,
                           s.state.is_not(None), s.seq % batch.state_every != 0)
                    .values(state=None)
                )
        if batch.deletion_changed:
            await save_deletion(conn, doc_id, batch.deletion)

    async def _save_changes(self, conn: AsyncConnection, doc_id: str,
                            batch: ProjectionBatch) -> None:
        """Pack the batch's changes: a chunk the batch completes is written as one row (with
        what it held before the batch), one still filling gets a row of the batch's own."""
        chunks: dict[int, list[PackedChange]] = {}
        for change in batch.changes:
            chunks.setdefault(chunk_of(change.seq), []).append(
                PackedChange(change.seq, change.actor, change.ops))
        first = chunk_of(batch.changes[0].seq)
        rows = []
        t = text_change_chunks.c
        for k, packed in chunks.items():
            if (k + 1) * CHUNK <= batch.to_seq:  # complete: its rows become one
                if k == first and batch.chunk_before:
                    packed = [*batch.chunk_before, *packed]
                await conn.execute(delete(text_change_chunks)
                                   .where(t.doc_id == doc_id, t.chunk == k))
            rows.append({"doc_id": doc_id, "chunk": k, "first_seq": packed[0].seq,
                         "data": pack_changes(k, packed)})
        await conn.execute(text_change_chunks.insert(), rows)

    async def reset(self) -> None:
        """Drop and recreate every read-model table, and forget every snapshot."""
        async with self.db.write() as conn:
            await conn.run_sync(
                lambda sync: metadata.drop_all(sync, tables=list(READ_MODEL_TABLES))
            )
            await conn.run_sync(
                lambda sync: metadata.create_all(sync, tables=list(READ_MODEL_TABLES))
            )
            await conn.execute(delete(snapshots))

    # The query side

    async def _all(self, query: Any) -> Sequence[Any]:
        async with self.db.read() as conn:
            return (await conn.execute(query)).all()

    async def checkpoint(self, doc_id: str) -> int:
        rows = await self._all(
            select(projector_checkpoints.c.seq).where(projector_checkpoints.c.doc_id == doc_id)
        )
        return int(rows[0].seq) if rows else 0

    async def total_lag(self) -> int:
        """Events appended but not yet projected, over every document."""
        checkpoint = func.coalesce(projector_checkpoints.c.seq, 0)
        rows = await self._all(
            select(func.coalesce(func.sum(documents.c.head_seq - checkpoint), 0)).select_from(
                documents.outerjoin(
                    projector_checkpoints, projector_checkpoints.c.doc_id == documents.c.id
                )
            )
        )
        return int(rows[0][0])

    async def view(self, doc_id: str) -> ViewRow | None:
        rows = await self._all(select(document_views).where(document_views.c.doc_id == doc_id))
        return _view(rows[0]) if rows else None

    async def views_page(
        self, limit: int, after: tuple[float, str] | None
    ) -> list[ViewRow]:
        """Views newest edit first (ties by id, descending), after the (updated_at, id) key."""
        query = select(document_views)
        if after is not None:
            updated_at, doc_id = after
            query = query.where(
                or_(
                    document_views.c.updated_at < updated_at,
                    and_(document_views.c.updated_at == updated_at,
                         document_views.c.doc_id < doc_id),
                )
            )
        query = query.order_by(
            document_views.c.updated_at.desc(), document_views.c.doc_id.desc()
        ).limit(limit)
        return [_view(r) for r in await self._all(query)]

    async def revisions_page(
        self, doc_id: str, limit: int, before: int | None
    ) -> list[RevisionRow]:
        query = select(revisions).where(revisions.c.doc_id == doc_id)
        if before is not None:
            query = query.where(revisions.c.number < before)
        query = query.order_by(revisions.c.number.desc()).limit(limit)
        return [_revision(r) for r in await self._all(query)]

    async def revision(self, doc_id: str, number: int) -> RevisionRow | None:
        rows = await self._all(
            select(revisions).where(revisions.c.doc_id == doc_id, revisions.c.number == number)
        )
        return _revision(rows[0]) if rows else None

    async def last_revision(self, doc_id: str) -> RevisionRow | None:
        rows = await self._all(
            select(revisions)
            .where(revisions.c.doc_id == doc_id)
            .order_by(revisions.c.number.desc())
            .limit(1)
        )
        return _revision(rows[0]) if rows else None

    async def versions(self, doc_id: str) -> list[VersionRow]:
        rows = await self._all(
            select(versions).where(versions.c.doc_id == doc_id).order_by(versions.c.event_seq)
        )
        return [
            VersionRow(r.doc_id, r.event_seq, r.seq, r.name, r.actor, r.created_at) for r in rows
        ]

    async def changes(self, doc_id: str, after: int, until: int) -> list[ChangeRow]:
        """Text changes of events after < seq <= until, in seq order."""
        if until <= after:
            return []
        out: list[ChangeRow] = []
        for change in await self.packed_changes(doc_id, after, until):
            ops = change.ops
            out.append(ChangeRow(change.seq, change.actor, ops,
                                 sum(len(op[2]) for op in ops), sum(len(op[1]) for op in ops)))
        return out

    async def packed_changes(self, doc_id: str, after: int,
                             until: int | None = None) -> list[PackedChange]:
        """The stored changes of events after < seq <= until (the last when None)."""
        c = text_change_chunks.c
        query = select(c.chunk, c.data).where(c.doc_id == doc_id,
                                              c.chunk >= chunk_of(after + 1))
        if until is not None:
            query = query.where(c.chunk <= chunk_of(until))
        rows = await self._all(query.order_by(c.chunk, c.first_seq))
        out: list[PackedChange] = []
        for row in rows:
            for change in unpack_changes(int(row.chunk), bytes(row.data)):
                if change.seq > after and (until is None or change.seq <= until):
                    out.append(change)
        return out

    async def position(self, doc_id: str, seq: int) -> Position | None:
        """In one query: where the document's log and read side are, and the snapshots
        nearest to seq on either side (the changes needed to read seq start from one)."""
        cp = projector_checkpoints
        checkpoint = (
            select(cp.c.seq).where(cp.c.doc_id == doc_id).scalar_subquery()
        )
        below = (
            select(func.max(snapshots.c.seq))
            .where(snapshots.c.doc_id == doc_id, snapshots.c.seq <= seq)
            .scalar_subquery()
        )
        above = (
            select(func.min(snapshots.c.seq))
            .where(snapshots.c.doc_id == doc_id, snapshots.c.seq > seq)
            .scalar_subquery()
        )
        event_time = (
            select(events.c.time)
            .where(events.c.doc_id == doc_id, events.c.seq == seq)
            .scalar_subquery()
        )
        seg = event_segments.c
        packed = (  # the segment holding seq, if the event is packed (storage.packed_log)
            select(seg.data)
            .where(seg.doc_id == doc_id, seg.first_seq <= seq,
                   seg.first_seq > seq - SEGMENT, seg.last_seq >= seq)
            .scalar_subquery()
        )
        rows = await self._all(
            select(
                documents.c.head_seq, documents.c.created_at, documents.c.title,
                checkpoint.label("checkpoint"), below.label("below"), above.label("above"),
                event_time.label("event_time"), packed.label("packed"),
                document_views.c.seq.label("view_seq"),
                document_views.c.title.label("view_title"),
            )
            .select_from(documents.outerjoin(
                document_views, document_views.c.doc_id == documents.c.id))
            .where(documents.c.id == doc_id)
        )
        if not rows:
            return None
        r = rows[0]
        event_at = r.event_time
        if event_at is None and r.packed is not None:
            event_at = time_of(bytes(r.packed), seq)
        return Position(
            head=int(r.head_seq), created_at=r.created_at,
            title=r.view_title if r.view_title is not None else r.title,
            checkpoint=int(r.checkpoint or 0), snapshot_below=int(r.below or 0),
            snapshot_above=None if r.above is None else int(r.above),
            event_time=event_at, view_seq=None if r.view_seq is None else int(r.view_seq),
        )

    async def snapshot_text(self, doc_id: str, seq: int) -> str | None:
        rows = await self._all(
            select(snapshots.c.text).where(snapshots.c.doc_id == doc_id, snapshots.c.seq == seq)
        )
        return unpack_text(bytes(rows[0].text)) if rows else None

    async def view_text(self, doc_id: str) -> tuple[int, str] | None:
        rows = await self._all(
            select(document_views.c.seq, document_views.c.text)
            .where(document_views.c.doc_id == doc_id)
        )
        return (int(rows[0].seq), rows[0].text) if rows else None

    async def events_page(self, doc_id: str, after: int, limit: int) -> list[EventInfo]:
        """The audit view of the log: no payloads, only their sizes."""
        found: list[EventRecord] = []
        last: int | None = after
        while last is not None and len(found) < limit:
            async with self.db.snapshot() as conn:
                batch, last = await packed_log.read_events(conn, doc_id, last, None, limit,
                                                           hashes=False)
            found.extend(batch)
        return [EventInfo(r.seq, r.kind, r.actor, r.time, len(r.payload), r.meta)
                for r in found[:limit]]

    async def event_time(self, doc_id: str, seq: int) -> float | None:
        async with self.db.snapshot() as conn:
            return await packed_log.event_time(conn, doc_id, seq)

    async def seq_before_time(self, doc_id: str, time: float) -> int:
        """The last seq committed strictly before `time` (0 if none)."""
        async with self.db.snapshot() as conn:
            return await packed_log.seq_before_time(conn, doc_id, time)

    async def dump(self, snapshot_every: int) -> dict[str, list[tuple[Any, ...]]]:
        """Every read-model row, in key order (to compare a rebuild with the live tables).

        Of the snapshots, only the projector's (every `snapshot_every` seqs) are a function
        of the log; rooms add others when they unload, which a rebuild does not recreate."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in READ_MODEL_TABLES:
            if table is text_change_chunks:
                # Unpacked: how a chunk still filling is split in rows depends on the batches.
                ids = [r.doc_id for r in await self._all(
                    select(table.c.doc_id).distinct().order_by(table.c.doc_id))]
                out[table.name] = [(d, c.seq, c.actor, c.ops) for d in ids
                                   for c in await self.packed_changes(d, 0)]
                continue
            if table is projector_checkpoints:
                query: Any = select(table.c.doc_id, table.c.seq)
            else:
                query = select(table)
            query = query.order_by(*table.primary_key.columns)
            out[table.name] = [tuple(r) for r in await self._all(query)]
        snaps = (
            select(snapshots.c.doc_id, snapshots.c.seq, snapshots.c.text)
            .where(snapshots.c.seq % snapshot_every == 0)
            .order_by(snapshots.c.doc_id, snapshots.c.seq)
        )
        out["snapshots"] = [tuple(r) for r in await self._all(snaps)]
        return out


def _view(r: Any) -> ViewRow:
    return ViewRow(r.doc_id, r.title, int(r.seq), r.text, r.size, list(r.contributors),
                   r.created_at, r.updated_at)


def _revision(r: Any) -> RevisionRow:
    return RevisionRow(r.doc_id, r.number, int(r.from_seq), int(r.to_seq), list(r.authors),
                       r.started_at, r.ended_at, r.inserted, r.deleted, r.events, r.kind,
                       None if r.shares is None else [list(s) for s in r.shares],
                       None if r.restored_from is None else int(r.restored_from))
