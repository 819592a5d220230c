"""What governance costs on the full automerge-paper log (about 260,000 events), on SQLite.

    .venv/bin/python bench/governance.py                 # the whole trace (several minutes)
    .venv/bin/python bench/governance.py --patches 20000  # a quick look

It writes the trace into a fresh log (bench/read_side.py's way: one event per patch, the
trace's timestamps) and projects it, then measures, each on its own copy of that database:
verify; export and import (into a fresh SQLite file) and verifying the import; erasing a range
of events in the middle (planning, the rewrite and re-chain, the scrub, the read side's
rebuild); compacting everything (keep 0 days) and the rebuild after it. Every step is checked:
texts at kept seqs against an independent replay of the trace, the chain after each rewrite.
Bounded: one pass of each, in one process; memory is that of the log's payloads (tens of MB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.read_side import DOC, build_log  # noqa: E402
from server.bus import LocalBus  # noqa: E402
from server.events import HistoryErased, encode  # noqa: E402
from server.maintenance import Maintenance  # noqa: E402
from server.read.freshness import Freshness  # noqa: E402
from server.read.projector import Projector  # noqa: E402
from server.read.queries import Queries  # noqa: E402
from server.realtime.rooms import Rooms  # noqa: E402
from server.write.documents import DocumentSettings, LiveDocuments  # noqa: E402
from server.write.erasure import plan_erasure  # noqa: E402
from server.write.handlers import WriteSide  # noqa: E402
from storage.backup import export_log, import_log  # noqa: E402
from storage.database import Database, open_database  # noqa: E402
from storage.event_store import EventStore  # noqa: E402
from storage.history import Rewrite, rewrite  # noqa: E402
from storage.integrity import verify_document  # noqa: E402
from storage.migrate import migrate  # noqa: E402
from storage.read_model import ReadModel  # noqa: E402
from storage.scrub import scrub  # noqa: E402
from tests.support.replay import Trace, load_trace  # noqa: E402

SNAPSHOT_EVERY = 1000


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def copy_database(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def files_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def timed(label: str, figures: dict[str, Any], work: Any) -> Any:
    started = time.perf_counter()
    result = await work
    figures[label] = round(time.perf_counter() - started, 2)
    print(f"  {label}: {figures[label]} s", flush=True)
    return result


async def check_texts(db: Database, trace: Trace, seqs: list[int]) -> None:
    read_model = ReadModel(db)
    queries = Queries(EventStore(db), read_model, Freshness(read_model, timeout=1))
    for seq in seqs:
        assert await queries.text_at(DOC, seq) == trace.text_after(seq), f"text at {seq}"


async def verify_and_backup(path: Path, folder: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    db = open_database(url_of(path))
    store = EventStore(db)
    try:
        verdict = await timed("verify_s", figures, verify_document(store, DOC))
        assert verdict.ok
        figures["events"] = verdict.events
        out = folder / "export.jsonl"
        with out.open("w", encoding="utf-8") as f:
            await timed("export_s", figures, export_log(store, DOC, f, time.time()))
        figures["export_bytes"] = out.stat().st_size
    finally:
        await db.dispose()
    target = folder / "imported" / "bench.sqlite3"
    target.parent.mkdir()
    await migrate(url_of(target))
    imported = open_database(url_of(target))
    try:
        await timed("import_s", figures, import_log(imported, out, "copy"))
        verdict = await timed("verify_import_s", figures,
                              verify_document(EventStore(imported), "copy"))
        assert verdict.ok and verdict.events == figures["events"]
    finally:
        await imported.dispose()
    figures["imported_db_bytes"] = files_size(target)
    return figures


async def erase_range(path: Path, trace: Trace, first: int, last: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"range": [first, last]}
    db = open_database(url_of(path))
    store = EventStore(db)
    try:
        head = await store.head_seq(DOC)
        plan = await timed("plan_s", figures, plan_erasure(store, DOC, head, from_seq=first,
                                                           to_seq=last))
        figures["erased_events"] = plan.events
        audit = encode(HistoryErased("benchmark", plan.events, first, last), "bench",
                       time.time())
        done = await timed("rewrite_and_rechain_s", figures, rewrite(db, Rewrite(
            DOC, audit, plan.expected, plan.payloads, plan.metas)))
        figures["rechained_events"] = head - done.rechained_from + 1
        figures["db_bytes_before_scrub"] = files_size(path)
        await timed("scrub_s", figures, scrub(db))
        figures["db_bytes_after_scrub"] = files_size(path)
        projector = Projector(store, ReadModel(db), snapshot_every=SNAPSHOT_EVERY)
        await timed("reproject_s", figures, projector.catch_up())
        await projector.stop()
        assert (await verify_document(store, DOC)).ok
        await check_texts(db, trace, [first - 1, 1, first // 2])
    finally:
        await db.dispose()
    return figures


async def compact_all(path: Path, trace: Trace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    db = open_database(url_of(path))
    store = EventStore(db)
    read_model = ReadModel(db)
    bus = LocalBus("bench")
    documents = LiveDocuments(store, bus, Rooms(bus), DocumentSettings(sweep_seconds=0))
    write = WriteSide(store, documents)
    maintenance = Maintenance(store, read_model, write, None, keep_days=None,
                              deleted_retention_days=30)
    try:
        figures["db_bytes_before"] = files_size(path)
        result = await timed("compact_s", figures, maintenance.compact(DOC, keep_days=0))
        assert result is not None
        figures.update(events_before=result.events_before, events_after=result.events_after,
                       payload_bytes_before=result.bytes_before,
                       payload_bytes_after=result.bytes_after, merged_runs=result.merged)
        projector = Projector(store, read_model, snapshot_every=SNAPSHOT_EVERY)
        await timed("reproject_s", figures, projector.catch_up())
        await projector.stop()
        assert (await verify_document(store, DOC)).ok
        kept = [r.seq for r in await store.read_list(DOC) if r.kind == "update"]
        await check_texts(db, trace, random.Random(7).sample(kept, min(20, len(kept))))
        await timed("vacuum_s", figures, scrub(db))
        figures["db_bytes_after_vacuum"] = files_size(path)
    finally:
        await documents.close()
        await db.dispose()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=0, help="0: the whole trace")
    parser.add_argument("--erase", type=int, default=1000, help="events to erase")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    trace = load_trace()
    count = args.patches or len(trace.patches)
    folder = Path(tempfile.mkdtemp(prefix="palimpsest-governance-bench-"))
    try:
        base = folder / "base" / "bench.sqlite3"
        base.parent.mkdir()
        print(f"writing and projecting {count} events...", flush=True)
        figures: dict[str, Any] = {"log": asyncio.run(build_log(url_of(base), trace, count,
                                                                SNAPSHOT_EVERY))}
        figures["log"]["db_bytes"] = files_size(base)
        print(f"  {figures['log']}", flush=True)
        print("verify, export, import:", flush=True)
        figures["backup"] = asyncio.run(verify_and_backup(base, folder))
        print("erase a range:", flush=True)
        copy_database(base, folder / "erase" / "bench.sqlite3")
        middle = count // 2
        figures["erase"] = asyncio.run(erase_range(folder / "erase" / "bench.sqlite3", trace,
                                                   middle, middle + args.erase - 1))
        print("compact (keep 0 days):", flush=True)
        copy_database(base, folder / "compact" / "bench.sqlite3")
        figures["compact"] = asyncio.run(compact_all(folder / "compact" / "bench.sqlite3",
                                                     trace))
        print(json.dumps(figures, indent=2))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
