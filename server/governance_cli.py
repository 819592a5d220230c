"""`palimpsest verify | compact | purge | export | import`: history you can trust and govern.

Each opens the database of DATABASE_URL (migrating SQLite, requiring a migrated PostgreSQL,
as `serve` does), runs beside live servers safely (every write takes the document's row lock,
like an append), and exits 1 when it finds or refuses something. docs/operations.md has what
each costs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from server.settings import Settings
from storage.database import Database, is_sqlite, open_database
from storage.migrate import migrate, require_latest


@asynccontextmanager
async def _database(settings: Settings) -> Any:
    if is_sqlite(settings.database_url):
        await migrate(settings.database_url)
    else:
        await require_latest(settings.database_url)
    db = open_database(settings.database_url)
    try:
        yield db
    finally:
        await db.dispose()


def _run(go: Callable[[Database, Settings], Awaitable[int]]) -> int:
    settings = Settings.from_env()

    async def main() -> int:
        database: AbstractAsyncContextManager[Database] = _database(settings)
        async with database as db:
            return await go(db, settings)

    return asyncio.run(main())


def _bar(desc: str, total: int, unit: str = "event") -> Any:
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, unit_scale=True)


# verify


async def _verify(args: argparse.Namespace, db: Database, _settings: Settings) -> int:
    from storage.errors import DocumentNotFound
    from storage.event_store import EventStore
    from storage.integrity import count_events, verify_document

    store = EventStore(db)
    doc_ids = [args.doc] if args.doc else await store.document_ids()
    bar = _bar("verify", await count_events(db, args.doc))
    broken = 0
    try:
        for doc_id in doc_ids:
            try:
                verdict = await verify_document(store, doc_id, bar.update)
            except DocumentNotFound:
                bar.write(f"{doc_id}: no such document")
                return 2
            if verdict.ok:
                bar.write(f"{doc_id}: OK ({verdict.events} events, head seq {verdict.head_seq},"
                          f" head hash {verdict.head_hash.hex()})")
            else:
                broken += 1
                bar.write(f"{doc_id}: BROKEN at seq {verdict.first_broken}: {verdict.reason}")
    finally:
        bar.close()
    print(f"palimpsest verify: {len(doc_ids) - broken} of {len(doc_ids)} documents OK")
    return 1 if broken else 0


# compact and purge


def _maintenance(db: Database, settings: Settings) -> Any:
    from server.app import build_projector
    from server.bus import LocalBus
    from server.maintenance import Maintenance
    from server.realtime.rooms import Rooms
    from server.write.documents import DocumentSettings, LiveDocuments
    from server.write.handlers import WriteSide
    from storage.event_store import EventStore
    from storage.read_model import ReadModel

    store = EventStore(db)
    read_model = ReadModel(db)
    bus = LocalBus("cli")
    # No live document is opened here: the rooms only stand in as the (idle) fan-out port.
    documents = LiveDocuments(store, bus, Rooms(bus), DocumentSettings(sweep_seconds=0))
    projector = build_projector(store, read_model, settings)
    return Maintenance(store, read_model, WriteSide(store, documents), projector,
                       keep_days=settings.keep_days,
                       deleted_retention_days=settings.deleted_retention_days)


async def _compact(args: argparse.Namespace, db: Database, settings: Settings) -> int:
    from server.maintenance import Compacted

    maintenance = _maintenance(db, settings)
    started = time.monotonic()
    try:
        if args.doc:
            results = [await maintenance.compact(args.doc, args.keep_days)]
        else:
            bar = _bar("compact", len(await maintenance.store.document_ids()), "doc")
            try:
                results = list(await maintenance.compact_all(
                    args.keep_days, lambda _doc, _result: bar.update(1)))
            finally:
                bar.close()
    finally:
        await maintenance.projector.stop()
    done: list[Compacted] = [r for r in results if r is not None]
    for r in done:
        print(f"{r.doc_id}: kept {r.keep_days:g} days whole; {r.absorbed} events merged into "
              f"{r.merged}; {r.events_before} -> {r.events_after} events, "
              f"{r.bytes_before} -> {r.bytes_after} payload bytes (audit event seq {r.seq})")
    print(f"palimpsest compact: {len(done)} documents compacted in "
          f"{time.monotonic() - started:.1f} s")
    return 0


async def _purge(args: argparse.Namespace, db: Database, settings: Settings) -> int:
    maintenance = _maintenance(db, settings)
    purged = await maintenance.purge(args.older_than_days, doc_id=args.doc)
    for doc_id, removed in sorted(purged.items()):
        print(f"{doc_id}: purged ({removed} events and every other row)")
    print(f"palimpsest purge: {len(purged)} documents purged")
    return 0


# export and import


async def _export(args: argparse.Namespace, db: Database, out: IO[str]) -> int:
    from storage.backup import export_log
    from storage.event_store import EventStore
    from storage.integrity import count_events

    store = EventStore(db)
    bar = _bar("export", await count_events(db, args.doc))
    try:
        header = await export_log(store, args.doc, out, time.time(), bar.update)
    finally:
        bar.close()
    head = header.head_hash.hex() if header.head_hash else "-"
    print(f"palimpsest export: {args.doc}: {header.events} events, head seq "
          f"{header.head_seq}, head hash {head}")
    return 0


def _export_command(args: argparse.Namespace) -> int:
    out = Path(args.out)
    with out.open("w", encoding="utf-8") as f:
        result = _run(lambda db, _settings: _export(args, db, f))
    print(f"palimpsest export: wrote {out} ({out.stat().st_size} bytes)")
    return result


async def _import(args: argparse.Namespace, db: Database, _settings: Settings) -> int:
    from server.write.validation import valid_doc_id
    from storage.backup import BadLogFile, BrokenChain, DocumentExists, import_log, read_log_file

    path = Path(args.file)
    try:
        target = args.as_id or read_log_file(path)[0].doc_id
        if not valid_doc_id(target):
            raise BadLogFile(f"{target!r} is not a valid document id")
        header = await import_log(db, path, target)
    except BrokenChain as exc:
        print(f"palimpsest import: refused: {exc}", file=sys.stderr)
        return 1
    except (BadLogFile, DocumentExists) as exc:
        print(f"palimpsest import: refused: {exc}", file=sys.stderr)
        return 1
    head = header.head_hash.hex() if header.head_hash else "-"
    print(f"palimpsest import: {header.doc_id}: {header.events} events, head seq "
          f"{header.head_seq}, head hash {head}; the projector builds its read models")
    return 0


def _command(go: Callable[[argparse.Namespace, Database, Settings], Awaitable[int]],
             ) -> Callable[[argparse.Namespace], int]:
    return lambda args: _run(lambda db, settings: go(args, db, settings))


def add_commands(sub: Any) -> None:
    """Register the governance commands on the `palimpsest` parser's subparsers."""
    verify = sub.add_parser("verify", help="check every event's hash chain")
    verify.add_argument("--doc", help="only this document")
    verify.set_defaults(func=_command(_verify))
    compact = sub.add_parser("compact", help="merge old edits under the retention policy")
    compact.add_argument("--doc", help="only this document")
    compact.add_argument("--keep-days", type=float, dest="keep_days",
                         help="keep this many days whole (default: each document's policy, "
                              "else PALIMPSEST_KEEP_DAYS)")
    compact.set_defaults(func=_command(_compact))
    purge = sub.add_parser("purge", help="remove documents deleted longer ago than the period")
    purge.add_argument("--doc", help="only this document")
    purge.add_argument("--older-than-days", type=float, dest="older_than_days",
                       help="default: PALIMPSEST_DELETED_RETENTION_DAYS")
    purge.set_defaults(func=_command(_purge))
    export = sub.add_parser("export", help="write a document's log to a portable file")
    export.add_argument("--doc", required=True)
    export.add_argument("--out", required=True)
    export.set_defaults(func=_export_command)
    load = sub.add_parser("import", help="load an exported log (its chain verified)")
    load.add_argument("file")
    load.add_argument("--as", dest="as_id", help="the new document id (default: the file's)")
    load.set_defaults(func=_command(_import))
