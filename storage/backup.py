"""Backups: one document's whole log, with its hash chain, as a portable file, and back.

The file is JSON lines, UTF-8. The first line is the header:

    {"format": "palimpsest-log", "version": 1, "doc_id", "title", "created_at",
     "head_seq", "head_hash", "events", "exported_at"}

then one line per event, in seq order:

    {"seq", "kind", "actor", "time", "meta", "payload": base64, "hash": hex}

Hashes do not cover the document id (storage.chain), so a log imported under another id keeps
them. Importing reads the file twice: first it recomputes the whole chain and refuses a file
whose chain is broken (naming the first seq that does not chain) or whose header does not
name its last event; then it writes the document and its events in one transaction, the
sealed ranges packed (storage.packed_log) as the appends would have left them. The read
models are not in the file: the projector builds them from the imported log.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from storage import chain, packed_log
from storage.database import Database
from storage.errors import DocumentNotFound, StorageError
from storage.event_store import EventStore
from storage.records import EventRecord
from storage.schema import documents, events
from storage.segments import CorruptSegment

FORMAT = "palimpsest-log"
VERSION = 1
BATCH = 2000

Progress = Callable[[int], None]


class BadLogFile(StorageError):
    """Not a log file this version can read."""


class BrokenChain(StorageError):
    def __init__(self, seq: int) -> None:
        super().__init__(f"the hash chain is broken at seq {seq}")
        self.seq = seq


class DocumentExists(StorageError):
    def __init__(self, doc_id: str) -> None:
        super().__init__(f"document {doc_id!r} already exists")
        self.doc_id = doc_id


@dataclass(frozen=True, slots=True)
class Header:
    doc_id: str
    title: str
    created_at: float
    head_seq: int
    head_hash: bytes | None
    events: int


async def export_log(store: EventStore, doc_id: str, out: IO[str], now: float,
                     on_progress: Progress | None = None) -> Header:
    async with store.db.read() as conn:
        doc = (await conn.execute(select(documents).where(documents.c.id == doc_id))).first()
    if doc is None:
        raise DocumentNotFound(doc_id)
    count = 0
    lines: list[str] = []
    last: EventRecord | None = None
    verifier = chain.Verifier()
    async for record in _read_checked(store, doc_id):
        # The header comes from what was read, so an append meanwhile cannot make it disagree
        # with the lines; a rewrite meanwhile (erasure, compaction) breaks the chain read.
        if not verifier.feed(record):
            raise StorageError(f"the log of {doc_id!r} does not verify at seq {record.seq} "
                               "(altered, or rewritten during the export: run verify, retry)")
        lines.append(json.dumps({
            "seq": record.seq, "kind": record.kind, "actor": record.actor, "time": record.time,
            "meta": record.meta, "payload": base64.b64encode(record.payload).decode(),
            "hash": record.hash.hex(),
        }, separators=(",", ":")))
        last = record
        count += 1
        if on_progress is not None and count % 1000 == 0:
            on_progress(1000)
    header = Header(doc_id, doc.title, doc.created_at, last.seq if last else 0,
                    last.hash if last else None, count)
    out.write(json.dumps({
        "format": FORMAT, "version": VERSION, "doc_id": doc_id, "title": header.title,
        "created_at": header.created_at, "head_seq": header.head_seq,
        "head_hash": header.head_hash.hex() if header.head_hash else None,
        "events": count, "exported_at": now,
    }, separators=(",", ":")) + "\n")
    for line in lines:
        out.write(line + "\n")
    if on_progress is not None:
        on_progress(count % 1000)
    return header


async def _read_checked(store: EventStore, doc_id: str) -> AsyncIterator[EventRecord]:
    try:
        async for record in store.read(doc_id):
            yield record
    except CorruptSegment as exc:
        raise StorageError(f"the log of {doc_id!r} does not verify: {exc}") from None


def _header(line: str) -> Header:
    try:
        data = json.loads(line)
        if data.get("format") != FORMAT:
            raise BadLogFile("not a palimpsest log file")
        if data.get("version") != VERSION:
            raise BadLogFile(f"log file version {data.get('version')} is not {VERSION}")
        head_hash = data["head_hash"]
        return Header(str(data["doc_id"]), str(data["title"]), float(data["created_at"]),
                      int(data["head_seq"]), bytes.fromhex(head_hash) if head_hash else None,
                      int(data["events"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadLogFile(f"bad header: {exc}") from None


def _event(doc_id: str, line: str) -> EventRecord:
    try:
        data: dict[str, Any] = json.loads(line)
        meta = data["meta"]
        if not isinstance(meta, dict):
            raise ValueError("meta is not an object")
        return EventRecord(doc_id, int(data["seq"]), str(data["kind"]),
                           base64.b64decode(data["payload"], validate=True), str(data["actor"]),
                           float(data["time"]), meta, bytes.fromhex(data["hash"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadLogFile(f"bad event line: {exc}") from None


def read_log_file(path: Path, doc_id: str | None = None) -> tuple[Header, Iterator[EventRecord]]:
    """The header and the events of a log file (as document `doc_id`, else the header's)."""
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    if not first:
        raise BadLogFile("empty file")
    header = _header(first)
    target = doc_id or header.doc_id

    def records() -> Iterator[EventRecord]:
        with path.open(encoding="utf-8") as f:
            f.readline()
            for line in f:
                if line.strip():
                    yield _event(target, line)

    return header, records()


def check_log_file(path: Path, on_progress: Progress | None = None) -> Header:
    """Recompute the file's whole chain; BrokenChain (with the first seq that does not chain)
    or BadLogFile unless every event chains and the header names the last one."""
    header, records = read_log_file(path)
    verifier = chain.Verifier()
    last, count = 0, 0
    for record in records:
        if record.seq <= last:
            raise BadLogFile(f"seq {record.seq} after seq {last}")
        if not verifier.feed(record):
            raise BrokenChain(record.seq)
        last = record.seq
        count += 1
        if on_progress is not None and count % 1000 == 0:
            on_progress(1000)
    if count != header.events or last != header.head_seq or (
            (header.head_hash or chain.GENESIS) != verifier.expected):
        raise BrokenChain(last + 1)  # the file lost its tail, or its header was altered
    return header


async def import_log(db: Database, path: Path, as_id: str | None = None,
                     on_progress: Progress | None = None) -> Header:
    """Verify the file, then load it as a new document (`as_id`, else its own id)."""
    header = check_log_file(path)
    doc_id = as_id or header.doc_id
    _, records = read_log_file(path, doc_id)
    async with db.write() as conn:
        exists = (await conn.execute(select(documents.c.id).where(documents.c.id == doc_id)))
        if exists.first() is not None:
            raise DocumentExists(doc_id)
        await conn.execute(documents.insert().values(
            id=doc_id, title=header.title, head_seq=header.head_seq,
            created_at=header.created_at, head_hash=header.head_hash))
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append({"doc_id": doc_id, "seq": record.seq, "kind": record.kind,
                          "payload": record.payload, "actor": record.actor,
                          "time": record.time, "meta": record.meta, "hash": record.hash})
            if len(batch) >= BATCH:
                await conn.execute(events.insert(), batch)
                if on_progress is not None:
                    on_progress(len(batch))
                batch = []
        if batch:
            await conn.execute(events.insert(), batch)
            if on_progress is not None:
                on_progress(len(batch))
        await packed_log.pack_due(conn, doc_id, header.head_seq)  # sealed ranges, packed
    return Header(doc_id, header.title, header.created_at, header.head_seq, header.head_hash,
                  header.events)
