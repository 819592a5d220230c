"""One writer, a thousand stock observers on one document: delivery latency, same run as
@y/websocket-server (issue 15, part 2).

    .venv/bin/python bench/observers.py                          # 1,000 observers, 2 rounds
    .venv/bin/python bench/observers.py --observers 200 --seconds 5 --rounds 1   # a quick look

Every client is a stock y-websocket provider (bench/fanout.mjs, all in one Node process on the
client CPU), presence on with a user name as editors set it, permessage-deflate offered as
browsers do. The writer inserts a token `rate` times a second; every observer timestamps every
token it sees; all must arrive and all texts must agree. Servers start fresh for each round
with their defaults, except that Palimpsest's per-address cap and message-rate limits are lifted
(the whole load comes from 127.0.0.1 and replays at machine speed). Prints a Markdown table with
each figure's ratio to the reference in the same round; raw rows go to bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import profile  # noqa: E402
from bench.run import ensure_node_modules, run_driver  # noqa: E402
from bench.scale import RESULTS, Row, run_rounds, table  # noqa: E402
from bench.servers import (  # noqa: E402
    ALLOWED_CPUS,
    CLIENT_CPUS,
    REFERENCE,
    RunningServer,
    ServerFactory,
    watched,
)

COLUMNS = [
    ("p50_ms", "p50 ms", ".0f"),
    ("p99_ms", "p99 ms", ".0f"),
    ("max_ms", "max ms", ".0f"),
    ("connect_s", "all connected s", ".1f"),
    ("server_cpu_s", "server CPU s", ".1f"),
    ("server_peak_rss_mib", "server peak RSS MiB", ".0f"),
    ("client_cpu_s", "client CPU s", ".1f"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default=f"palimpsest-sqlite,{REFERENCE}")
    parser.add_argument("--observers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10, help="tokens per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for Palimpsest servers (repeatable)")
    parser.add_argument("--profile", action="store_true",
                        help="sample Palimpsest with py-spy; summaries go to bench/results/")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    servers = [s for s in args.servers.split(",") if s]
    pin = args.pin and len(ALLOWED_CPUS) >= 2
    if pin:
        import os

        os.sched_setaffinity(0, CLIENT_CPUS)
    ensure_node_modules()
    drain = 15.0

    def case(server: RunningServer, rnd: int) -> Row:
        doc = f"observers-{rnd}-{int(time.time() * 1000) % 10**8}"
        server.prepare_document(doc)
        argv = ["--url", server.ws_url, "--doc", doc, "--writers", "1",
                "--readers", str(args.observers), "--rate", str(args.rate),
                "--seconds", str(args.seconds), "--drain", str(drain), "--presence", "1",
                "--connect-timeout", "300", "--connect-wave", "100"]  # fmt: skip
        spy = (profile.profiled(server.pid, RESULTS / f"{doc}-{server.name}.pyspy.txt")
               if args.profile and server.name != REFERENCE else contextlib.nullcontext(None))
        with watched(server) as stats, spy as recorded:
            result = run_driver("fanout.mjs", argv, args.seconds + drain + 900, pin)
        if recorded is not None and recorded.exists():
            summary = recorded.with_suffix(".summary.txt")
            summary.write_text(profile.summarise(recorded))
            stats["profile"] = str(summary.relative_to(REPO))
        return {**result, **stats}

    factory = ServerFactory(REPO / "bench" / "results", pin)
    try:
        rows = run_rounds("observers", servers, args.rounds, case, factory=factory,
                          env=env)
    finally:
        factory.close()
    print(f"One writer at {args.rate:g} tokens/s for {args.seconds:g} s, {args.observers} "
          "observers (presence on)\n")
    print(table(rows, servers, COLUMNS))
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
