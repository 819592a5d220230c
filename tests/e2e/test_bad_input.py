"""Every kind of bad frame closes only its own connection, with a specific code and reason."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from server.realtime import protocol
from tests.support.pyclient import YClient, wait_for
from tests.support.replay import cold_replay, stored_events
from tests.support.server_process import ServerProcess

VALID = protocol.sync_update(b"\x00\x00")

BAD_FRAMES: list[tuple[str, bytes | str, int]] = [
    ("text frame", "hello", 1003),
    ("empty frame", b"", 4400),
    ("unknown message type", b"\x07\x00", 4415),
    ("unknown sync subtype", b"\x00\x09\x00", 4415),
    ("truncated length", b"\x00\x02\xff", 4400),
    ("length past the end", b"\x00\x02\x10abc", 4400),
    ("trailing garbage", VALID + b"\x01\x02", 4400),
    ("garbage update", protocol.sync_update(b"\xff\xff\xff\xff\x0f\x01\x02\x03"), 4422),
    ("truncated update", protocol.sync_update(b"\x01\x01\xf4\x03\x00\x04"), 4422),
    ("bad state vector", protocol.sync_step1(b"\x05\x01"), 4400),
    ("bad awareness", protocol.awareness(b"\x02\x01"), 4400),
    ("oversized frame", b"\x00\x02" + b"\x80" * 9 + b"\x01", 1009),
]


@pytest.fixture
def small_limits_server(database_url: str) -> ServerProcess:
    env = {"PALIMPSEST_MAX_FRAME_BYTES": "4096", "PALIMPSEST_MAX_UPDATE_BYTES": "2048"}
    with ServerProcess(database_url, env=env) as process:
        yield process  # type: ignore[misc]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("name", "frame", "code"), BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
async def test_bad_frame_closes_connection_with_reason_and_changes_nothing(
    small_limits_server: ServerProcess, name: str, frame: bytes | str, code: int
) -> None:
    server = small_limits_server
    if name == "oversized frame":
        frame = protocol.sync_update(b"\x00" * 5000)
    async with YClient(server.ws_url, "doc") as bystander:
        bystander.insert(0, "intact")
        before = len(await _events_when(server, "doc", 1))
        async with websockets.connect(f"{server.ws_url}/ws/doc", max_size=None) as ws:
            await ws.send(frame)
            async with asyncio.timeout(10):
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == code, closed.value.rcvd
            assert closed.value.rcvd.reason, "a close must say why"
        # The bystander's connection and the document carry on.
        bystander.insert(6, "!")
        async with YClient(server.ws_url, "doc") as later:
            await later.wait_text("intact!")
    assert len(await stored_events(server.database_url, "doc")) == before + 1


async def test_update_over_the_update_limit_is_refused(small_limits_server: ServerProcess) -> None:
    server = small_limits_server
    async with YClient(server.ws_url, "doc") as big:
        big.insert(0, "y" * 3000)  # a 3 kB update: under the frame limit, over the update limit
        async with YClient(server.ws_url, "doc") as other:
            with pytest.raises(AssertionError):
                await other.wait_text("y" * 3000, timeout=1.5)
    assert await stored_events(server.database_url, "doc") == []


async def _events_when(server: ServerProcess, doc: str, count: int) -> list[object]:
    async with asyncio.timeout(10):
        while True:
            events = await stored_events(server.database_url, doc)
            if len(events) >= count:
                return list(events)
            await asyncio.sleep(0.02)


async def test_update_ahead_of_its_dependencies_is_kept_and_survives_a_snapshot(
    server: ServerProcess,
) -> None:
    """A reconnecting stock client may send keystrokes before the step 2 they build on: such
    an update is stored, and yrs integrates it once its base arrives, even across a room
    unload (whose snapshot must not drop it)."""
    from pycrdt import Doc, Text, get_state

    async with YClient(server.ws_url, "doc") as author:
        author.insert(0, "intact")
        async with YClient(server.ws_url, "doc") as check:
            await check.wait_text("intact")
    other = Doc()
    text = other.get("content", type=Text)
    text.insert(0, "ab")
    base = other.get_update()
    text.insert(2, "cd")
    ahead = other.get_update(get_state(base))
    before = len(await stored_events(server.database_url, "doc"))
    async with websockets.connect(f"{server.ws_url}/ws/doc") as ws:
        await ws.send(protocol.sync_update(ahead))
        await _events_when(server, "doc", before + 1)
    # The test server unloads an empty room after 1 s, snapshotting it if that is safe.
    await asyncio.sleep(1.5)
    async with YClient(server.ws_url, "doc") as fresh:
        await fresh.wait_text("intact")
        async with websockets.connect(f"{server.ws_url}/ws/doc") as ws:
            await ws.send(protocol.sync_update(base))
            # Where "abcd" lands beside "intact" depends on the two clients' random ids.
            await wait_for(lambda: fresh.value() in ("abcdintact", "intactabcd"), 10,
                           fresh.value)
    assert await cold_replay(server.database_url, "doc") == fresh.value()
