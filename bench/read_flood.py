"""Edit latency under a flood of costly reads, for each way of running heavy reads.

    .venv/bin/python bench/read_flood.py                  # off, thread, process
    .venv/bin/python bench/read_flood.py --pools process --workers 2

Builds the 20,000-event document of tests/security/test_read_flood.py once, then for each
pool (PALIMPSEST_READ_POOL) starts a real server on it and measures, over the WebSocket, the
latency of single keystrokes from a writer to a peer on another document, without load and
while six read-token clients loop on the document's full diff. Prints one table row per pool.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.conftest import new_sqlite_url  # noqa: E402
from tests.security.conftest import SECRET  # noqa: E402
from tests.security.test_read_flood import EVENTS, build_big_document, measure  # noqa: E402
from tests.support.replay import load_trace  # noqa: E402
from tests.support.server_process import ServerProcess  # noqa: E402


def row(pool: str, workers: int, f: dict[str, Any]) -> str:
    u, lo = f["unloaded"], f["loaded"]
    d = f["diff_seconds"] or {"n": 0, "p50_ms": 0.0}
    return (f"| {pool} | {workers} | {u['p50_ms']:.0f} / {u['p99_ms']:.0f} | "
            f"{lo['p50_ms']:.0f} / {lo['p99_ms']:.0f} / {lo['max_ms']:.0f} | {lo['n']} | "
            f"{d['n']} ({d['p50_ms']:.0f} ms p50) | {f['diffs'].get(503, 0)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pools", default="off,thread,process")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = new_sqlite_url(Path(folder))
        expected = asyncio.run(build_big_document(url, load_trace("automerge-paper")))
        rows = ["| pool | workers | unloaded p50 / p99 ms | flooded p50 / p99 / max ms | "
                "keystrokes | diffs answered | diffs refused (503) |",
                "|---|---|---|---|---|---|---|"]
        for pool in args.pools.split(","):
            env = {"PALIMPSEST_SECRET": SECRET, "PALIMPSEST_READ_POOL": pool,
                   "PALIMPSEST_READ_WORKERS": str(args.workers)}
            with ServerProcess(url, env=env) as server:
                figures = asyncio.run(measure(server, EVENTS, expected,
                                              flood_seconds=args.seconds))
            print(pool, figures, file=sys.stderr)
            rows.append(row(pool, args.workers, figures))
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
