"""Read-side benchmark on the full automerge-paper document (about 260,000 events).

    .venv/bin/python bench/read_side.py                       # SQLite, the whole trace
    .venv/bin/python bench/read_side.py --postgres            # a throwaway PostgreSQL 15
    .venv/bin/python bench/read_side.py --patches 20000        # a quick look

It writes the trace into a fresh log as one event per patch (Yjs updates from a pycrdt editor,
with the trace's own timestamps), projects it, then starts a real `palimpsest serve` on that
database and measures, over HTTP and WebSocket on 127.0.0.1: opening the room cold, the text
at a random seq, a page of revisions, the diff between two random seqs, and a restore.
Every text read is checked against an independent replay of the trace on a Python string.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from pycrdt import Doc, Text, TransactionEvent  # noqa: E402

from server.read.projector import Projector  # noqa: E402
from storage.database import open_database  # noqa: E402
from storage.event_store import EventStore  # noqa: E402
from storage.migrate import migrate  # noqa: E402
from storage.read_model import ReadModel  # noqa: E402
from storage.records import NewEvent  # noqa: E402
from tests.support.pyclient import YClient  # noqa: E402
from tests.support.replay import Trace, load_trace  # noqa: E402
from tests.support.server_process import ServerProcess  # noqa: E402

DOC = "paper"


def trace_updates(trace: Trace, count: int) -> list[bytes]:
    """One Yjs update per patch, as an editor typing the trace would send them."""
    doc: Doc[Any] = Doc()
    text = doc.get("content", type=Text)
    updates: list[bytes] = []

    def keep(event: TransactionEvent) -> None:
        updates.append(event.update)

    subscription = doc.observe(keep)
    for pos, delete, insert in trace.patches[:count]:
        with doc.transaction():
            if delete:
                del text[pos : pos + delete]
            if insert:
                text.insert(pos, insert)
    doc.unobserve(subscription)
    return updates


def trace_times(count: int) -> list[float]:
    import gzip

    from tests.support.replay import TRACES

    data = json.loads(gzip.open(TRACES / "automerge-paper.json.gz").read())
    times: list[float] = []
    for txn in data["txns"]:
        stamp = datetime.fromisoformat(txn["time"].replace("Z", "+00:00")).timestamp()
        times += [stamp] * len(txn["patches"])
    return times[:count]


async def build_log(url: str, trace: Trace, count: int, snapshot_every: int) -> dict[str, float]:
    await migrate(url)
    db = open_database(url)
    store = EventStore(db)
    figures: dict[str, float] = {}
    try:
        started = time.perf_counter()
        updates = trace_updates(trace, count)
        times = trace_times(count)
        figures["generate_s"] = time.perf_counter() - started
        await store.ensure_document(DOC, "automerge-paper")
        started = time.perf_counter()
        for start in range(0, len(updates), 2000):
            await store.append(DOC, [
                NewEvent("update", u, "martin", t)
                for u, t in zip(updates[start : start + 2000], times[start : start + 2000],
                                strict=True)
            ])
        figures["append_s"] = time.perf_counter() - started
        projector = Projector(store, ReadModel(db), snapshot_every=snapshot_every)
        started = time.perf_counter()
        await projector.catch_up()
        figures["project_s"] = time.perf_counter() - started
        await projector.stop()  # gives up its leases, so the server's projector takes over
        figures["events"] = float(await store.head_seq(DOC))
    finally:
        await db.dispose()
    return figures


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {"n": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0),
            "mean_ms": statistics.fmean(ordered) * 1000}


async def measure(server: ServerProcess, trace: Trace, head: int, samples: int,
                  restores: int) -> dict[str, Any]:
    rng = random.Random(20261123)
    out: dict[str, Any] = {}
    started = time.perf_counter()
    async with YClient(server.ws_url, DOC) as client:
        out["room_open_cold_ms"] = (time.perf_counter() - started) * 1000
        assert client.value() == trace.text_after(head), "the room's text is wrong"
    async with httpx.AsyncClient(base_url=server.http_url, timeout=60) as http:
        times: list[float] = []
        for _ in range(samples):
            seq = rng.randint(1, head)
            started = time.perf_counter()
            answer = (await http.get(f"/api/documents/{DOC}", params={"at": seq})).json()
            times.append(time.perf_counter() - started)
            if len(times) <= 20:
                assert answer["text"] == trace.text_after(seq), f"text at {seq} is wrong"
        out["text_at_seq"] = percentiles(times)

        first = (await http.get(f"/api/documents/{DOC}/revisions", params={"limit": 1})).json()
        newest = first["items"][0]["number"]
        out["revisions"] = newest
        times = []
        for _ in range(samples):
            cursor = rng.randint(2, newest + 1)
            started = time.perf_counter()
            page = await http.get(f"/api/documents/{DOC}/revisions",
                                  params={"limit": 50, "cursor": str(cursor)})
            times.append(time.perf_counter() - started)
            assert page.status_code == 200
        out["revision_page"] = percentiles(times)

        times = []
        for _ in range(max(10, samples // 4)):
            a, b = sorted(rng.randint(0, head) for _ in range(2))
            started = time.perf_counter()
            diff = await http.get(f"/api/documents/{DOC}/diff", params={"from": a, "to": b})
            times.append(time.perf_counter() - started)
            assert diff.status_code == 200
        out["diff"] = percentiles(times)

        times = []
        for _ in range(restores):
            seq = rng.randint(1, head)
            started = time.perf_counter()
            restored = await http.post(f"/api/documents/{DOC}/restore", json={"seq": seq})
            times.append(time.perf_counter() - started)
            assert restored.status_code == 200, restored.text
            now = (await http.get(f"/api/documents/{DOC}",
                                  params={"min_seq": restored.json()["seq"]})).json()
            assert "text" in now, now
            assert now["text"] == trace.text_after(seq), "restore gave the wrong text"
        out["restore"] = percentiles(times)
    return out


def table(figures: dict[str, Any]) -> str:
    rows = [
        ("open the room cold (WebSocket connect to synced)",
         f"{figures['room_open_cold_ms']:.0f} ms", ""),
    ]
    for key, label in (("text_at_seq", "text at a random seq"),
                       ("revision_page", "a page of 50 revisions at a random cursor"),
                       ("diff", "diff between two random seqs"),
                       ("restore", "restore a random seq")):
        f = figures[key]
        rows.append((f"{label} (n={f['n']})", f"{f['p50_ms']:.1f} ms", f"{f['p99_ms']:.1f} ms"))
    lines = ["| measurement | p50 | p99 |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=0, help="0: the whole trace")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--postgres", action="store_true",
                        help="run on a throwaway PostgreSQL cluster (bench/postgres.py)")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--restores", type=int, default=20)
    parser.add_argument("--snapshot-every", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    trace = load_trace()
    count = args.patches or len(trace.patches)
    folder = Path(tempfile.mkdtemp(prefix="palimpsest-read-bench-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
    postgres = None
    if args.postgres:
        from bench.postgres import TempPostgres
        from tests.support.services import free_port

        postgres = TempPostgres(free_port())
        postgres.start()
        url = postgres.createdb()
    try:
        return run(args, trace, count, url)
    finally:
        if postgres is not None:
            postgres.stop()


def run(args: argparse.Namespace, trace: Trace, count: int, url: str) -> int:
    figures: dict[str, Any] = asyncio.run(build_log(url, trace, count, args.snapshot_every))
    print(f"log: {int(figures['events'])} events; generated in {figures['generate_s']:.1f} s, "
          f"appended in {figures['append_s']:.1f} s, projected in {figures['project_s']:.1f} s",
          flush=True)
    env = {"PALIMPSEST_SNAPSHOT_EVERY": str(args.snapshot_every)}
    with ServerProcess(url, env=env) as server:
        figures.update(asyncio.run(
            measure(server, trace, int(figures["events"]), args.samples, args.restores)))
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
