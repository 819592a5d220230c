"""The servers under test: how to start each one fresh on 127.0.0.1, and how to watch it.

Every server is its own process, started by its own executable (never through npm, npx or a
shell), so the PID held here is the server's: its memory is sampled by that PID and it is ended
by that PID. The server side is pinned to CPU 0 and the clients to CPU 1 (see docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.postgres import TempPostgres

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
NODE_DIR = REPO / "tests" / "node"
YWS_SERVER_JS = NODE_DIR / "node_modules" / "@y" / "websocket-server" / "src" / "server.js"

SERVER_CPUS = {0}
CLIENT_CPUS = {1}

# name -> what it is, in the order they are reported. Clients offer permessage-deflate as
# browsers do; whether it is used is the server's choice, so the deflate question is asked
# through server variants (Palimpsest leaves it off by default, uvicorn turns it on).
SERVERS = {
    "palimpsest-sqlite": "Palimpsest, event log in SQLite (defaults: no permessage-deflate)",
    "palimpsest-postgres": "Palimpsest, event log in PostgreSQL 15",
    "palimpsest-postgres-write": "Palimpsest on PostgreSQL, --role write: the write path alone "
    "(no projector in the process; the read side would run as its own --role projector)",
    "palimpsest-sqlite-deflate": "Palimpsest on SQLite with PALIMPSEST_WS_DEFLATE=1",
    "y-websocket-server": "@y/websocket-server 0.1.1 (Node, in memory; the reference)",
    "pycrdt-websocket": "pycrdt-websocket 0.16.5 on uvicorn, in memory (uvicorn default: deflate)",
    "pycrdt-websocket-nodeflate": "the same with --no-ws-per-message-deflate",
}
# A trace replayed at machine speed is not a person typing: Palimpsest's per-connection rate
# limits (meant for abuse) would only measure the limiter, so the benchmark lifts them.
PALIMPSEST_BENCH_ENV = {
    "PALIMPSEST_MAX_MESSAGES_PER_SECOND": "1000000000",
    "PALIMPSEST_MAX_BYTES_PER_SECOND": "100000000000",
}
REFERENCE = "y-websocket-server"
# `<palimpsest variant>-baseline` runs that variant from another checkout (an earlier commit,
# say `git worktree add /tmp/base <rev>`), so a change is measured against what it replaced in
# the same run: PALIMPSEST_BASELINE_TREE=/tmp/base bench/run.py --servers \
#   palimpsest-postgres,palimpsest-postgres-baseline,y-websocket-server
BASELINE_TREE = os.environ.get("PALIMPSEST_BASELINE_TREE")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The CPUs this process could use when it started (before run.py pins itself to CLIENT_CPUS).
ALLOWED_CPUS = set(os.sched_getaffinity(0))


def pinner(cpus: set[int]) -> Callable[[], None] | None:
    """A preexec_fn that pins the child (and all it starts) to `cpus`; None where that can't be."""
    if len(ALLOWED_CPUS) < 2 or not cpus <= ALLOWED_CPUS:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {timeout} s")


def http_json(method: str, url: str, body: object | None = None, timeout: float = 10) -> object:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


