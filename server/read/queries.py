"""The query side: plain reads of the read models, shaped as the HTTP API answers them.

Every answer carries the seq it reflects. A read of a past seq waits (bounded) until the
projector has reached it; a seq past the document's head does not exist (NotFound).

Two reads replay text changes in pure Python: the text at a past seq and the diff between two
seqs. Given a ReadPool (workers.py) they run in its workers, each with its own Queries
(`worker_queries`), so they never hold the event loop; what stays on the loop is checking
the request and waiting for the read side, a few small queries. A diff may span at most
`max_diff_events` events when set (TooLarge past that); it is the word diff of the texts at
its two seqs, so its cost does not grow with the span.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from server.bus import EVENT, BusMessage
from server.errors import BadRequest, NotFound, ReadSideBehind, TooLarge
from server.events import RESTORED, REWRITES
from server.read.content import content_at
from server.read.cursors import CursorCodec
from server.read.diff import DELETE, attributed_diff, word_changes
from server.read.freshness import Freshness
from server.read.revisions import RESTORE
from server.read.rich_diff import roots_diff
from server.read.textops import apply_ops, revert_ops, visible
from server.read.workers import Job, ReadPool
from storage.database import open_database
from storage.event_store import EventStore
from storage.read_model import ChangeRow, Position, ReadModel, RevisionRow, ViewRow

Json = dict[str, Any]
T = TypeVar("T")


def iso(t: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds, the API's time format."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def parse_time(value: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        raise BadRequest(f"at_time {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _revision_json(r: RevisionRow) -> Json:
    return {
        "number": r.number,
        "from_seq": r.from_seq,
        "to_seq": r.to_seq,
        "authors": r.authors,
        "started_at": iso(r.started_at),
        "ended_at": iso(r.ended_at),
        "inserted": r.inserted,
        "deleted": r.deleted,
        # Added with working sessions: every author's share, the kind, what a restore
        # restored and who did it.
        "kind": r.kind,
        "events": r.events,
        "shares": [{"author": a, "events": n, "inserted": i, "deleted": d}
                   for a, n, i, d in (r.shares or [[a, 0, 0, 0] for a in r.authors])],
        **({"restored_from": r.restored_from, "restored_by": r.authors[0] if r.authors else None}
           if r.kind == RESTORE else {}),
    }


def _list_item(v: ViewRow) -> Json:
    return {
        "id": v.doc_id,
        "title": v.title,
        "seq": v.seq,
        "updated_at": iso(v.updated_at),
        "size": v.size,
        "contributors": v.contributors,
    }


async def _empty() -> str:
    return ""


class TextCache:
    """Recently read snapshot texts, by (doc_id, seq): a snapshot never changes, so a hit
    saves the query that fetches the base text of a read at a past seq."""

    def __init__(self, max_chars: int = 32_000_000) -> None:
        self.max_chars = max_chars
        self._texts: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._chars = 0

    def get(self, key: tuple[str, int]) -> str | None:
        text = self._texts.get(key)
        if text is not None:
            self._texts.move_to_end(key)
        return text

    def forget(self, doc_id: str) -> None:
        for key in [k for k in self._texts if k[0] == doc_id]:
            self._chars -= len(self._texts.pop(key))

    def put(self, key: tuple[str, int], text: str) -> None:
        if key in self._texts or len(text) > self.max_chars:
            return
        self._texts[key] = text
        self._chars += len(text)
        while self._chars > self.max_chars:
            _, dropped = self._texts.popitem(last=False)
            self._chars -= len(dropped)


class ChangeCache:
    """Text changes of whole chunks of seqs (CHUNK seqs each, aligned), by (doc_id, chunk):
    the rows of seqs the read side has reached never change, and a diff over a long range
    spends most of its time fetching them. Bounded by the rows it holds."""

    CHUNK = 1000

    def __init__(self, max_rows: int = 100_000) -> None:
        self.max_rows = max_rows
        # By (doc_id, the document's rewrite generation, chunk): rows a read in flight across
        # a rewrite brings back land under the old generation, which nothing reads again.
        self._chunks: OrderedDict[tuple[str, int, int], list[ChangeRow]] = OrderedDict()
        self._rows = 0

    def forget(self, doc_id: str) -> None:
        for key in [k for k in self._chunks if k[0] == doc_id]:
            self._rows -= len(self._chunks.pop(key))

    async def changes(self, read_model: ReadModel, doc_id: str, after: int,
                      until: int, generation: int = 0) -> list[ChangeRow]:
        """read_model.changes(doc_id, after, until), whole chunks from the cache; `until`
        must be at most the read side's checkpoint."""
        chunk = self.CHUNK
        first = -(-after // chunk)  # the first chunk boundary at or after `after`
        last = until // chunk
        if last - first < 1:
            return await read_model.changes(doc_id, after, until)
        out = await read_model.changes(doc_id, after, first * chunk)
        for k in range(first, last):
            key = (doc_id, generation, k)
            rows = self._chunks.get(key)
            if rows is None:
                rows = await read_model.changes(doc_id, k * chunk, (k + 1) * chunk)
                self._put(key, rows)
            else:
                self._chunks.move_to_end(key)
            out += rows
        out += await read_model.changes(doc_id, last * chunk, until)
        return out

    def _put(self, key: tuple[str, int, int], rows: list[ChangeRow]) -> None:
        self._chunks[key] = rows
        self._rows += len(rows)
        while self._rows > self.max_rows:
            _, dropped = self._chunks.popitem(last=False)
            self._rows -= len(dropped)


DEFAULT_MAX_DIFF_EVENTS = 0  # no limit
# A diff over at most this many events says who made each change (it replays them, tens of
# milliseconds a thousand); a longer one is the word diff of the two texts alone. Equal to the
# most events a revision holds, so a revision's own changes always have their authors.
ATTRIBUTED_EVENTS = 2000
MAX_REVISION = 2**31 - 1  # revisions.number is a 32-bit integer column
LIST_SCAN = 1000  # rows of the document list one request may scan for readable ones


class Queries:
    def __init__(self, store: EventStore, read_model: ReadModel, freshness: Freshness, *,
                 pool: ReadPool | None = None,
                 max_diff_events: int = DEFAULT_MAX_DIFF_EVENTS,
                 cursors: CursorCodec | None = None) -> None:
        self.store = store
        self.read_model = read_model
        self.freshness = freshness
        self.pool = pool
        self.max_diff_events = max_diff_events
        self.cursors = cursors or CursorCodec(None)
        self.snapshot_texts = TextCache()
        self.change_chunks = ChangeCache()
        # Bumped when a document's history is rewritten (an erasure, a compaction): the read
        # workers' caches of it are dropped when a job carries a newer generation.
        self.generations: dict[str, int] = {}

    def forget(self, doc_id: str) -> None:
        """The document's history was rewritten: nothing cached of it holds any more."""
        self.generations[doc_id] = self.generations.get(doc_id, 0) + 1
        self.snapshot_texts.forget(doc_id)
        self.change_chunks.forget(doc_id)

    def on_bus(self, message: BusMessage) -> None:
        """Another node (or this one) rewrote a document's history: forget it here."""
        if message.kind == EVENT and message.event_kind in REWRITES:
            self.forget(message.doc_id)

    def adopt(self, doc_id: str, generation: int) -> None:
        """In a read worker: a job from the server carries the document's generation."""
        if self.generations.get(doc_id, 0) != generation:
            self.generations[doc_id] = generation
            self.snapshot_texts.forget(doc_id)
            self.change_chunks.forget(doc_id)

    async def _heavy(self, job: Job[T], *args: Any) -> T:
        """job(queries, *args) in the read pool's workers, or here when there is none."""
        if self.pool is None:
            return await job(self, *args)
        return await self.pool.run(job, *args)

    async def _snapshot_text(self, doc_id: str, seq: int) -> str | None:
        text = self.snapshot_texts.get((doc_id, seq))
        if text is None:
            text = await self.read_model.snapshot_text(doc_id, seq)
            if text is not None:
                self.snapshot_texts.put((doc_id, seq), text)
        return text

    async def _head(self, doc_id: str) -> int:
        doc = await self.store.document(doc_id)
        if doc is None:
            raise NotFound(f"document {doc_id!r} does not exist")
        return doc.head_seq

    async def _fresh(self, doc_id: str, min_seq: int | None) -> int:
        """The document's projected seq, after waiting for min_seq; NotFound if unknown."""
        head = await self._head(doc_id)
        if min_seq is not None:
            if min_seq > head:
                raise NotFound(f"document {doc_id!r} has no seq {min_seq} (head is {head})")
            return await self.freshness.wait(doc_id, min_seq)
        return await self.read_model.checkpoint(doc_id)

    async def _position(self, doc_id: str, seq: int, name: str = "seq") -> Position:
        """Where doc_id stands for a read at `seq`, once the read side has reached it."""
        if seq < 0:
            raise BadRequest(f"{name} must be 0 or more")
        position = await self.read_model.position(doc_id, seq)
        if position is None:
            raise NotFound(f"document {doc_id!r} does not exist")
        if seq > position.head:
            raise NotFound(f"document {doc_id!r} has no seq {seq} (head is {position.head})")
        if position.checkpoint < seq:
            await self.freshness.wait(doc_id, seq)
            position = await self.read_model.position(doc_id, seq)
            assert position is not None
        return position

    # Documents

    async def list_documents(self, limit: int, cursor: str | None,
                             readable: Callable[[str], bool] | None = None) -> Json:
        """A page of the documents `readable` accepts (all when None), newest edit first.

        Filtered before paginating: the scan goes on past what the caller may not read,
        at most LIST_SCAN rows a request, and `next` is the opaque position (cursors.py)
        where it stopped, which names no document."""
        after = self._list_position(cursor) if cursor else None
        items: list[ViewRow] = []
        scanned = 0
        page = limit + 1
        more = True
        while more and len(items) < limit and scanned < max(LIST_SCAN, page):
            views = await self.read_model.views_page(page, after)
            more = len(views) == page
            for i, view in enumerate(views):
                scanned += 1
                after = (view.updated_at, view.doc_id)
                if readable is None or readable(view.doc_id):
                    items.append(view)
                    if len(items) == limit:
                        more = i + 1 < len(views) or (
                            more and bool(await self.read_model.views_page(1, after)))
                        break
        next_cursor = self.cursors.encode(list(after)) if more and after else None
        return {"items": [_list_item(v) for v in items], "next": next_cursor}

    def _list_position(self, cursor: str) -> tuple[float, str]:
        position = self.cursors.decode(cursor)
        try:
            updated_at, doc_id = position
            return float(updated_at), str(doc_id)
        except (ValueError, TypeError):
            raise BadRequest("cursor is not one this server gave") from None

    async def document(self, doc_id: str, min_seq: int | None = None) -> Json:
        # The view read after the wait is at least as new as the checkpoint waited for.
        await self._fresh(doc_id, min_seq)
        view = await self.read_model.view(doc_id)
        if view is None:
            doc = await self.store.document(doc_id)
            assert doc is not None
            return {"id": doc_id, "title": doc.title, "seq": 0, "text": "",
                    "updated_at": iso(doc.created_at)}
        return {"id": doc_id, "title": view.title, "seq": view.seq, "text": visible(view.text),
                "updated_at": iso(view.updated_at), "contributors": view.contributors}

    async def document_at(self, doc_id: str, seq: int) -> Json:
        position = await self._position(doc_id, seq)
        text = "" if seq == 0 else await self._heavy(_text_job, doc_id, seq, position,
                                                          self.generations.get(doc_id, 0))
        when = position.event_time if position.event_time is not None else position.created_at
        return {"id": doc_id, "title": position.title, "seq": seq, "text": visible(text),
                "updated_at": iso(when)}

    async def content(self, doc_id: str, seq: int | None) -> Json:
        """The whole document at `seq` (the projected head when None): its Yjs state and
        every root type rendered (server/yrender.py), built in a read worker."""
        if seq is None:
            seq = await self._fresh(doc_id, None)
        position = await self._position(doc_id, seq)
        answer = await self._heavy(_content_job, doc_id, seq)
        when = position.event_time if position.event_time is not None else position.created_at
        answer["updated_at"] = iso(when)
        return answer

    async def roots_diff(self, doc_id: str, from_seq: int, to_seq: int) -> Json:
        """What changed in every root type between two seqs (server/read/rich_diff.py):
        formatting shown as such, XML block by block with words diffed; in a read worker."""
        if from_seq < 0:
            raise BadRequest("from must be 0 or more")
        if from_seq > to_seq:
            raise BadRequest("from must not be after to")
        await self._position(doc_id, to_seq, "to")
        return await self._heavy(_roots_diff_job, doc_id, from_seq, to_seq)

    async def document_at_time(self, doc_id: str, at_time: str) -> Json:
        when = parse_time(at_time)
        await self._head(doc_id)
        # Times in answers are whole milliseconds (truncated): a time read from an answer
        # covers its whole millisecond, so it finds the event it was read from.
        seq = await self.read_model.seq_before_time(doc_id, when + 0.001)
        return await self.document_at(doc_id, seq)

    async def text_at(self, doc_id: str, seq: int, position: Position | None = None) -> str:
        """The text after events 1..seq: the nearest snapshot (either side, or the current
        view) and the changes between it and seq, the two fetched at once. At most half a
        snapshot interval of changes, however long the log.

        A rewrite of the document's history (an erasure, a compaction) resets its read side
        and rebuilds it; a read that overlaps one answers ReadSideBehind (504, retry) rather
        than a text built from half-deleted rows."""
        if seq <= 0:
            return ""
        if position is None:
            position = await self._position(doc_id, seq)
        text = await self._text_from(doc_id, seq, position)
        if await self.read_model.checkpoint(doc_id) < seq:
            raise _rebuilding(doc_id)
        return text

    async def _text_from(self, doc_id: str, seq: int, position: Position) -> str:
        below = position.snapshot_below
        # Changes exist up to the view's seq (saved in one transaction with it), so the view
        # and any snapshot not past it can be walked back from.
        above: int | None = None
        if position.view_seq is not None and position.view_seq > seq:
            above = position.view_seq
            if position.snapshot_above is not None and position.snapshot_above <= above:
                above = position.snapshot_above
        if above is not None and above - seq < seq - below:
            base: tuple[int, str] | None
            if above == position.snapshot_above:
                text, changes = await asyncio.gather(
                    self._snapshot_text(doc_id, above),
                    self.read_model.changes(doc_id, seq, above),
                )
                base = None if text is None else (above, text)
            else:
                # The view moves on as the projector saves: its seq bounds the changes.
                base = await self.read_model.view_text(doc_id)
                if base is not None and base[0] < seq:
                    raise _rebuilding(doc_id)  # the view was reset since `position`
                if base is not None:
                    changes = await self.read_model.changes(doc_id, seq, base[0])
            if base is not None:
                content = bytearray(base[1].encode())
                for change in reversed(changes):
                    revert_ops(content, change.ops)
                return content.decode(errors="replace")
        start, forward = await asyncio.gather(
            self._snapshot_text(doc_id, below) if below > 0 else _empty(),
            self.read_model.changes(doc_id, below, seq),
        )
        if below > 0 and start is None:
            raise _rebuilding(doc_id)  # the snapshot was dropped since `position`
        content = bytearray((start or "").encode())
        for change in forward:
            apply_ops(content, change.ops)
        return content.decode(errors="replace")

    # History

    async def revisions(
        self, doc_id: str, limit: int, cursor: str | None, min_seq: int | None = None
    ) -> Json:
        before: int | None = None
        if cursor:
            try:
                before = int(cursor)
            except ValueError:
                raise BadRequest("cursor is not one this server gave") from None
            if not 0 <= before <= MAX_REVISION:
                raise BadRequest("cursor is not one this server gave")
        seq = await self._fresh(doc_id, min_seq)
        rows = await self.read_model.revisions_page(doc_id, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "items": [_revision_json(r) for r in rows],
            "next": str(rows[-1].number) if more and rows else None,
            "seq": seq,
        }

    async def revision_end(self, doc_id: str, number: int) -> int:
        """The last seq of revision `number` (what restoring that revision restores)."""
        await self._head(doc_id)
        row = await self.read_model.revision(doc_id, number)
        if row is None:
            raise NotFound(f"document {doc_id!r} has no revision {number}")
        return row.to_seq

    async def versions(self, doc_id: str, min_seq: int | None = None) -> Json:
        seq = await self._fresh(doc_id, min_seq)
        rows = await self.read_model.versions(doc_id)
        return {
            "items": [{"id": v.event_seq, "seq": v.seq, "name": v.name, "actor": v.actor,
                       "created_at": iso(v.created_at)} for v in rows],
            "seq": seq,
        }

    async def version(self, doc_id: str, version: int) -> Json:
        """One named version by its id (NotFound once its name was deleted), once the read
        side has reached the event that named it."""
        await self._fresh(doc_id, version)
        for v in await self.read_model.versions(doc_id):
            if v.event_seq == version:
                return {"id": v.event_seq, "seq": v.seq, "name": v.name, "actor": v.actor,
                        "created_at": iso(v.created_at)}
        raise NotFound(f"document {doc_id!r} has no version {version}")

    async def diff(self, doc_id: str, from_seq: int, to_seq: int) -> Json:
        if from_seq < 0:
            raise BadRequest("from must be 0 or more")
        if from_seq > to_seq:
            raise BadRequest("from must not be after to")
        await self._position(doc_id, to_seq, "to")
        if 0 < self.max_diff_events < to_seq - from_seq:
            raise TooLarge(
                f"this diff spans {to_seq - from_seq} events; one diff may span at most "
                f"{self.max_diff_events}: ask for a shorter range, or read the texts at "
                "both seqs (GET /api/documents/{id}?at=SEQ)")
        return await self._heavy(_diff_job, doc_id, from_seq, to_seq,
                                 self.generations.get(doc_id, 0))

    async def diff_here(self, doc_id: str, from_seq: int, to_seq: int) -> Json:
        """The word diff, computed in this process (once the read side has reached to_seq):
        the texts at both seqs (each a snapshot plus a few changes), diffed in words; over a
        short range, each change's author from a replay of the events between."""
        attributed = to_seq - from_seq <= ATTRIBUTED_EVENTS
        runs = None
        if attributed and from_seq < to_seq:
            # The replay spells the text at `to` too (kept + inserted runs): one text to read.
            old = await self.text_at(doc_id, from_seq)
            await self._position(doc_id, to_seq, "to")
            changes = await self.change_chunks.changes(
                self.read_model, doc_id, from_seq, to_seq, self.generations.get(doc_id, 0))
            runs = attributed_diff(old, ((c.actor, c.ops) for c in changes))
            new = "".join(r.text for r in runs if r.op != DELETE)
        else:
            old, new = await asyncio.gather(self.text_at(doc_id, from_seq),
                                            self.text_at(doc_id, to_seq))
        words = word_changes(old, new, runs)
        return {
            "from": from_seq,
            "to": to_seq,
            "granularity": "word",
            "attributed": attributed,
            "changes": [{"op": r.op, "text": r.text, "author": r.author} for r in words],
        }

    async def replayed_diff(self, doc_id: str, from_seq: int, to_seq: int) -> Json:
        """The character diff replaying every event between (what `diff` answered before
        word diffs; kept as the peer bench/history_diff.py measures against)."""
        base = await self.text_at(doc_id, from_seq)
        changes = await self.change_chunks.changes(self.read_model, doc_id, from_seq, to_seq,
                                                   self.generations.get(doc_id, 0))
        runs = attributed_diff(base, ((c.actor, c.ops) for c in changes))
        return {
            "from": from_seq,
            "to": to_seq,
            "changes": [{"op": r.op, "text": visible(r.text), "author": r.author}
                        for r in runs if visible(r.text)],
        }

    async def events(self, doc_id: str, after: int, limit: int) -> Json:
        if after < 0:
            raise BadRequest("after must be 0 or more")
        head = await self._head(doc_id)
        rows = await self.read_model.events_page(doc_id, after, limit)
        more = bool(rows) and rows[-1].seq < head
        return {
            "items": [{"seq": e.seq, "kind": e.kind, "actor": e.actor, "time": iso(e.time),
                       "size": e.size,
                       **({"restored_from": int(e.meta.get("restored_from", 0))}
                          if e.kind == RESTORED else {})} for e in rows],
            "next": rows[-1].seq if more else None,
            "seq": head,
        }


def _rebuilding(doc_id: str) -> ReadSideBehind:
    return ReadSideBehind(f"the read side of {doc_id!r} is being rebuilt after a rewrite of its "
                          "history; retry shortly")


# The heavy reads, as jobs for the read pool's workers (module-level: pickled by name).


async def _text_job(queries: Queries, doc_id: str, seq: int, position: Position,
                    generation: int) -> str:
    queries.adopt(doc_id, generation)
    return await queries.text_at(doc_id, seq, position)


async def _diff_job(queries: Queries, doc_id: str, from_seq: int, to_seq: int,
                    generation: int) -> Json:
    queries.adopt(doc_id, generation)
    return await queries.diff_here(doc_id, from_seq, to_seq)


async def _content_job(queries: Queries, doc_id: str, seq: int) -> Json:
    return await content_at(queries.store, doc_id, seq)


async def _roots_diff_job(queries: Queries, doc_id: str, from_seq: int, to_seq: int) -> Json:
    before = await content_at(queries.store, doc_id, from_seq)
    after = await content_at(queries.store, doc_id, to_seq)
    return {"from": from_seq, "to": to_seq,
            "roots": roots_diff(before["roots"], after["roots"])}


def worker_queries(database_url: str, read_wait_seconds: float) -> Queries:
    """A read worker's own Queries: its own connections, no pool (it is the pool)."""
    db = open_database(database_url, pool_size=1)
    read_model = ReadModel(db)
    return Queries(EventStore(db), read_model, Freshness(read_model, timeout=read_wait_seconds))
