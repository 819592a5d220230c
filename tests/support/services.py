"""Private PostgreSQL and Redis servers for the tests, each on its own loopback port.

Each starts from the Debian binaries in a fresh temporary folder and is stopped by its PID.
A service that cannot start raises: a test that needs it fails, it never silently skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

PG_BIN = Path(os.environ.get("PALIMPSEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(process: subprocess.Popen[Any], sig_timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(sig_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _as_postgres() -> dict[str, Any]:
    # PostgreSQL refuses to run as root: run it as the `postgres` user Debian creates.
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


class PostgresServer:
    """A throwaway PostgreSQL cluster. `url(db)` gives a SQLAlchemy asyncpg URL."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise ServiceError(f"PostgreSQL binaries not found in {PG_BIN}")
        self.dir = Path(tempfile.mkdtemp(prefix="palimpsest-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
             "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, **_as_postgres(),
        )

    def start(self) -> None:
        log = open(self.dir / "postgres.log", "ab")
        self.process = subprocess.Popen(
            [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", "fsync=off", "-c", "max_connections=300", "-c", "shared_buffers=128MB"],
            stdout=log, stderr=log, **_as_postgres(),
        )
        wait_port(self.port, 30, self.process)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ok = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ok.returncode == 0:
                return
            time.sleep(0.1)
        raise ServiceError("PostgreSQL did not become ready")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: 'fast' (SIGINT) or 'kill' (SIGKILL, a crash)."""
        if self.process is None:
            return
        if mode == "kill":
            self.process.kill()
            self.process.wait(10)
        else:
            self.process.send_signal(2)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def psql(self, sql: str, db: str = "postgres") -> str:
        result = subprocess.run(
            [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            check=True, capture_output=True, text=True,
        )
        return result.stdout

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, db: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{db}"

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, 15, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