class Sampler(threading.Thread):
    """Samples a process's RSS every `interval` seconds and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


def machine_busy_seconds() -> float:
    """CPU seconds spent busy on the whole machine (all CPUs) since boot.

    Steal (a hypervisor running someone else) is left out, and so are guest times, which Linux
    already counts in user and nice.
    """
    t = psutil.cpu_times()
    not_busy = ("idle", "iowait", "steal", "guest", "guest_nice")
    return float(sum(v for k, v in t._asdict().items() if k not in not_busy))


def wait_for_quiet(threshold: float, max_wait: float, window: float = 2.0) -> tuple[float, float]:
    """Wait (at most `max_wait` s) until the machine's other load stays under `threshold` CPUs
    for `window` s. Nothing of the benchmark runs meanwhile. Returns (waited s, last load)."""
    t0 = time.monotonic()
    load = float("nan")
    while True:
        busy0, w0 = machine_busy_seconds(), time.monotonic()
        time.sleep(window)
        load = (machine_busy_seconds() - busy0) / (time.monotonic() - w0)
        waited = time.monotonic() - t0
        if load < threshold or waited >= max_wait:
            return waited, load


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


@dataclass
class RunningServer:
    """A started server: its process, the `ws://` base URL clients use, and how to watch it."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    http_url: str
    ws_url: str
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    helper_pids: Callable[[], list[int]] = list

    @property
    def pid(self) -> int:
        return self.proc.pid

    def prepare_document(self, doc: str) -> str | None:
        """Palimpsest: create the document first (ignored if the server opens it on connect)."""
        if not self.name.startswith("palimpsest-"):
            return None
        try:
            http_json("POST", f"{self.http_url}/api/documents", {"title": doc, "id": doc})
        except urllib.error.HTTPError as e:
            return f"POST /api/documents: HTTP {e.code}"
        except (OSError, ValueError) as e:
            return f"POST /api/documents: {e}"
        return None

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL after 10 s; then remove what was made for it."""
        try:
            for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(grace)
        finally:
            for fn in self.cleanup:
                fn()


class ServerFactory:
    """Starts each kind of server fresh; holds the one Postgres cluster of the run."""

    def __init__(self, log_dir: Path, pin: bool, pg_port: int | None = None) -> None:
        self.log_dir = log_dir
        self.pin = pin
        self.postgres: TempPostgres | None = None
        self._pg_port = pg_port
        self._n = 0

    def close(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def _postgres(self) -> TempPostgres:
        if self.postgres is None:
            pin = pinner(SERVER_CPUS) if self.pin else None
            pg = TempPostgres(self._pg_port or free_port(), pin)
            pg.start()
            self.postgres = pg
        return self.postgres

    def postgres_pids(self) -> list[int]:
        if self.postgres is None or self.postgres.pid is None:
            return []
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(self.postgres.pid)
            return [p.pid, *(c.pid for c in p.children(recursive=True))]
        return []

    def start(self, name: str, extra_env: dict[str, str] | None = None) -> RunningServer:
        """Start server `name` on a free port and wait until it accepts connections; Palimpsest
        variants get `extra_env` on top of the benchmark's environment."""
        self._n += 1
        port = free_port()
        log_path = self.log_dir / f"{self._n:02d}-{name}.log"
        env = {**os.environ}
        tree = REPO
        cleanup: list[Callable[[], None]] = []
        helper_pids: Callable[[], list[int]] = list
        if name == "y-websocket-server":
            if not YWS_SERVER_JS.is_file():
                raise RuntimeError(f"{YWS_SERVER_JS} missing: run `npm ci` in {NODE_DIR}")
            argv = ["node", str(YWS_SERVER_JS)]
            env.update(HOST="127.0.0.1", PORT=str(port))
        elif name.startswith("pycrdt-websocket"):
            argv = [str(VENV_BIN / "python"), str(REPO / "bench" / "pycrdt_server.py"),
                    "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
            if name.endswith("-nodeflate"):
                argv.append("--no-ws-per-message-deflate")
        elif name.startswith("palimpsest-"):
            if name.endswith("-baseline"):
                if not BASELINE_TREE:
                    raise RuntimeError(f"{name} needs PALIMPSEST_BASELINE_TREE")
                tree = Path(BASELINE_TREE).resolve()
                env["PYTHONPATH"] = str(tree)
                name_variant = name.removesuffix("-baseline")
            else:
                name_variant = name
            palimpsest = [str(VENV_BIN / "python"), "-m", "server.cli"]
            argv = [*palimpsest, "serve", "--host", "127.0.0.1", "--port", str(port)]
            if name_variant.endswith("-write"):
                argv += ["--role", "write"]
            env.update(PALIMPSEST_BENCH_ENV)
            env.update(extra_env or {})
            if name_variant.endswith("-deflate"):
                env["PALIMPSEST_WS_DEFLATE"] = "1"
            if "DATABASE_URL" in (extra_env or {}):
                pass  # a store prepared by the caller (bench/join_storm.py)
            elif "-sqlite" in name_variant:
                tmp = Path(tempfile.mkdtemp(prefix="palimpsest-bench-"))
                env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
                cleanup.append(lambda: subprocess.run(["rm", "-rf", str(tmp)], check=False))
            else:
                env["DATABASE_URL"] = self._postgres().createdb()
                migrate = subprocess.run(
                    [*palimpsest, "migrate"], env=env, cwd=tree,
                    capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                if migrate.returncode != 0:
                    raise RuntimeError(f"palimpsest migrate failed: {migrate.stderr[-2000:]}")
                helper_pids = self.postgres_pids
            env.pop("PALIMPSEST_SECRET", None)
            env.pop("REDIS_URL", None)
        else:
            raise ValueError(f"unknown server {name!r}; known: {', '.join(SERVERS)}")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv, env=env, cwd=tree, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=pinner(SERVER_CPUS) if self.pin else None,
            )  # fmt: skip
        server = RunningServer(
            name=name, proc=proc, port=port, log_path=log_path,
            http_url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}/ws",
            cleanup=cleanup, helper_pids=helper_pids,
        )  # fmt: skip
        try:
            wait_for_port(port, proc, timeout=60)
        except BaseException:
            server.stop()
            raise
        return server


@contextlib.contextmanager
def watched(server: RunningServer) -> Iterator[dict[str, float]]:
    """Peak RSS of the server PID; CPU seconds of the server and of its database processes.

    The database's own RSS is not reported: summed over Postgres processes it counts the shared
    buffers once per process, which says nothing useful.
    """
    stats: dict[str, float] = {}
    sampler = Sampler(server.pid)
    cpu0 = cpu_seconds([server.pid])
    db_cpu0 = cpu_seconds(server.helper_pids())
    busy0 = machine_busy_seconds()
    sampler.start()
    t0 = time.monotonic()
    try:
        yield stats
    finally:
        sampler.stop()
        stats["wall_s"] = time.monotonic() - t0
        stats["machine_busy_cpu_s"] = machine_busy_seconds() - busy0
        stats["server_cpu_s"] = cpu_seconds([server.pid]) - cpu0
        stats["server_peak_rss_mib"] = sampler.peak_rss / 2**20
        if server.helper_pids():
            # backends that ended during the scenario are missed: a lower bound
            stats["db_cpu_s"] = cpu_seconds(server.helper_pids()) - db_cpu0
