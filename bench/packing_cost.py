"""What packing the log costs the write path: CPU per appended event, packing on and off.

    .venv/bin/python bench/packing_cost.py                  # 30,000 events, SQLite
    .venv/bin/python bench/packing_cost.py --postgres       # a throwaway PostgreSQL 15

Appends the first N automerge-paper updates (pycrdt's, as bench/read_side.py makes them) to a
fresh log in batches of --batch (a writer's group commit), once with the event store as it
runs (the append that seals a range packs it: storage.packed_log) and once with packing off,
alternating rounds in one process, and reports the process's CPU time per event for each, and
the CPU time of the packing calls alone. In process: no server, no clients.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.read_side import trace_updates  # noqa: E402
from storage import packed_log  # noqa: E402
from storage.database import open_database  # noqa: E402
from storage.event_store import EventStore  # noqa: E402
from storage.migrate import migrate  # noqa: E402
from storage.records import NewEvent  # noqa: E402
from tests.support.replay import load_trace  # noqa: E402


class Timed(EventStore):
    """The event store with its packing timed (or skipped)."""

    def __init__(self, *args: object, packing: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.packing = packing
        self.pack_cpu = 0.0

    async def pack_quietly(self, doc_id: str) -> None:
        if not self.packing:
            return
        started = time.process_time()
        await super().pack_quietly(doc_id)
        self.pack_cpu += time.process_time() - started


async def one_round(url: str, doc: str, updates: list[bytes], batch: int,
                    packing: bool) -> tuple[float, float]:
    db = open_database(url)
    try:
        store = Timed(db, packing=packing)
        await store.ensure_document(doc)
        started = time.process_time()
        for start in range(0, len(updates), batch):
            await store.append(doc, [NewEvent("update", u, "martin", 1000.0 + start)
                                     for u in updates[start : start + batch]])
        total = time.process_time() - started
        return total / len(updates) * 1e6, store.pack_cpu / len(updates) * 1e6
    finally:
        await db.dispose()


async def main_async(args: argparse.Namespace) -> None:
    postgres = None
    if args.postgres:
        from bench.postgres import TempPostgres
        from tests.support.services import free_port

        postgres = TempPostgres(free_port())
        postgres.start()
        url = postgres.createdb()
    else:
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'pack.sqlite3'}"
    try:
        await migrate(url)
        updates = trace_updates(load_trace(), args.events)
        figures: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for r in range(args.rounds):
            for packing in (True, False) if r % 2 == 0 else (False, True):
                figures[packing].append(await one_round(
                    url, f"doc-{r}-{packing}", updates, args.batch, packing))
        print(f"{args.events} events in batches of {args.batch}, {args.rounds} rounds, "
              f"{'PostgreSQL' if args.postgres else 'SQLite'}; process CPU per event (us):")
        for packing in (True, False):
            cpu = sorted(f[0] for f in figures[packing])
            print(f"  packing {'on ' if packing else 'off'}: median {cpu[len(cpu) // 2]:.1f}"
                  + (f" (of which packing {sorted(f[1] for f in figures[True])[len(cpu) // 2]:.1f})"
                     if packing else ""))
        print(f"  (ranges of {packed_log.SEGMENT} seqs, packed {packed_log.LAG} behind the head)")
    finally:
        if postgres is not None:
            postgres.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", action="store_true")
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
