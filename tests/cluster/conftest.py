"""Fixtures for multi-node tests: N `palimpsest serve` nodes on one Postgres and one Redis."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import new_postgres_url
from tests.support.server_process import ServerProcess
from tests.support.services import PostgresServer, RedisServer

_prefixes = itertools.count(1)

StartNodes = Callable[..., list[ServerProcess]]


@pytest.fixture
def cluster_db(pg_server: PostgresServer) -> str:
    """A fresh, migrated database on the session's Postgres."""
    return new_postgres_url(pg_server)


@pytest.fixture
def redis_prefix() -> str:
    """A Redis prefix of this test's own, so tests sharing the session's Redis never mix."""
    return f"t{next(_prefixes)}"


@pytest.fixture
def start_nodes(redis_prefix: str) -> Iterator[StartNodes]:
    """`start_nodes(n, database_url, redis_url, env=...)` starts n nodes; all stop at the end."""
    started: list[ServerProcess] = []

    def start(n: int, database_url: str, redis_url: str,
              env: dict[str, str] | None = None) -> list[ServerProcess]:
        nodes = [
            ServerProcess(database_url, redis_url=redis_url,
                          env={"PALIMPSEST_REDIS_PREFIX": redis_prefix,
                               # No sweep unless a test asks: what converges, the bus carried.
                               "PALIMPSEST_ROOM_SWEEP_SECONDS": "0", **(env or {})})
            for _ in range(n)
        ]
        started.extend(nodes)
        # Started side by side: each spends most of its start-up importing and connecting.
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda node: node.start(), nodes))
        return nodes

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def two_nodes(start_nodes: StartNodes, cluster_db: str,
              redis_server: RedisServer) -> list[ServerProcess]:
    return start_nodes(2, cluster_db, redis_server.url)
