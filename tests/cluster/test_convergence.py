"""Clients on different nodes edit one document at once: everyone converges on the log."""

from __future__ import annotations

import asyncio
import random

import websockets

from server.realtime import awareness, protocol
from tests.cluster.replay import assert_gap_free, log_seqs_and_text
from tests.support.pyclient import YClient, wait_for
from tests.support.server_process import ServerProcess


async def _type(client: YClient, rng: random.Random, tag: str, count: int) -> None:
    for i in range(count):
        client.insert(rng.randint(0, len(client.value())), f"<{tag}{i}>")
        await asyncio.sleep(rng.random() * 0.01)


async def test_clients_on_two_nodes_converge_and_equal_a_cold_replay(
    two_nodes: list[ServerProcess], cluster_db: str,
) -> None:
    node_a, node_b = two_nodes
    clients = [YClient(node.ws_url, "shared") for node in (node_a, node_b, node_a, node_b)]
    for client in clients:
        await client.connect()
    try:
        rng = random.Random(5)
        await asyncio.gather(*(_type(c, random.Random(rng.random()), f"c{i}.", 40)
                               for i, c in enumerate(clients)))
        # Tokens land inside each other, so count characters: every one typed must arrive.
        expected = sum(len(f"<c{i}.{j}>") for i in range(len(clients)) for j in range(40))
        await wait_for(lambda: all(c.value() == clients[0].value() for c in clients)
                       and len(clients[0].value()) == expected, 15,
                       lambda: f"texts differ: {[len(c.value()) for c in clients]}")
        seqs, head, replayed = await log_seqs_and_text(cluster_db, "shared")
        assert replayed == clients[0].value()
        assert_gap_free(seqs, head)
    finally:
        for client in clients:
            await client.close()


async def test_two_nodes_appending_to_one_document_keep_its_seq_gap_free(
    two_nodes: list[ServerProcess], cluster_db: str,
) -> None:
    # Many writers per node, no pauses: both nodes' writers contend for the document's row.
    clients = [YClient(two_nodes[i % 2].ws_url, "contended") for i in range(8)]
    for client in clients:
        await client.connect()
    try:
        async def burst(client: YClient, tag: str) -> None:
            for i in range(60):
                client.insert(0, f"[{tag}{i}]")
                if i % 10 == 9:
                    await asyncio.sleep(0)

        await asyncio.gather(*(burst(c, f"w{i}.") for i, c in enumerate(clients)))
        expected = sum(len(f"[w{i}.{j}]") for i in range(8) for j in range(60))
        await wait_for(lambda: all(len(c.value()) == expected for c in clients)
                       and len({c.value() for c in clients}) == 1, 20,
                       lambda: f"lengths {[len(c.value()) for c in clients]} of {expected}")
        seqs, head, replayed = await log_seqs_and_text(cluster_db, "contended")
        assert_gap_free(seqs, head)
        assert replayed == clients[0].value()
    finally:
        for client in clients:
            await client.close()


async def test_an_edit_on_one_node_reaches_an_idle_client_on_another_through_the_bus(
    two_nodes: list[ServerProcess],
) -> None:
    # The idle client never writes, and the room sweep is off (see conftest): only the bus
    # can bring it the edit.
    async with YClient(two_nodes[0].ws_url, "quiet") as writer, \
            YClient(two_nodes[1].ws_url, "quiet") as reader:
        writer.insert(0, "across")
        await reader.wait_text("across", 5)


async def test_presence_on_one_node_reaches_a_client_on_another(
    two_nodes: list[ServerProcess],
) -> None:
    url = "/ws/present"
    async with websockets.connect(two_nodes[1].ws_url + url) as reader, \
            websockets.connect(two_nodes[0].ws_url + url) as writer:
        await reader.recv()  # sync step 1: the reader's room is open and subscribed
        await writer.recv()
        update = awareness.encode([(4242, 1, '{"user":"ann"}')])
        await writer.send(protocol.awareness(update))
        async with asyncio.timeout(5):
            while True:
                frame = await reader.recv()
                if isinstance(frame, bytes) and frame[:1] == b"\x01" and b'"ann"' in frame:
                    break
