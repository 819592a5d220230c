"""Revocation reaches every node: an admin's call on one node closes the user's connection on
another (Postgres + Redis, two real nodes)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import new_postgres_url
from tests.security.conftest import SECRET, close_of, raw, recv_until, token
from tests.support.server_process import ServerProcess
from tests.support.services import PostgresServer, RedisServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def nodes(pg_server: PostgresServer, redis_server: RedisServer) -> Iterator[list[ServerProcess]]:
    url = new_postgres_url(pg_server)
    env = {"PALIMPSEST_SECRET": SECRET, "PALIMPSEST_REDIS_PREFIX": "revocation"}
    started = [ServerProcess(url, redis_url=redis_server.url, env=env) for _ in range(2)]
    try:
        for node in started:
            node.start()
        yield started
    finally:
        for node in started:
            node.stop()


async def test_revocation_on_one_node_closes_the_users_connection_on_another(
    nodes: list[ServerProcess],
) -> None:
    a, b = nodes
    doc = "team-plan"
    victim = token("bob", {doc: "write"})
    async with raw(f"{b.ws_url}/ws/{doc}?token={victim}") as bob_on_b:
        await recv_until(bob_on_b, bytes((0, 0)))  # bob, a writer, created the document
        async with raw(f"{a.ws_url}/ws/{doc}?token={token('cat', {doc: 'read'})}") as cat_on_a:
            await recv_until(cat_on_a, bytes((0, 0)))
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.post(
                    f"{a.http_url}/api/documents/{doc}/revoke", json={"user": "bob"},
                    headers={"Authorization": f"Bearer {token('root', {'team-*': 'admin'})}"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["closed"] == 0  # bob was on the other node
            assert await close_of(bob_on_b) == (4403, "access revoked")
    # Node b remembers: bob's old token is refused there from now on.
    async with raw(f"{b.ws_url}/ws/{doc}?token={victim}") as again:
        code, reason = await close_of(again)
    assert (code, "revoked" in reason) == (4403, True)
