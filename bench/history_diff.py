"""Word diffs on the full automerge-paper log (259,778 events), against the replaying diff.

    .venv/bin/python bench/history_diff.py              # SQLite
    .venv/bin/python bench/history_diff.py --postgres   # a throwaway PostgreSQL 15

Builds the log and projects it (bench/read_side.py's `build_log`), then, on the same
database and the same random pairs of seqs:

1. in this process, per diff: the word diff `Queries.diff_here` (texts at both seqs, diffed in
   words; authors from a replay when the range is at most 2,000 events) and its peer, the
   replaying diff that `diff` answered before (`Queries.replayed_diff`: the text at `from`
   plus every event up to `to`), wall and CPU time; pairs uniform over the whole log
   ("any two seqs") and short ranges (a revision's own changes, up to 2,000 events);
2. through a real `palimpsest serve` (its read workers), the HTTP `diff` on uniform pairs,
   while a probe times `GET /healthz` on the same event loop every 10 ms: if a diff held the
   loop, the probe's p99 would show it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.read_side import DOC, build_log, percentiles  # noqa: E402
from server.read.freshness import Freshness  # noqa: E402
from server.read.queries import ATTRIBUTED_EVENTS, Queries  # noqa: E402
from storage.database import open_database  # noqa: E402
from storage.event_store import EventStore  # noqa: E402
from storage.read_model import ReadModel  # noqa: E402
from tests.support.replay import load_trace  # noqa: E402
from tests.support.server_process import ServerProcess  # noqa: E402


def pairs(rng: random.Random, head: int, n: int, span: int | None) -> list[tuple[int, int]]:
    out = []
    for _ in range(n):
        if span is None:
            a, b = sorted(rng.randint(0, head) for _ in range(2))
        else:
            a = rng.randint(0, head - 1)
            b = min(head, a + rng.randint(1, span))
        out.append((a, b))
    return out


async def in_process(url: str, head: int, samples: int, peer_samples: int) -> dict[str, Any]:
    db = open_database(url)
    read_model = ReadModel(db)
    queries = Queries(EventStore(db), read_model, Freshness(read_model, timeout=30))
    rng = random.Random(20261130)
    out: dict[str, Any] = {}
    try:
        await queries.diff_here(DOC, 0, head)  # warm the connections and caches alike
        for label, span in (("uniform", None), ("short", ATTRIBUTED_EVENTS)):
            chosen = pairs(rng, head, samples, span)
            for name, run, count in (("word", queries.diff_here, samples),
                                     ("replayed", queries.replayed_diff, peer_samples)):
                walls: list[float] = []
                cpus: list[float] = []
                for a, b in chosen[:count]:
                    wall, cpu = time.perf_counter(), time.process_time()
                    answer = await run(DOC, a, b)
                    cpus.append(time.process_time() - cpu)
                    walls.append(time.perf_counter() - wall)
                    assert answer["to"] == b
                out[f"{label}_{name}_wall"] = percentiles(walls)
                out[f"{label}_{name}_cpu"] = percentiles(cpus)
    finally:
        await db.dispose()
    return out


async def over_http(server: ServerProcess, head: int, samples: int) -> dict[str, Any]:
    rng = random.Random(7)
    chosen = pairs(rng, head, samples, None)
    probes: list[float] = []
    stop = asyncio.Event()

    async def probe(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await http.get("/healthz")
            probes.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    async with httpx.AsyncClient(base_url=server.http_url, timeout=60) as http, \
            httpx.AsyncClient(base_url=server.http_url, timeout=60) as side:
        await http.get(f"/api/documents/{DOC}/diff", params={"from": 0, "to": head})
        prober = asyncio.create_task(probe(side))
        times: list[float] = []
        for a, b in chosen:
            started = time.perf_counter()
            answer = await http.get(f"/api/documents/{DOC}/diff", params={"from": a, "to": b})
            times.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
        stop.set()
        await prober
    return {"http_diff": percentiles(times), "healthz_during": percentiles(probes)}


def table(f: dict[str, Any]) -> str:
    lines = ["| measurement | p50 | p99 | max |", "|---|---|---|---|"]
    for key, label in (
            ("uniform_word_wall", "word diff, any two seqs, wall"),
            ("uniform_word_cpu", "word diff, any two seqs, CPU"),
            ("uniform_replayed_wall", "replaying diff (peer), any two seqs, wall"),
            ("uniform_replayed_cpu", "replaying diff (peer), any two seqs, CPU"),
            ("short_word_wall", "word diff, ranges up to 2,000 events (attributed), wall"),
            ("short_word_cpu", "word diff, ranges up to 2,000 events (attributed), CPU"),
            ("short_replayed_wall", "replaying diff (peer), ranges up to 2,000 events, wall"),
            ("short_replayed_cpu", "replaying diff (peer), ranges up to 2,000 events, CPU"),
            ("http_diff", "HTTP `diff`, any two seqs, through the read workers"),
            ("healthz_during", "`GET /healthz` on the same server meanwhile")):
        x = f[key]
        lines.append(f"| {label} (n={x['n']}) | {x['p50_ms']:.1f} ms | {x['p99_ms']:.1f} ms "
                     f"| {x['max_ms']:.1f} ms |")
    for label in ("uniform", "short"):
        word, peer = f[f"{label}_word_cpu"], f[f"{label}_replayed_cpu"]
        ratio = peer["p50_ms"] / word["p50_ms"]
        lines.append(f"| {label}: replaying / word, CPU p50 | {ratio:.1f}x "
                     f"| p99 {peer['p99_ms'] / word['p99_ms']:.1f}x | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=0, help="0: the whole trace")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--peer-samples", type=int, default=40,
                        help="pairs the (slow) replaying peer runs on: the first of the same")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--database-url", default=None,
                        help="an existing database this script built: measure it again")
    args = parser.parse_args()
    trace = load_trace()
    count = args.patches or len(trace.patches)
    folder = Path(tempfile.mkdtemp(prefix="palimpsest-diff-bench-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
    postgres = None
    if args.postgres:
        from bench.postgres import TempPostgres
        from tests.support.services import free_port

        postgres = TempPostgres(free_port())
        postgres.start()
        url = postgres.createdb()
    try:
        figures: dict[str, Any] = {"project_s": 0.0, "events": float(count)}
        if args.database_url is None:
            figures = asyncio.run(build_log(url, trace, count, 1000))
        head = int(figures["events"])
        print(f"log: {head} events, projected in {figures['project_s']:.0f} s", flush=True)
        figures.update(asyncio.run(in_process(url, head, args.samples, args.peer_samples)))
        with ServerProcess(url, env={"PALIMPSEST_SNAPSHOT_EVERY": "1000"}) as server:
            figures.update(asyncio.run(over_http(server, head, args.samples)))
        print(table(figures))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        if postgres is not None:
            postgres.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
