"""Shared fixtures: real PostgreSQL and Redis servers, real server processes.

`backend` runs a test once on SQLite and once on PostgreSQL. Services are started once per
session; if one cannot start, every test that needs it errors loudly.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.migrate import migrate
from tests.support.server_process import ServerProcess
from tests.support.services import PostgresServer, RedisServer
from tests.support.yjs_audit import audit

_db_names = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def yjs_audit() -> Iterator[None]:
    """At the end of the session: every document the suite's servers stored on SQLite,
    replayed in Node Yjs, agrees with the history the server serves (tests/support/yjs_audit.py;
    bounded in time)."""
    yield
    result = audit()
    if result.documents or result.skipped:
        print(f"\nYjs audit: {result.documents} documents compared with Node Yjs, "
              f"{result.skipped} skipped, {result.seconds:.1f} s")
    assert not result.differences, "\n".join(result.differences[:10])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def new_postgres_url(pg: PostgresServer) -> str:
    url = pg.create_database(f"test_{next(_db_names)}")
    asyncio.run(migrate(url))
    return url


def new_sqlite_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder / 'palimpsest.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgres":
        return new_postgres_url(request.getfixturevalue("pg_server"))
    return new_sqlite_url(tmp_path)


@pytest.fixture
def server(database_url: str) -> Iterator[ServerProcess]:
    with ServerProcess(database_url) as process:
        yield process


ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "tests" / "data" / "editing-traces"
