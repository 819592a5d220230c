"""Store size of the whole automerge-paper history (259,778 events), read models included.

    .venv/bin/python bench/store_size.py                         # SQLite and PostgreSQL
    .venv/bin/python bench/store_size.py --baseline-tree /tmp/base   # also an older checkout,
                                                                  # and that store migrated
    .venv/bin/python bench/store_size.py --patches 20000 --backends sqlite   # a quick look

Each store is built as bench/read_side.py builds it (one event per patch, Yjs updates from a
pycrdt editor, then the projector over the whole log), by the checkout under measurement, run
as its own process. Sizes are every table with its indexes (and TOAST on PostgreSQL) after
VACUUM (SQLite: `dbstat`; PostgreSQL: VACUUM FULL then `pg_total_relation_size`), against the
raw bytes of the Yjs updates. With `--baseline-tree`, the baseline's store is then migrated by
this checkout (`palimpsest migrate`), measured again, and a sample of seqs is read back through
the read side and compared with an independent replay of the trace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

VENV_PYTHON = REPO / ".venv" / "bin" / "python"
DOC = "paper"

_BUILD = """
import asyncio, json, sys
from bench.read_side import build_log
from tests.support.replay import load_trace
trace = load_trace()
count = int(sys.argv[2]) or len(trace.patches)
figures = asyncio.run(build_log(sys.argv[1], trace, count, int(sys.argv[3])))

async def fold(url):  # the insight follower's tables (activity, search, history words)
    import time
    from server.read.insights import InsightFollower
    from storage.database import open_database
    from storage.event_store import EventStore
    db = open_database(url)
    try:
        started = time.perf_counter()
        await InsightFollower(EventStore(db), db, batch_size=5000).catch_up()
        figures["insights_s"] = time.perf_counter() - started
    finally:
        await db.dispose()

