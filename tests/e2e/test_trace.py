"""A real editing trace typed by four concurrent clients converges, and survives a restart."""

from __future__ import annotations

import asyncio
import os

from tests.support.pyclient import YClient
from tests.support.replay import cold_replay, load_trace
from tests.support.server_process import ServerProcess

# A prefix keeps CI fast; the benchmark (bench/) replays the whole trace.
PATCHES = int(os.environ.get("PALIMPSEST_TEST_TRACE_PATCHES", "12000"))
CHUNK = 400
CLIENTS = 4


async def test_trace_dealt_across_four_clients_converges(server: ServerProcess) -> None:
    trace = load_trace()
    patches = trace.patches[:PATCHES]
    expected = trace.text_after(len(patches))
    chunks = [patches[i : i + CHUNK] for i in range(0, len(patches), CHUNK)]
    clients = [YClient(server.ws_url, "paper") for _ in range(CLIENTS)]
    for client in clients:
        await client.connect()
    try:

        async def type_chunks(index: int) -> None:
            client = clients[index]
            for number in range(index, len(chunks), CLIENTS):
                # Positions are relative to the text after every earlier patch: wait for it.
                await client.wait_text(trace.text_after(number * CHUNK), timeout=60)
                for pos, delete, insert in chunks[number]:
                    if delete:
                        client.delete(pos, delete)
                    if insert:
                        client.insert(pos, insert)
                    await asyncio.sleep(0)  # let the provider send each patch as its own update

        await asyncio.gather(*(type_chunks(i) for i in range(CLIENTS)))
        for client in clients:
            await client.wait_text(expected, timeout=60)
    finally:
        for client in clients:
            await client.close()

    async with YClient(server.ws_url, "paper") as late:
        await late.wait_text(expected, timeout=30)
    server.restart()
    async with YClient(server.ws_url, "paper") as after_restart:
        await after_restart.wait_text(expected, timeout=30)
    assert await cold_replay(server.database_url, "paper") == expected
