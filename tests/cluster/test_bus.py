"""The Bus contract, run against the in-process bus and the Redis bus alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.bus import AWARENESS, EVENT, Bus, BusMessage, LocalBus
from server.bus import codec as bus_codec
from server.bus.keys import RedisKeys
from server.bus.redis_bus import RedisBus
from tests.support.pyclient import wait_for
from tests.support.services import RedisServer

_prefixes = iter(range(1_000_000))


@pytest.fixture(params=["local", "redis"])
async def bus_pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bus, Bus]]:
    """Two nodes' buses on one fabric (one process, so the in-process pair is one bus)."""
    if request.param == "local":
        local = LocalBus("node-a")
        yield local, local
        return
    redis: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"test{next(_prefixes)}"
    a = RedisBus(redis.url, "node-a", prefix=prefix)
    b = RedisBus(redis.url, "node-b", prefix=prefix)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


def event(doc_id: str, seq: int, payload: bytes = b"\x00\x01") -> BusMessage:
    return BusMessage(doc_id, EVENT, "node-a", seq, "update", payload)


async def test_subscriber_receives_what_is_published_on_its_document(
    bus_pair: tuple[Bus, Bus],
) -> None:
    a, b = bus_pair
    got: list[BusMessage] = []
    await b.subscribe("doc-1", got.append)
    sent = [event("doc-1", seq, bytes([seq]) * seq) for seq in range(1, 6)]
    await a.publish(event("doc-2", 1))
    for message in sent:
        await a.publish(message)
    await wait_for(lambda: len(got) >= 5, 5, lambda: f"got {got}")
    assert got == sent


async def test_unsubscribed_handler_receives_nothing_more(bus_pair: tuple[Bus, Bus]) -> None:
    a, b = bus_pair
    got: list[BusMessage] = []
    marker: list[BusMessage] = []
    await b.subscribe("doc-1", got.append)
    await b.subscribe("doc-1", marker.append)
    await b.unsubscribe("doc-1", got.append)
    await a.publish(event("doc-1", 1))
    await wait_for(lambda: len(marker) == 1, 5)
    assert got == []


async def test_subscribe_all_receives_events_of_every_document_but_no_awareness(
    bus_pair: tuple[Bus, Bus],
) -> None:
    a, b = bus_pair
    got: list[BusMessage] = []
    await b.subscribe_all(got.append)
    await a.publish(BusMessage("doc-1", AWARENESS, "node-a", 0, "", b"\x00"))
    await a.publish(event("doc-1", 1))
    await a.publish(event("doc-2", 1))
    await wait_for(lambda: len(got) >= 2, 5, lambda: f"got {got}")
    assert [(m.doc_id, m.kind) for m in got] == [("doc-1", EVENT), ("doc-2", EVENT)]


async def test_awareness_crosses_nodes(bus_pair: tuple[Bus, Bus]) -> None:
    a, b = bus_pair
    got: list[BusMessage] = []
    await b.subscribe("doc-1", got.append)
    sent = BusMessage("doc-1", AWARENESS, "node-a", 0, "", b"\x01\x02\x03")
    await a.publish(sent)
    await wait_for(lambda: len(got) == 1, 5)
    assert got == [sent]


def test_bus_message_encoding_round_trips() -> None:
    message = BusMessage("doc-x", EVENT, "0123456789ab", 2**40 + 7, "restore", b"\xff" * 300)
    data = bus_codec.encode(message)
    assert len(data) == 10 + 1 + 12 + 1 + 7 + 300
    assert bus_codec.decode("doc-x", data) == message
    with pytest.raises(bus_codec.BadBusMessage):
        bus_codec.decode("doc-x", data[:5])
    with pytest.raises(bus_codec.BadBusMessage):
        bus_codec.decode("doc-x", b"\x09" + data[1:])


def test_every_redis_name_comes_from_the_prefix() -> None:
    keys = RedisKeys("a*b")
    assert keys.doc_channel("doc.1") == b"a*b:doc:doc.1"
    assert keys.all_docs_pattern() == b"a\\*b:doc:*"
    assert keys.doc_id_of(b"a*b:doc:doc.1") == "doc.1"
    assert keys.doc_id_of(b"other:doc:doc.1") is None


async def test_redis_bus_resubscribes_and_reports_a_reconnect_after_redis_restarts() -> None:
    redis = RedisServer()  # our own: restarting the session's would disturb other tests
    redis.start()
    try:
        a = RedisBus(redis.url, "node-a", prefix="restart")
        b = RedisBus(redis.url, "node-b", prefix="restart")
        await a.start()
        await b.start()
        reconnects: list[int] = []
        b.on_reconnect(lambda: reconnects.append(1))
        got: list[BusMessage] = []
        await b.subscribe("doc-1", got.append)
        await a.publish(event("doc-1", 1))
        await wait_for(lambda: len(got) == 1, 5)

        await asyncio.to_thread(redis.restart)
        await wait_for(lambda: len(reconnects) == 1 and b.connected, 10)
        # Published while the publisher may still be reconnecting: the outbox retries it.
        await a.publish(event("doc-1", 2))
        await wait_for(lambda: [m.seq for m in got] == [1, 2], 10, lambda: f"got {got}")
        await a.stop()
        await b.stop()
    finally:
        redis.stop()
