"""Benchmark Palimpsest against @y/websocket-server and pycrdt-websocket, in one run.

    .venv/bin/python bench/run.py                      # everything, full trace (takes a while)
    .venv/bin/python bench/run.py --patches 20000 --fanout-seconds 5     # a quick look
    .venv/bin/python bench/run.py --servers y-websocket-server,pycrdt-websocket --k 1

For every measurement each server is started fresh, as its own process, on 127.0.0.1; the
clients are stock y-websocket providers in one Node process (bench/replay.mjs, bench/fanout.mjs),
identical for every server. Prints Markdown tables (with ratios against @y/websocket-server from
this same run) and writes the raw figures to bench/results/. Method: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import profile, report  # noqa: E402
from bench.servers import (  # noqa: E402
    ALLOWED_CPUS,
    CLIENT_CPUS,
    NODE_DIR,
    REFERENCE,
    SERVER_CPUS,
    SERVERS,
    ServerFactory,
    pinner,
    wait_for_quiet,
    watched,
)

BENCH = REPO / "bench"
DEFAULT_TRACE = REPO / "tests" / "data" / "editing-traces" / "automerge-paper.json.gz"


def ensure_node_modules() -> None:
    """`npm ci` in tests/node when needed; bench/node_modules is a symlink to it."""
    if not (NODE_DIR / "node_modules" / "yjs").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)
    link = BENCH / "node_modules"
    if not link.exists():
        link.symlink_to(Path("..") / "tests" / "node" / "node_modules")


def run_driver(script: str, args: list[str], timeout: float, pin: bool) -> dict[str, Any]:
    """Run a Node driver (pinned to the client CPU); retry once if node_modules was missing."""
    result = _run_driver_once(script, args, timeout, pin)
    if "ERR_MODULE_NOT_FOUND" in str(result.get("error", "")):
        # tests/node is shared: someone's `npm ci` there empties node_modules for a while.
        time.sleep(20)
        ensure_node_modules()
        result = _run_driver_once(script, args, timeout, pin)
        result["retried"] = "node_modules was missing at first"
    return result


def _run_driver_once(script: str, args: list[str], timeout: float, pin: bool) -> dict[str, Any]:
    """Run a Node driver (pinned to the client CPU) and parse the JSON line it prints."""
    argv = ["node", str(BENCH / script), *args]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=BENCH,
            preexec_fn=pinner(CLIENT_CPUS) if pin else None,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has killed the driver (by its PID) already
        return {"ok": False, "error": f"driver did not finish within {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    return {"ok": False, "error": f"driver printed no result (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-1500:]}"}  # fmt: skip


def log_tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}

    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    out["node"] = cmd("node", "--version")
    out["palimpsest_commit"] = cmd("git", "-C", str(REPO), "rev-parse", "--short", "HEAD")
    for pkg in ("yjs", "y-websocket", "ws", "@y/websocket-server"):
        try:
            meta = json.loads((NODE_DIR / "node_modules" / pkg / "package.json").read_text())
            out[pkg] = meta["version"]
        except (OSError, ValueError, KeyError):
            out[pkg] = "?"
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("pycrdt", "pycrdt-websocket", "uvicorn", "websockets"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "?"
    return out


def _interrupt(signum: int, _frame: object) -> None:
    # Turn SIGTERM (and SIGINT, which a background job inherits as ignored) into an exception,
    # so the `finally` blocks stop every server, driver and the Postgres cluster by their PIDs.
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated, from: {', '.join(SERVERS)}")  # fmt: skip
    parser.add_argument("--patches", type=int, default=0,
                        help="replay the first N patches of the trace (0: all)")  # fmt: skip
    parser.add_argument("--k", default="1,4", help="client counts for the replay, e.g. 1,4")
    parser.add_argument("--window", type=int, default=4000,
                        help="a writer runs at most this many patches ahead of the slowest other "
                        "client (0: open-loop flood)")  # fmt: skip
    parser.add_argument("--chunk", type=int, default=2000,
                        help="patches per chunk when K>1 clients share the trace")  # fmt: skip
    parser.add_argument("--fanout-seconds", type=float, default=20,
                        help="duration of the fan-out measurement (0: skip it)")  # fmt: skip
    parser.add_argument("--fanout-writers", type=int, default=5)
    parser.add_argument("--fanout-readers", type=int, default=20)
    parser.add_argument("--fanout-rate", type=float, default=20, help="updates/s per writer")
    parser.add_argument("--deflate", choices=("offer", "off", "both"), default="offer",
                        help="clients offer permessage-deflate (as browsers do), or not, or "
                        "both (each measurement twice)")  # fmt: skip
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--timeout", type=float, default=900,
                        help="bound on one replay measurement, seconds")  # fmt: skip
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin servers to CPU 0 and clients to CPU 1")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each case N times (servers interleaved); report the "
                        "median run")  # fmt: skip
    parser.add_argument("--quiet-below", type=float, default=0.5,
                        help="before each measurement, wait until other work on the machine uses "
                        "fewer CPUs than this (the machine is shared)")  # fmt: skip
    parser.add_argument("--quiet-wait", type=float, default=60,
                        help="longest wait for that, seconds (0: never wait)")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="sample Python servers with py-spy during each measurement; "
                        "summaries go next to the raw results")  # fmt: skip
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()

    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in servers if s.removesuffix("-baseline") not in SERVERS]
    if unknown:
        parser.error(f"unknown server(s) {unknown}; known: {', '.join(SERVERS)}")
    ks = [int(k) for k in args.k.split(",") if k.strip()]
    variants = ["offer", "off"] if args.deflate == "both" else [args.deflate]
    pin = args.pin and len(ALLOWED_CPUS) >= 2
    if pin:
        os.sched_setaffinity(0, CLIENT_CPUS)  # this harness is client side too

    ensure_node_modules()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.out / f"{stamp}-logs"
    log_dir.mkdir()
    meta = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "trace": str(args.trace),
        "patches": args.patches or "all",
        "pinning": (
            {"server_cpus": sorted(SERVER_CPUS), "client_cpus": sorted(CLIENT_CPUS)}
            if pin
            else None
        ),
        "cpus": os.cpu_count(),
        "versions": versions(),
    }
    results: list[dict[str, Any]] = []
    out_json = args.out / f"{stamp}.json"

    def save() -> None:
        out_json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))

    scenarios: list[tuple[str, list[str], str, float]] = []
    for k in ks:
        driver_args = ["--trace", str(args.trace), "--k", str(k), "--chunk", str(args.chunk),
                       "--window", str(args.window), "--timeout", str(args.timeout)]  # fmt: skip
        if args.patches:
            driver_args += ["--patches", str(args.patches)]
        scenarios.append((f"replay-k{k}", driver_args, "replay.mjs", args.timeout + 120))
    if args.fanout_seconds > 0:
        drain = 10.0
        driver_args = ["--writers", str(args.fanout_writers), "--readers", str(args.fanout_readers),
                       "--rate", str(args.fanout_rate), "--seconds", str(args.fanout_seconds),
                       "--drain", str(drain)]  # fmt: skip
        scenarios.append(("fanout", driver_args, "fanout.mjs", args.fanout_seconds + drain + 120))

    factory = ServerFactory(log_dir, pin)
    try:
        for variant in variants:
            for scenario, driver_args, script, timeout in scenarios:
                # servers interleaved within each round, so slow drifts in the machine's load
                # spread over all of them
                for rnd, name in ((r, n) for r in range(args.repeat) for n in servers):
                    row: dict[str, Any] = {"server": name, "scenario": scenario,
                                           "deflate": variant, "round": rnd}  # fmt: skip
                    label = f"[{variant}] {scenario} on {name} (round {rnd + 1}/{args.repeat})"
                    print(f"... {label}", file=sys.stderr, flush=True)
                    if args.quiet_wait > 0:
                        waited, load = wait_for_quiet(args.quiet_below, args.quiet_wait)
                        row["quiet_wait_s"] = round(waited, 1)
                        row["load_before"] = round(load, 2)
                    try:
                        server = factory.start(name)
                    except Exception as e:  # a server that can't start is a result, not a crash
                        row.update(ok=False, error=f"server did not start: {e}")
                        results.append(row)
                        print(f"    {row['error']}", file=sys.stderr, flush=True)
                        save()
                        continue
                    try:
                        doc = f"bench-{scenario}-{variant}-{int(time.time() * 1000) % 10**8}"
                        prep = server.prepare_document(doc)
                        if prep:
                            row["prepare_document"] = prep
                        argv = ["--url", server.ws_url, "--doc", doc, *driver_args]
                        if variant == "off":
                            argv.append("--no-deflate")
                        prof_out = log_dir / f"{name}-{scenario}-{variant}-r{rnd}.pyspy.txt"
                        spy = (
                            profile.profiled(
                                server.pid, prof_out, pinner(CLIENT_CPUS) if pin else None
                            )
                            if args.profile and name != "y-websocket-server"
                            else contextlib.nullcontext(None)
                        )
                        with watched(server) as stats, spy as prof_path:
                            res = run_driver(script, argv, timeout, pin)
                        if prof_path is not None and prof_path.exists():
                            summary = log_dir / (
                                prof_path.name.removesuffix(".txt") + ".summary.txt"
                            )
                            summary.write_text(profile.summarise(prof_path))
                            row["profile_summary"] = str(summary)
                        row.update(res)
                        row.update(stats)
                        # CPU used by anything but this benchmark (other people's jobs on a
                        # shared machine): a run with much of it is suspect.
                        ours = stats["server_cpu_s"] + stats.get("db_cpu_s", 0.0)
                        ours += float(res.get("client_cpu_s") or 0.0)
                        row["other_cpu_s"] = max(0.0, stats["machine_busy_cpu_s"] - ours)
                        if server.proc.poll() is not None:
                            row["ok"] = False
                            row["error"] = (row.get("error") or "") + (
                                f" server exited with {server.proc.returncode}"
                            )
                    finally:
                        server.stop()
                    if not row.get("ok"):
                        row["server_log_tail"] = log_tail(server.log_path)
                    results.append(row)
                    save()
                    print("    " + report.one_line(row), file=sys.stderr, flush=True)
    finally:
        factory.close()
        meta["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        save()

    print(report.markdown(meta, results, servers, REFERENCE))
    shown = out_json.relative_to(REPO) if out_json.is_relative_to(REPO) else out_json
    print(f"\nraw results: {shown}")
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