asyncio.run(fold(sys.argv[1]))
print(json.dumps(figures))
"""


def build(tree: Path, url: str, patches: int, snapshot_every: int) -> dict[str, Any]:
    """Build the store with `tree`'s code, in its own process."""
    started = time.perf_counter()
    proc = subprocess.run(
        [str(VENV_PYTHON), "-c", _BUILD, url, str(patches), str(snapshot_every)],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True,
        timeout=3600, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building with {tree} failed: {proc.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["build_s"] = time.perf_counter() - started
    return figures


def migrate(url: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(VENV_PYTHON), "-m", "server.cli", "migrate"], cwd=REPO,
                   env={**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO)},
                   check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - started


async def sizes(url: str) -> dict[str, int]:
    """Bytes per table, its indexes (and TOAST) included, after a VACUUM."""
    engine = create_async_engine(url)
    try:
        if url.startswith("sqlite"):
            async with engine.connect() as conn:
                await conn.execute(sa.text("VACUUM"))
                owners = dict((await conn.execute(sa.text(
                    "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table','index')"
                ))).all())
                rows = (await conn.execute(sa.text(
                    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))).all()
            out: dict[str, int] = {}
            for name, size in rows:
                table = owners.get(name, name)
                out[table] = out.get(table, 0) + int(size)
            return out
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM FULL"))
            rows = (await conn.execute(sa.text(
                "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'"))).all()
            return {name: int(size) for name, size in rows}
    finally:
        await engine.dispose()


async def raw_bytes(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            value = (await conn.execute(sa.text(
                "SELECT SUM(LENGTH(payload)) FROM events WHERE kind = 'update'"))).scalar_one()
            packed = 0
            if "event_segments" in await conn.run_sync(
                    lambda sync: sa.inspect(sync).get_table_names()):
                # Segments hold only `update` events (storage.packed_log).
                packed = (await conn.execute(sa.text(
                    "SELECT SUM(payload_bytes) FROM event_segments"))).scalar_one()
        return int(value or 0) + int(packed or 0)
    finally:
        await engine.dispose()


async def check_seqs(url: str, head: int, samples: int) -> int:
    """Read `samples` random seqs (and the ends) through the read side; compare with the trace."""
    from server.read.freshness import Freshness
    from server.read.queries import Queries
    from storage.database import open_database
    from storage.event_store import EventStore
    from storage.read_model import ReadModel
    from tests.support.replay import load_trace

    trace = load_trace()
    rng = random.Random(15)
    seqs = sorted({1, head, *(rng.randint(1, head) for _ in range(samples))})
    db = open_database(url)
    try:
        read_model = ReadModel(db)
        queries = Queries(EventStore(db), read_model, Freshness(read_model))
        chars = list(trace.start)
        done = 0
        for seq in seqs:
            for pos, delete, insert in trace.patches[done:seq]:
                chars[pos : pos + delete] = list(insert)
            done = seq
            got = await queries.text_at(DOC, seq)
            if got != "".join(chars):
                raise AssertionError(f"the migrated store reads seq {seq} wrong")
    finally:
        await db.dispose()
    return len(seqs)


def _digest_event(digest: Any, seq: int, kind: str, payload: bytes, actor: str, when: float,
                  meta: dict[str, Any], hash_: bytes) -> None:
    import struct

    digest.update(json.dumps([seq, kind, payload.hex(), actor, struct.pack(">d", when).hex(),
                              meta, hash_.hex()], sort_keys=True).encode())


async def rows_digest(url: str) -> tuple[int, str]:
    """SHA-256 over every event of the log as plain rows (a store before packing)."""
    import hashlib

    engine = create_async_engine(url)
    digest, count = hashlib.sha256(), 0
    try:
        async with engine.connect() as conn:
            result = await conn.stream(sa.text(
                "SELECT seq, kind, payload, actor, time, meta, hash FROM events "
                "WHERE doc_id = :d ORDER BY seq"), {"d": DOC})
            async for r in result:
                meta = r.meta if isinstance(r.meta, dict) else json.loads(r.meta or "{}")
                _digest_event(digest, int(r.seq), r.kind, bytes(r.payload), r.actor, r.time,
                              meta or {}, bytes(r.hash))
                count += 1
    finally:
        await engine.dispose()
    return count, digest.hexdigest()


async def store_digest(url: str) -> tuple[int, str, bool]:
    """The same digest through this checkout's event store (rows and packed segments), and
    whether `palimpsest verify`'s check passes."""
    import hashlib

    from storage.database import open_database
    from storage.event_store import EventStore
    from storage.integrity import verify_document

    db = open_database(url)
    digest, count = hashlib.sha256(), 0
    try:
        store = EventStore(db)
        async for r in store.read(DOC):
            _digest_event(digest, r.seq, r.kind, r.payload, r.actor, r.time, r.meta, r.hash)
            count += 1
        verdict = await verify_document(store, DOC)
    finally:
        await db.dispose()
    return count, digest.hexdigest(), verdict.ok


def mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def report(name: str, table_sizes: dict[str, int], raw: int) -> str:
    total = sum(table_sizes.values())
    lines = [f"{name}: {mib(total)} MiB, {total / raw:.2f}x the raw updates ({mib(raw)} MiB)"]
    for table, size in sorted(table_sizes.items(), key=lambda kv: -kv[1]):
        if size >= 64 * 1024:
            lines.append(f"  {table:28s} {mib(size):>7s} MiB")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=0, help="0: the whole trace")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--baseline-tree", type=Path, default=None)
    parser.add_argument("--snapshot-every", type=int, default=1000)
    parser.add_argument("--check-samples", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-this", action="store_true",
                        help="with --baseline-tree: build only the baseline's store (then "
                        "migrated by this checkout)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="palimpsest-size-bench-"))
    postgres = None
    results: dict[str, Any] = {}
    try:
        for backend in args.backends.split(","):
            def fresh(label: str, backend: str = backend) -> str:
                nonlocal postgres
                if backend == "sqlite":
                    return f"sqlite+aiosqlite:///{folder / (label + '.sqlite3')}"
                if postgres is None:
                    from bench.postgres import TempPostgres
                    from tests.support.services import free_port

                    postgres = TempPostgres(free_port())
                    postgres.start()
                return postgres.createdb()

            trees = [] if args.skip_this and args.baseline_tree else [("this", REPO)]
            if args.baseline_tree is not None:
                trees.append(("baseline", args.baseline_tree.resolve()))
            for label, tree in trees:
                url = fresh(label)
                figures = build(tree, url, args.patches, args.snapshot_every)
                raw = asyncio.run(raw_bytes(url))
                table_sizes = asyncio.run(sizes(url))
                key = f"{backend}-{label}"
                results[key] = {"build": figures, "raw": raw, "tables": table_sizes}
                print(report(key, table_sizes, raw), flush=True)
                if label == "baseline":
                    before = asyncio.run(rows_digest(url))
                    entry: dict[str, Any] = {"migrate_s": migrate(url)}
                    results[key + "-migrated"] = entry
                    after = asyncio.run(store_digest(url))
                    entry["lossless"] = before == after[:2]
                    entry["verify_ok"] = after[2]
                    print(f"  every event read back identical after migrating: "
                          f"{entry['lossless']} ({after[0]} events); verify: {after[2]}",
                          flush=True)
                    entry["tables"] = asyncio.run(sizes(url))
                    entry["raw"] = raw
                    entry["checked_seqs"] = asyncio.run(
                        check_seqs(url, int(figures["events"]), args.check_samples))
                    print(report(key + "-migrated", entry["tables"], raw)
                          + f"\n  migrated in {entry['migrate_s']:.1f} s; "
                          f"{entry['checked_seqs']} seqs read back exactly", flush=True)
    finally:
        if postgres is not None:
            postgres.stop()
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
