"""A throwaway PostgreSQL 15 cluster on 127.0.0.1 for the benchmark.

PostgreSQL refuses to run as root, so the cluster belongs to the `postgres` user (`runuser`), in
a temporary directory it owns. It listens only on 127.0.0.1 (and a socket in that directory),
trusts local connections, and keeps the server defaults that matter for durability (fsync on,
synchronous_commit on): Palimpsest's contract is "durable before visible", so that is what its
figures must include. `stop()` ends the postmaster through `pg_ctl stop`, which signals the PID in
the cluster's own postmaster.pid, and removes the directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "postgres"


class TempPostgres:
    """initdb + pg_ctl start on a free port; `createdb()` gives a fresh database per use."""

    def __init__(self, port: int, preexec: Callable[[], None] | None = None) -> None:
        self.port = port
        self._preexec = preexec
        self.dir = Path(tempfile.mkdtemp(prefix="palimpsest-bench-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._dbs = 0
        self.pid: int | None = None

    def _as_postgres(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", USER, "--", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=self._preexec,
        )

    def start(self) -> None:
        shutil.chown(self.dir, USER, USER)
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
        )  # fmt: skip
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts,
            "-w", "-t", "60", "start",
        )  # fmt: skip
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def createdb(self) -> str:
        """A new empty database; returns its SQLAlchemy asyncpg URL."""
        self._dbs += 1
        name = f"bench{self._dbs}"
        self._as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), name)
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            if self.data.exists():
                self._as_postgres(
                    str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
                )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
