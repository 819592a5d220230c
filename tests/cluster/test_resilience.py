"""Reliability with real processes: the read side outliving a Postgres outage (and /healthz
saying so), one clock for event times and leases whatever a node's own clock says, and a
projector killed with SIGKILL taken over by another node's within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from storage.database import open_database
from storage.event_store import EventStore
from storage.migrate import migrate
from storage.schema import projector_checkpoints
from tests.cluster.conftest import StartNodes
from tests.cluster.replay import log_seqs_and_text
from tests.node.yclient import YClient as NodeClient
from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess
from tests.support.services import PostgresServer, RedisServer

HOUR = 3600.0

# Loaded by the server process (through PYTHONPATH) before anything else: from then on its
# time.time() runs `PALIMPSEST_TEST_CLOCK_OFFSET` seconds off, like a node whose clock is
# wrong. Nothing in the server knows about it.
SKEWED_CLOCK = '''
import os, sys, time
_offset = float(os.environ.get("PALIMPSEST_TEST_CLOCK_OFFSET", "0"))
if _offset:
    _real_time, _real_time_ns = time.time, time.time_ns
    time.time = lambda: _real_time() + _offset
    time.time_ns = lambda: _real_time_ns() + int(_offset * 1e9)
    print(f"test clock: time.time() is {_offset:+g} s off", file=sys.stderr, flush=True)
'''


@pytest.fixture
def skewed(tmp_path: Path) -> Callable[[float], dict[str, str]]:
    """`skewed(seconds)`: the environment that starts a server whose clock is that far off."""
    folder = tmp_path / "skewed-clock"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SKEWED_CLOCK)

    def env(offset: float) -> dict[str, str]:
        return {"PYTHONPATH": str(folder), "PALIMPSEST_TEST_CLOCK_OFFSET": str(offset)}

    return env


async def _get(url: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(url, params=params, timeout=5)


async def _wait(check: Callable[[], Any], timeout: float, what: str) -> float:
    """Await `check()` until it is truthy; the seconds it took. Bounded."""
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < timeout:
        last = await check()
        if last:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout} s (last: {last!r})")


async def _checkpoint(url: str, doc_id: str) -> tuple[int, str | None, float]:
    db = open_database(url, pool_size=1)
    try:
        async with db.read() as conn:
            row = (await conn.execute(select(projector_checkpoints).where(
                projector_checkpoints.c.doc_id == doc_id))).first()
    finally:
        await db.dispose()
    return (0, None, 0.0) if row is None else (int(row.seq), row.owner, float(row.lease_until))


async def _head(url: str, doc_id: str) -> int:
    _, head, _ = await log_seqs_and_text(url, doc_id)
    return head


async def _read_side_at_head(node: ServerProcess, url: str, doc_id: str) -> bool:
    answer = await _get(f"{node.http_url}/api/documents/{doc_id}")
    return answer.status_code == 200 and answer.json()["seq"] == await _head(url, doc_id)


async def _type(client: NodeClient, tag: str, seconds: float) -> int:
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await client.insert(0, f"<{tag}{count}>")
        count += 1
        await asyncio.sleep(0.03)
    return count


@pytest.fixture
def own_pg() -> Iterator[PostgresServer]:
    pg = PostgresServer()  # stopped and started by the test: never the session's
    pg.start()
    yield pg
    pg.destroy()


async def test_postgres_outage_read_side_resumes_healthz_tells_and_shutdown_snapshots(
    start_nodes: StartNodes, redis_server: RedisServer, own_pg: PostgresServer,
) -> None:
    url = own_pg.create_database("outage")
    await migrate(url)
    env = {"PALIMPSEST_HEALTH_STALL_SECONDS": "1", "PALIMPSEST_ROOM_SWEEP_SECONDS": "1"}
    [node] = start_nodes(1, url, redis_server.url, env=env)
    clients = [await NodeClient.start(f"{node.ws_url}/ws", "outage", deflate=False)
               for _ in range(2)]
    try:
        for client in clients:
            await client.wait_synced()
        await clients[0].insert(0, "start.")
        await _wait(lambda: _read_side_at_head(node, url, "outage"), 10, "first projection")
        assert (await _get(f"{node.http_url}/healthz")).status_code == 200

        typing = asyncio.gather(*(_type(c, f"o{i}.", 8) for i, c in enumerate(clients)))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_pg.stop)
        stopped = time.monotonic()
        sick: list[dict[str, Any]] = []

        async def unhealthy() -> bool:
            answer = await _get(f"{node.http_url}/healthz")
            if answer.status_code == 503:
                sick.append(answer.json())
            return answer.status_code == 503

        await _wait(unhealthy, 10, "healthz 503 while Postgres is down")
        assert any(p["task"] == "projector" for p in sick[0]["problems"]), sick[0]
        await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - stopped)))  # 4 s outage
        await asyncio.to_thread(own_pg.start)
        restarted = time.monotonic()
        counts = await typing
        expected = len("start.") + sum(len(f"<o{i}.{n}>") for i, count in enumerate(counts)
                                       for n in range(count))
        await _wait(lambda: _texts_converged(clients, expected), 30, "convergence")
        # No node restarted: the projector resumed on its own, and the history API is at the
        # head again; healthz is green again.
        resumed = await _wait(lambda: _read_side_at_head(node, url, "outage"), 30,
                              "read side at the head")
        healthy = await _wait(lambda: _status_is(node, 200), 30, "healthz 200 after")
        print(f"\npostgres outage: healthz 503 ({sick[0]['problems'][0]['problem']}); read side "
              f"at the head {time.monotonic() - restarted:.1f} s after restart "
              f"(waited {resumed:.1f} s after convergence), healthy again after {healthy:.1f} s")
        assert "projector pass failed, retrying" in node.log_path.read_text()
        _, head, text = await log_seqs_and_text(url, "outage")
        assert text == await clients[0].text()

        # A clean shutdown with the clients still connected snapshots the open room at its
        # head, even though the pool's connections all died with the old Postgres.
        node.stop()
        db = open_database(url, pool_size=1)
        try:
            snapshot = await EventStore(db).snapshot_at_or_before("outage")
        finally:
            await db.dispose()
        assert snapshot is not None and snapshot.seq == head, (snapshot, head)
        assert snapshot.text == text
        log = node.log_path.read_text(errors="replace")
        assert "Task was destroyed" not in log, log[-3000:]
    finally:
        for client in clients:
            await client.close()


async def _texts_converged(clients: list[NodeClient], length: int) -> bool:
    texts = [await c.text() for c in clients]
    return len(set(texts)) == 1 and len(texts[0]) == length


async def _status_is(node: ServerProcess, status: int) -> bool:
    return (await _get(f"{node.http_url}/healthz")).status_code == status


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


async def test_a_node_an_hour_ahead_stamps_events_and_leases_with_the_databases_clock(
    database_url: str, skewed: Callable[[float], dict[str, str]],
) -> None:
    before = time.time()
    with ServerProcess(database_url, env=skewed(HOUR)) as node:
        assert "test clock: time.time() is +3600 s off" in node.log()  # the skew is real
        async with YClient(node.ws_url, "skew") as client:
            client.insert(0, "hello")
            await _wait(lambda: _read_side_at_head(node, database_url, "skew"), 10,
                        "projection")
            after = time.time()
            db = open_database(database_url, pool_size=1)
            try:
                store = EventStore(db)
                events = await store.read_list("skew")
                document = await store.document("skew")
            finally:
                await db.dispose()
            assert events and document is not None
            for event in events:  # the database's time, not the node's (an hour ahead)
                assert before - 1 <= event.time <= after + 1, (event, before, after)
            assert before - 1 <= document.created_at <= after + 1
            # Reading the document as it is now, by the clock of whoever asks, gives the head
            # (with the node's clock, every event would be an hour in the future: seq 0).
            answer = await _get(f"{node.http_url}/api/documents/skew", at_time=_iso(time.time()))
            assert answer.status_code == 200, answer.text
            assert (answer.json()["seq"], answer.json()["text"]) == (events[-1].seq, "hello")
            # The projector's lease runs out a few seconds from now, not an hour from now.
            _, owner, lease_until = await _checkpoint(database_url, "skew")
            assert owner is not None
            assert lease_until - time.time() <= 3.0 + 1.0, lease_until - time.time()


async def test_sigkilled_projector_an_hour_ahead_is_taken_over_within_seconds(
    start_nodes: StartNodes, cluster_db: str, redis_server: RedisServer,
    skewed: Callable[[float], dict[str, str]],
) -> None:
    [ahead] = start_nodes(1, cluster_db, redis_server.url, env=skewed(HOUR))
    async with YClient(ahead.ws_url, "takeover") as client:
        client.insert(0, "before.")
        await _wait(lambda: _read_side_at_head(ahead, cluster_db, "takeover"), 10,
                    "projection on the node ahead")
    owner_ahead = (await _get(f"{ahead.http_url}/healthz")).json()["projector"]["owner"]
    [other] = start_nodes(1, cluster_db, redis_server.url)
    owner_other = (await _get(f"{other.http_url}/healthz")).json()["projector"]["owner"]
    _, owner, _ = await _checkpoint(cluster_db, "takeover")
    assert owner == owner_ahead  # the node an hour ahead holds the lease (and renews it)

    ahead.kill()  # SIGKILL: no release, no goodbye
    killed = time.monotonic()
    async with YClient(other.ws_url, "takeover") as client:
        await client.wait_text("before.")
        client.insert(len("before."), "after.")
        await _wait(lambda: _head_past(cluster_db, "takeover", 1), 10, "commit")
        taken = await _wait(lambda: _read_side_at_head(other, cluster_db, "takeover"), 20,
                            "the other node's projector at the head")
    takeover = time.monotonic() - killed
    _, owner, _ = await _checkpoint(cluster_db, "takeover")
    print(f"\nprojector takeover after SIGKILL of a node an hour ahead: {takeover:.2f} s "
          f"(read side at the head {taken:.2f} s after the edit was committed)")
    assert owner == owner_other
    assert takeover < 5.0, takeover


async def _head_past(url: str, doc_id: str, seq: int) -> bool:
    return await _head(url, doc_id) > seq
