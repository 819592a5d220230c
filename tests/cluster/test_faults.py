"""Faults with real processes on loopback: a faulty bus, Redis and Postgres restarted, a node
killed in the middle of a burst. Every time, every client converges on the log, and nothing
any client was shown is missing from it."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Sequence

import pytest
from pycrdt import Doc, Text

from storage.migrate import migrate
from tests.cluster.conftest import StartNodes
from tests.cluster.nginx import Nginx
from tests.cluster.observer import Observer
from tests.cluster.replay import assert_gap_free, log_seqs_and_text
from tests.node.yclient import YClient as NodeClient
from tests.support.pyclient import YClient, wait_for
from tests.support.services import PostgresServer, RedisServer

FAST_SWEEP = {"PALIMPSEST_ROOM_SWEEP_SECONDS": "1"}


async def _type(client: YClient, rng: random.Random, tag: str, count: int) -> None:
    for i in range(count):
        client.insert(rng.randint(0, len(client.value())), f"<{tag}{i}>")
        await asyncio.sleep(rng.random() * 0.02)


def _typed(tags: Sequence[str], count: int) -> int:
    return sum(len(f"<{tag}{i}>") for tag in tags for i in range(count))


async def _converged(clients: Sequence[YClient], length: int, timeout: float) -> str:
    await wait_for(lambda: len({c.value() for c in clients}) == 1
                   and len(clients[0].value()) == length, timeout,
                   lambda: f"lengths {[len(c.value()) for c in clients]}, expected {length}")
    return clients[0].value()


def _assert_within_log(observer: Observer, log_text: str, log_doc: Doc) -> None:
    """Everything the observer was shown is in the log: adding it changes nothing."""
    before = str(log_doc.get("content", type=Text))
    log_doc.apply_update(observer.state())
    assert str(log_doc.get("content", type=Text)) == before == log_text


async def _log_doc(database_url: str, doc_id: str) -> tuple[Doc, str]:
    from storage.database import open_database
    from storage.event_store import EventStore

    db = open_database(database_url, pool_size=1)
    try:
        events = await EventStore(db).read_list(doc_id)
    finally:
        await db.dispose()
    doc = Doc()
    for event in events:
        if event.kind in ("update", "restore"):
            doc.apply_update(event.payload)
    return doc, str(doc.get("content", type=Text))


async def test_dropped_duplicated_and_reordered_bus_messages_still_converge_applied_once(
    start_nodes: StartNodes, cluster_db: str, redis_server: RedisServer,
) -> None:
    env = {"PALIMPSEST_TEST_BUS_FAULTS": "drop=0.2,duplicate=0.3,reorder=0.3,seed=11",
           **FAST_SWEEP}
    nodes = start_nodes(2, cluster_db, redis_server.url, env=env)
    clients = [YClient(nodes[i % 2].ws_url, "faulty") for i in range(4)]
    idle = [YClient(node.ws_url, "faulty") for node in nodes]  # learn only through the bus
    for client in clients + idle:
        await client.connect()
    try:
        tags = [f"f{i}." for i in range(len(clients))]
        await asyncio.gather(*(_type(c, random.Random(i), tags[i], 50)
                               for i, c in enumerate(clients)))
        text = await _converged(clients + idle, _typed(tags, 50), 20)
        seqs, head, replayed = await log_seqs_and_text(cluster_db, "faulty")
        assert replayed == text
        assert_gap_free(seqs, head)
    finally:
        for client in clients + idle:
            await client.close()
    counts = {"dropped": 0, "duplicated": 0, "reordered": 0}
    for node in nodes:
        node.stop()
        log = node.log()
        # Room.apply_event refuses, and logs, any event that is not its next seq.
        assert "out of order" not in log, log
        found = re.search(r"dropped=(\d+) duplicated=(\d+) reordered=(\d+)", log)
        assert found is not None, log
        for name, value in zip(counts, found.groups(), strict=True):
            counts[name] += int(value)
    assert all(value > 0 for value in counts.values()), counts  # the faults really happened


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    redis = RedisServer()  # restarted by the test: never the session's
    redis.start()
    yield redis
    redis.stop()


async def test_redis_restarted_mid_editing_loses_nothing_and_everyone_converges(
    start_nodes: StartNodes, cluster_db: str, own_redis: RedisServer,
) -> None:
    # No room sweep: what the outage lost, the catch-up after the reconnect must bring.
    nodes = start_nodes(2, cluster_db, own_redis.url)
    clients = [YClient(nodes[i % 2].ws_url, "outage") for i in range(4)]
    idle = [YClient(node.ws_url, "outage") for node in nodes]
    for client in clients + idle:
        await client.connect()
    try:
        tags = [f"r{i}." for i in range(len(clients))]
        typing = asyncio.gather(*(_type(c, random.Random(i), tags[i], 60)
                                  for i, c in enumerate(clients)))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(own_redis.stop)
        await asyncio.sleep(0.5)  # editing goes on without the bus
        await asyncio.to_thread(own_redis.start)
        await typing
        text = await _converged(clients + idle, _typed(tags, 60), 20)
        seqs, head, replayed = await log_seqs_and_text(cluster_db, "outage")
        assert replayed == text
        assert_gap_free(seqs, head)
    finally:
        for client in clients + idle:
            await client.close()
    # The clients may converge through the nodes' own commits (each reads what it missed from
    # the log) before a node's reconnect backoff has run out: wait for it, bounded.
    for node in nodes:
        await wait_for(lambda node=node: "Redis bus reconnected" in node.log_path.read_text(),
                       20, node.log)


async def _burst(client: NodeClient, tag: str, rounds: int, per_round: int) -> None:
    for r in range(rounds):
        await client.apply_patches([[0, 0, f"<{tag}{r}.{i}>"] for i in range(per_round)])
        await asyncio.sleep(0.05)


def _burst_chars(tags: Sequence[str], rounds: int, per_round: int) -> int:
    return sum(len(f"<{t}{r}.{i}>") for t in tags for r in range(rounds) for i in range(per_round))


async def _node_texts_converged(clients: Sequence[NodeClient], length: int,
                                timeout: float) -> str:
    texts: list[str] = []

    async def check() -> bool:
        texts[:] = [await c.text() for c in clients]
        return len(set(texts)) == 1 and len(texts[0]) == length

    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"lengths {[len(t) for t in texts]}, expected {length}")
        await asyncio.sleep(0.1)
    return texts[0]


async def test_node_killed_mid_burst_its_clients_reconnect_through_nginx_and_nothing_is_lost(
    start_nodes: StartNodes, cluster_db: str, redis_server: RedisServer,
) -> None:
    nodes = start_nodes(2, cluster_db, redis_server.url, env=FAST_SWEEP)
    nginx = Nginx([node.port for node in nodes]).start()
    observer = await Observer(nodes[1].ws_url, "crash").start()  # on the node that survives
    clients: list[NodeClient] = []
    try:
        for _ in range(4):  # least_conn spreads them over both nodes
            client = await NodeClient.start(f"{nginx.ws_url}/ws", "crash", deflate=False)
            await client.wait_synced()
            clients.append(client)
        tags = [f"k{i}." for i in range(len(clients))]
        bursts = asyncio.gather(*(_burst(c, tags[i], 16, 5) for i, c in enumerate(clients)))
        await asyncio.sleep(0.4)
        nodes[0].kill()  # SIGKILL, in the middle of the burst
        await bursts
        text = await _node_texts_converged(clients, _burst_chars(tags, 16, 5), 30)
        closed = [c for c in clients if any(e.get("event") == "connection-close"
                                            for e in c.events)]
        assert closed, "no client was on the killed node"
        log_doc, log_text = await _log_doc(cluster_db, "crash")
        assert log_text == text
        await wait_for(lambda: observer.value() == text, 10)
        _assert_within_log(observer, log_text, log_doc)
        seqs, head, _ = await log_seqs_and_text(cluster_db, "crash")
        assert_gap_free(seqs, head)
    finally:
        for client in clients:
            await client.close()
        await observer.close()
        nginx.stop()


async def test_postgres_restarted_mid_burst_writes_pause_and_resume_and_nothing_is_lost(
    start_nodes: StartNodes, redis_server: RedisServer,
) -> None:
    pg = PostgresServer()  # our own, since we restart it
    pg.start()
    clients: list[NodeClient] = []
    observer: Observer | None = None
    try:
        url = pg.create_database("restart")
        await migrate(url)
        nodes = start_nodes(2, url, redis_server.url, env=FAST_SWEEP)
        observer = await Observer(nodes[1].ws_url, "pg").start()
        for i in range(4):
            client = await NodeClient.start(f"{nodes[i % 2].ws_url}/ws", "pg", deflate=False)
            await client.wait_synced()
            clients.append(client)
        tags = [f"p{i}." for i in range(len(clients))]
        bursts = asyncio.gather(*(_burst(c, tags[i], 40, 4) for i, c in enumerate(clients)))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(1.0)  # clients keep editing while nothing can be stored
        await asyncio.to_thread(pg.start)
        await bursts
        text = await _node_texts_converged(clients, _burst_chars(tags, 40, 4), 40)
        # The writers retried their commits while Postgres was away: nobody was closed.
        closed = [e for c in clients for e in c.events if e.get("event") == "connection-close"]
        assert closed == []
        assert any("failed, retrying" in node.log_path.read_text() for node in nodes), \
            "no commit was attempted while Postgres was down"
        log_doc, log_text = await _log_doc(url, "pg")
        assert log_text == text
        _assert_within_log(observer, log_text, log_doc)
        seqs, head, _ = await log_seqs_and_text(url, "pg")
        assert_gap_free(seqs, head)
    finally:
        for client in clients:
            await client.close()
        if observer is not None:
            await observer.close()
        pg.destroy()
