"""Memory: server RSS with 2,000 open documents and 2 idle stock connections each, and per idle
connection, beside @y/websocket-server in the same run (issue 15, part 5).

    .venv/bin/python bench/memory.py                         # 2,000 documents x 2, 2 rounds
    .venv/bin/python bench/memory.py --docs 200 --rounds 1   # a quick look

Each round starts every server fresh, samples its RSS idle, then connects the clients
(bench/idle.mjs: stock y-websocket providers, presence on, in waves of 200, each synced), lets
the server settle and samples its RSS again for a few seconds (the median). Per connection is
(loaded - idle) / connections. Palimpsest runs with its defaults except the per-address cap
(every client comes from 127.0.0.1). Prints a Markdown table with ratios to the reference
from the same round; raw rows go to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.run import BENCH, ensure_node_modules  # noqa: E402
from bench.scale import Row, run_rounds, table  # noqa: E402
from bench.servers import (  # noqa: E402
    ALLOWED_CPUS,
    CLIENT_CPUS,
    REFERENCE,
    RunningServer,
    ServerFactory,
    pinner,
)

COLUMNS = [
    ("rss_idle_mib", "RSS idle MiB", ".1f"),
    ("rss_loaded_mib", "RSS loaded MiB", ".1f"),
    ("per_connection_kib", "per idle connection KiB", ".1f"),
    ("connect_s", "connect s", ".0f"),
]


def rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def sample(pid: int, seconds: float) -> float:
    values = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(rss_mib(pid))
        time.sleep(0.25)
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default=f"palimpsest-sqlite,{REFERENCE}")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--per-doc", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before sampling")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for Palimpsest servers (repeatable)")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    env = dict(item.split("=", 1) for item in args.env)
    pin = args.pin and len(ALLOWED_CPUS) >= 2
    if pin:
        os.sched_setaffinity(0, CLIENT_CPUS)
    ensure_node_modules()
    connections = args.docs * args.per_doc

    def case(server: RunningServer, rnd: int) -> Row:
        time.sleep(2)
        idle = sample(server.pid, 3)
        argv = ["node", str(BENCH / "idle.mjs"), "--url", server.ws_url, "--docs", str(args.docs),
                "--per-doc", str(args.per_doc), "--prefix", f"mem{rnd}", "--hold", "900"]
        driver = subprocess.Popen(argv, cwd=BENCH, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  preexec_fn=pinner(CLIENT_CPUS) if pin else None)
        row: Row = {"connections": connections, "documents": args.docs,
                    "rss_idle_mib": idle}
        try:
            assert driver.stdout is not None and driver.stdin is not None
            ready = json.loads(driver.stdout.readline() or '{"ok": false}')
            if not ready.get("ready"):
                row.update(ok=False, error=str(ready.get("error", "driver failed")))
                return row
            row["connect_s"] = ready["connect_s"]
            time.sleep(args.settle)
            loaded = sample(server.pid, 5)
            row.update(rss_loaded_mib=loaded,
                       per_connection_kib=(loaded - idle) * 1024 / connections)
            driver.stdin.close()
            end = json.loads(driver.stdout.readline() or '{"ok": false}')
            row.update(ok=bool(end.get("ok")), closes=end.get("closes"))
            if not end.get("ok"):
                row["error"] = str(end.get("error") or f"{end.get('closes')} connections closed")
        finally:
            try:
                driver.wait(60)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.wait()
        return row

    factory = ServerFactory(REPO / "bench" / "results", pin)
    try:
        rows = run_rounds("memory", servers, args.rounds, case, factory=factory, env=env)
    finally:
        factory.close()
    print(f"{args.docs} documents x {args.per_doc} idle stock connections ({connections})\n")
    print(table(rows, servers, COLUMNS))
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
