"""Join storm: 150 stock clients open, at the same instant, the whole automerge-paper document;
Palimpsest with it cold (not loaded), @y/websocket-server with it warm in memory, same run
(issue 15, part 3).

    .venv/bin/python bench/join_storm.py                       # 150 clients, 3 rounds
    .venv/bin/python bench/join_storm.py --patches 20000 --rounds 1      # a quick look

The log is built once (bench/read_side.py's way: one event per patch of the trace, appended to
a fresh SQLite store, then projected, so the server's projector has nothing to do) and copied
for every round, so each Palimpsest round starts a fresh process on a store where the document
is not loaded. `palimpsest-warm` is the same with a client holding the document open before the
storm. The reference gets the same document (the state Palimpsest holds, exported as one Yjs
update) from a loader client that stays connected. Every joiner is timed from its connect() to
holding the whole text (bench/join_storm.mjs, one Node process on the client CPU); all must
agree. Prints a Markdown table with ratios to the reference from the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pycrdt import Doc, Text  # noqa: E402

from bench.read_side import DOC, build_log  # noqa: E402
from bench.run import ensure_node_modules, run_driver  # noqa: E402
from bench.scale import Row, run_rounds, table  # noqa: E402
from bench.servers import (  # noqa: E402
    ALLOWED_CPUS,
    CLIENT_CPUS,
    REFERENCE,
    RunningServer,
    ServerFactory,
    watched,
)
from server.read.insights import InsightFollower  # noqa: E402
from server.ydoc import PendingUpdates, read_history, replay  # noqa: E402
from storage.database import open_database  # noqa: E402
from storage.event_store import EventStore  # noqa: E402
from tests.support.replay import load_trace  # noqa: E402

COLUMNS = [
    ("p50_s", "p50 s", ".2f"),
    ("p99_s", "p99 s", ".2f"),
    ("max_s", "last s", ".2f"),
    ("server_cpu_s", "server CPU s", ".2f"),
    ("server_peak_rss_mib", "server peak RSS MiB", ".0f"),
    ("client_cpu_s", "client CPU s", ".1f"),
]


async def fold_insights(url: str) -> int:
    """Bring the insight read models (status, activity, search) up to the log's head, as a
    long-running server has them: otherwise every fresh server folds the whole log in the
    background during the storm (bench/read_side.py's build projects, but predates them)."""
    db = open_database(url)
    try:
        follower = InsightFollower(EventStore(db), db)
        folded = 0
        while (more := await follower.catch_up()) > 0:
            folded += more
        return folded
    finally:
        await db.dispose()


async def export_state(url: str) -> tuple[bytes, int]:
    """The document's whole state as one Yjs update, and its length in UTF-16 units."""
    db = open_database(url)
    try:
        history = await read_history(EventStore(db), DOC)
    finally:
        await db.dispose()
    doc: Doc[Any] = Doc()
    text = doc.get("content", type=Text)
    pending = PendingUpdates()
    replay(doc, history.state, history.events, pending)
    if pending:
        raise RuntimeError("the built document has pending structs")
    return doc.get_update(), len(str(text).encode("utf-16-le")) // 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default=f"palimpsest-sqlite,palimpsest-warm,{REFERENCE}",
                        help="palimpsest-sqlite (cold), palimpsest-warm, y-websocket-server, "
                        "and -baseline variants of the Palimpsest ones")
    parser.add_argument("--clients", type=int, default=150)
    parser.add_argument("--patches", type=int, default=0, help="0: the whole trace")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", type=Path, default=None,
                        help="a store built by an earlier run (kept with --keep-store)")
    parser.add_argument("--keep-store", type=Path, default=None,
                        help="copy the built store here for later runs")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    pin = args.pin and len(ALLOWED_CPUS) >= 2
    ensure_node_modules()

    work = Path(tempfile.mkdtemp(prefix="palimpsest-join-storm-"))
    try:
        base = work / "base.sqlite3"
        if args.store is not None:
            shutil.copy(args.store, base)
        else:
            trace = load_trace()
            count = args.patches or len(trace.patches)
            built = asyncio.run(build_log(f"sqlite+aiosqlite:///{base}", trace, count, 1000))
            print(f"log: {int(built['events'])} events, built in "
                  f"{built['append_s'] + built['project_s']:.0f} s", file=sys.stderr)
            if args.keep_store is not None:
                shutil.copy(base, args.keep_store)
        folded = asyncio.run(fold_insights(f"sqlite+aiosqlite:///{base}"))
        if folded:
            print(f"insights: {folded} events folded", file=sys.stderr)
            if args.keep_store is not None:
                shutil.copy(base, args.keep_store)
        state = work / "state.bin"
        update, length = asyncio.run(export_state(f"sqlite+aiosqlite:///{base}"))
        state.write_bytes(update)
        print(f"document: {length} characters, state {state.stat().st_size} bytes",
              file=sys.stderr)
        if pin:
            os.sched_setaffinity(0, CLIENT_CPUS)

        def case(server: RunningServer, warm: bool) -> Row:
            argv = ["--url", server.ws_url, "--doc", DOC, "--clients", str(args.clients),
                    "--expect-length", str(length), "--timeout", "300"]  # fmt: skip
            if server.name == REFERENCE:
                argv += ["--load", str(state)]
            elif warm:
                # a client holds the document open: the storm finds it loaded
                argv += ["--load", str(work / "empty.bin")]
            with watched(server) as stats:
                result = run_driver("join_storm.mjs", argv, 420, pin)
            return {**result, **stats, "document_chars": length}

        (work / "empty.bin").write_bytes(b"\x00\x00")
        factory = ServerFactory(REPO / "bench" / "results", pin)
        rounds: list[Row] = []
        try:
            for rnd in range(args.rounds):
                for name in servers:
                    copy = work / f"round{rnd}-{name}.sqlite3"
                    env: dict[str, str] = {}
                    if name.startswith("palimpsest-"):
                        shutil.copy(base, copy)
                        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{copy}"
                    variant = name.replace("palimpsest-warm", "palimpsest-sqlite")
                    rows = run_rounds("join-storm", [variant], 1,
                                      lambda s, _r, warm=name != variant: case(s, warm),
                                      factory=factory, env=env)
                    for row in rows:
                        row.update(server=name, round=rnd)
                    rounds += rows
                    copy.unlink(missing_ok=True)
        finally:
            factory.close()
        print(f"{args.clients} stock clients opening a {length}-character document at once\n")
        print(table(rounds, servers, COLUMNS))
        return 0 if all(r.get("ok") for r in rounds) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
