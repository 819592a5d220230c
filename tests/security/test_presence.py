"""Presence (awareness) attacks against a real server, each reproduced and shown to fail.

Issue 11: any connection, a reader included, could send awareness for another client's id with
a higher clock (it renamed a user, then removed them from everyone's people list), pin an id
with a clock of 2**63, and have non-JSON or huge states relayed. Also here: a reader cannot
create a document by connecting to it, and every close is logged.

Observers apply what they receive exactly as a stock client does (y-protocols'
applyAwarenessUpdate), so "what the others see" is what a browser would show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from server.realtime import awareness, protocol
from server.realtime.protocol import Reader
from storage.database import open_database
from storage.event_store import EventStore
from tests.conftest import new_sqlite_url
from tests.node.yclient import yclient
from tests.security.conftest import close_of, raw, recv_until, token
from tests.security.stalled import StalledClient, rss_kib
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.timeout(120)

MAX_SAFE = 2**53 - 1  # past it lib0's readVarUint throws, and the whole message is lost


class StockView:
    """What a stock client shows of a document's presence, fed by a raw connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.states: dict[int, Any] = {}
        self.clocks: dict[int, int] = {}
        self.seen: list[tuple[int, int, str]] = []  # every entry received, in order
        self.unreadable: list[bytes] = []  # frames a stock client would throw on
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for frame in self.ws:
                if isinstance(frame, bytes) and frame[:1] == bytes((1,)):
                    self._apply(Reader(frame, 1).var_bytes())
                    self._changed.set()

    def _apply(self, payload: bytes) -> None:
        entries = awareness.decode(payload)
        try:  # as y-protocols: JSON.parse of every state, clocks read by readVarUint
            parsed = [(c, k, json.loads(t, parse_constant=_refuse)) for c, k, t in entries]
            if any(k > MAX_SAFE or c > MAX_SAFE for c, k, _ in entries):
                raise ValueError("integer out of range")
        except ValueError:
            self.unreadable.append(payload)
            return
        self.seen += entries
        for client, clock, state in parsed:
            current = self.clocks.get(client, 0)
            if current < clock or (current == clock and state is None and client in self.states):
                if state is None:
                    self.states.pop(client, None)
                else:
                    self.states[client] = state
                self.clocks[client] = clock

    async def wait(self, condition: Callable[[], bool], within: float = 10) -> None:
        deadline = time.monotonic() + within
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not seen in time; states: {self.states}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def name(self, client: int) -> str | None:
        state = self.states.get(client)
        return state.get("user", {}).get("name") if isinstance(state, dict) else None

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


def _refuse(constant: str) -> None:
    raise ValueError(constant)


@contextlib.asynccontextmanager
async def watching(url: str) -> AsyncIterator[StockView]:
    async with raw(url) as ws:
        view = StockView(ws)
        try:
            yield view
        finally:
            await view.close()


def entry(client: int, clock: int, state: Any) -> tuple[int, int, str]:
    return client, clock, state if isinstance(state, str) else json.dumps(state)


def presence(*entries: tuple[int, int, str]) -> bytes:
    return protocol.awareness(awareness.encode(list(entries)))


def person(name: str, **more: Any) -> dict[str, Any]:
    return {"user": {"name": name, "color": "#30bced"}, **more}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Authentication on, the default limits (8 KiB a state, 32 KiB a connection)."""
    from tests.security.conftest import SECRET

    folder: Path = tmp_path_factory.mktemp("presence")
    with ServerProcess(new_sqlite_url(folder), env={"PALIMPSEST_SECRET": SECRET}) as process:
        yield process


async def _created(server: ServerProcess, doc: str) -> None:
    """A writer's connection creates the document (readers cannot)."""
    async with raw(f"{server.ws_url}/ws/{doc}?token={token('owner', {doc: 'write'})}") as ws:
        await recv_until(ws, bytes((0, 0)))


def _url(server: ServerProcess, doc: str, user: str, role: str) -> str:
    return f"{server.ws_url}/ws/{doc}?token={token(user, {doc: role})}"


# A. Presence is bound to the connection that introduced it.


async def test_a_reader_cannot_rename_or_remove_another_users_presence(
    secured: ServerProcess,
) -> None:
    doc = "forged-presence"
    await _created(secured, doc)
    victim_id = 1001
    async with raw(_url(secured, doc, "vera", "write")) as vera, \
            watching(_url(secured, doc, "olga", "read")) as olga:
        await vera.send(presence(entry(victim_id, 1, person("Vera"))))
        await olga.wait(lambda: olga.name(victim_id) == "Vera")
        async with raw(_url(secured, doc, "mallory", "read")) as mallory:
            await recv_until(mallory, bytes((0, 0)))
            forged = person("Vera (I resign, ignore my edits)")
            await mallory.send(presence(entry(victim_id, 2, forged)))
            await mallory.send(presence(entry(victim_id, 3, "null")))
            await mallory.send(presence(entry(victim_id, 2**63, forged)))
            await mallory.send(presence(entry(victim_id, 2**63 + 1, "null")))
            # Vera's own next change is the marker: everything mallory sent came before it.
            await vera.send(presence(entry(victim_id, 2, person("Vera", cursor=7))))
            await olga.wait(lambda: olga.states.get(victim_id, {}).get("cursor") == 7)
            # Mallory is not closed (a stock client echoes others' states: routine).
            await mallory.send(bytes((protocol.MESSAGE_QUERY_AWARENESS,)))
            answer = await recv_until(mallory, bytes((1,)))
            assert b"resign" not in answer and b'"Vera"' in answer
        names = [json.loads(t) for c, _, t in olga.seen if c == victim_id]
        assert None not in names, "Vera was removed from the people list"
        assert all(n["user"]["name"] == "Vera" for n in names), names
        async with watching(_url(secured, doc, "newcomer", "read")) as newcomer:
            await newcomer.wait(lambda: newcomer.name(victim_id) == "Vera")


async def test_a_clock_of_2_63_does_not_pin_an_id(secured: ServerProcess) -> None:
    doc = "pinned-presence"
    await _created(secured, doc)
    vera_id = 2002
    async with watching(_url(secured, doc, "olga", "read")) as olga:
        async with raw(_url(secured, doc, "vera", "write")) as vera:
            await vera.send(presence(entry(vera_id, 5, person("Vera"))))
            await olga.wait(lambda: olga.name(vera_id) == "Vera")
        await olga.wait(lambda: vera_id not in olga.states)  # she left: her id is free
        async with raw(_url(secured, doc, "mallory", "read")) as mallory:
            await recv_until(mallory, bytes((0, 0)))
            await mallory.send(presence(entry(vera_id, 2**63, person("Pinned"))))
            await mallory.send(presence(entry(vera_id, 2**63 + 1, person("Pinned again"))))
            await olga.wait(lambda: olga.name(vera_id) == "Pinned again")
        await olga.wait(lambda: vera_id not in olga.states)
        # Vera comes back with her own clock, far below 2**63: everyone sees her.
        async with raw(_url(secured, doc, "vera", "write")) as vera:
            await vera.send(presence(entry(vera_id, 6, person("Vera is back"))))
            await olga.wait(lambda: olga.name(vera_id) == "Vera is back")
            async with watching(_url(secured, doc, "newcomer", "read")) as newcomer:
                await newcomer.wait(lambda: newcomer.name(vera_id) == "Vera is back")
    assert olga.unreadable == [], "a relayed clock a stock client cannot decode"
    assert max(k for _, k, _ in olga.seen) < 10_000  # relayed clocks move by bounded steps


@pytest.mark.parametrize("state", ["not json", '{"a": NaN}', '{"a": Infinity}', "[1, 2]",
                                   '"just a string"', "42", "true", '{"a": 1', "[" * 3000])
async def test_a_state_that_is_not_a_json_object_is_not_relayed(
    secured: ServerProcess, state: str,
) -> None:
    doc = "bad-states"
    await _created(secured, doc)
    async with watching(_url(secured, doc, "olga", "read")) as olga, \
            raw(_url(secured, doc, "mallory", "read")) as mallory:
        await recv_until(mallory, bytes((0, 0)))
        await mallory.send(presence((3001, 1, state), entry(3002, 1, person("marker"))))
        await olga.wait(lambda: olga.name(3002) == "marker")
        assert 3001 not in {c for c, _, _ in olga.seen}
        assert olga.unreadable == []
        await mallory.send(presence(entry(3002, 2, person("still connected"))))
        await olga.wait(lambda: olga.name(3002) == "still connected")


async def test_oversized_states_are_not_relayed_and_a_connection_holds_at_most_32_kib(
    secured: ServerProcess,
) -> None:
    doc = "big-states"
    await _created(secured, doc)
    near = person("n" * (8192 - 60))  # just under 8 KiB once encoded
    assert 8100 < len(json.dumps(near)) <= 8192
    async with watching(_url(secured, doc, "olga", "read")) as olga, \
            raw(_url(secured, doc, "mallory", "read")) as mallory:
        await recv_until(mallory, bytes((0, 0)))
        await mallory.send(presence(entry(4001, 1, person("x" * 8192)),
                                    entry(4002, 1, person("x" * 4 * 1024 * 1024))))
        # Four states of 8 KiB (and the small marker) fit the connection's 32 KiB; a fifth
        # does not.
        await mallory.send(presence(*(entry(c, 1, near) for c in range(4010, 4015)),
                                    entry(4020, 1, person("marker"))))
        await olga.wait(lambda: olga.name(4020) == "marker")
        shown = set(olga.states)
        assert shown.isdisjoint({4001, 4002}), shown
        assert len(shown & set(range(4010, 4015))) == 4
        assert max(len(t) for _, _, t in olga.seen) <= 8192


async def test_the_same_user_reconnecting_takes_over_their_id_but_no_one_else_does(
    secured: ServerProcess,
) -> None:
    """A client reconnects before the server noticed its old connection die: its own user may
    take its id over, anyone else stays refused."""
    doc = "reconnect-presence"
    await _created(secured, doc)
    async with watching(_url(secured, doc, "olga", "read")) as olga, \
            raw(_url(secured, doc, "vera", "write")) as old:
        await old.send(presence(entry(5001, 9, person("Vera"))))
        await olga.wait(lambda: olga.name(5001) == "Vera")
        async with raw(_url(secured, doc, "mallory", "write")) as mallory:
            await mallory.send(presence(entry(5001, 10, person("Mallory"))))
            async with raw(_url(secured, doc, "vera", "write")) as new:
                await new.send(presence(entry(5001, 9, person("Vera, new tab"))))
                await olga.wait(lambda: olga.name(5001) == "Vera, new tab")
                await old.close()  # the old connection's end removes nothing it gave up
                await new.send(presence(entry(5001, 10, person("Vera, typing"))))
                await olga.wait(lambda: olga.name(5001) == "Vera, typing")
                assert all(json.loads(t) is not None and "Mallory" not in t
                           for c, _, t in olga.seen if c == 5001)


# B. The memory attack of issue 11, scaled down: huge states and readers that never read.


async def test_memory_stays_bounded_under_huge_awareness_states(tmp_path: Path) -> None:
    """Two connections each announce 16 states of 1 MiB (the attack used 4 MiB); five
    connections never read and ask for every state again and again. Before: every state was
    kept, relayed, and copied into each query's answer (1.4 GB RSS at full scale)."""
    with ServerProcess(new_sqlite_url(tmp_path)) as server:
        doc = "memory"
        url = f"{server.ws_url}/ws/{doc}"
        assert server.process is not None
        pid = server.process.pid
        stalled = [StalledClient(server.port, f"/ws/{doc}") for _ in range(5)]
        try:
            async with raw(url) as first, raw(url) as second, watching(url) as olga:
                await recv_until(first, bytes((0, 0)))
                await recv_until(second, bytes((0, 0)))
                peak_before = rss_kib(pid, "VmHWM")
                huge = person("h" * (1 << 20))
                for ws, base in ((first, 100), (second, 200)):
                    for client in range(base, base + 16):
                        await ws.send(presence(entry(client, 1, huge)))
                    await ws.send(presence(entry(base + 99, 1, person(f"marker {base}"))))
                for _ in range(20):
                    for client in stalled:
                        client.send(bytes((protocol.MESSAGE_QUERY_AWARENESS,)))
                await olga.wait(lambda: olga.name(199) == "marker 100"
                                and olga.name(299) == "marker 200", within=30)
                grown = rss_kib(pid, "VmHWM") - peak_before
                assert not set(olga.states) & (set(range(100, 116)) | set(range(200, 216)))
                print(f"peak RSS grew by {grown / 1024:.1f} MiB")
                # 32 MiB of states went in; what the server held at its peak stays below it.
                assert grown < 32 * 1024, f"peak RSS grew by {grown} KiB"
        finally:
            for client in stalled:
                client.close()


# E. A reader cannot create a document by connecting to it.


async def _document_exists(database_url: str, doc: str) -> bool:
    db = open_database(database_url)
    try:
        return await EventStore(db).document(doc) is not None
    finally:
        await db.dispose()


async def test_a_reader_connecting_to_a_new_id_gets_4404_and_creates_nothing(
    secured: ServerProcess,
) -> None:
    doc = "never-created"
    async with raw(_url(secured, doc, "rita", "read")) as ws:
        assert await close_of(ws) == (4404, "no such document")
    assert not await _document_exists(secured.database_url, doc)
    # A stock client takes 4404 as final: it does not hammer the server.
    async with yclient(f"{secured.ws_url}/ws", doc, {"token": token("rita", {doc: "read"})}) as c:
        await c.wait_event("connection-close", code=4404)
        await asyncio.sleep(1.5)  # a retry would start within 200 ms (its first backoff)
        assert [e for e in c.events if e.get("status") == "connecting"] == [
            {"event": "status", "status": "connecting"}]
    assert not await _document_exists(secured.database_url, doc)
    # A writer still creates it by connecting, and then the reader gets in.
    async with raw(_url(secured, doc, "wendy", "write")) as writer:
        await recv_until(writer, bytes((0, 0)))
    assert await _document_exists(secured.database_url, doc)
    async with raw(_url(secured, doc, "rita", "read")) as ws:
        await recv_until(ws, bytes((0, 0)))


# F. Why every connection ends is logged, at INFO.


async def _logged(server: ServerProcess, pattern: str, within: float = 10) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = re.search(pattern, server.log_path.read_text(errors="replace"), re.MULTILINE)
        if found:
            return found.group(0)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{pattern!r} not in the server log:\n{server.log()}")


async def test_every_close_is_logged_with_code_reason_document_user_and_address(
    secured: ServerProcess,
) -> None:
    async with raw(_url(secured, "log-missing", "rita", "read")) as ws:
        await close_of(ws)
    await _logged(secured, r"^INFO server\.realtime\.websocket: websocket closed: code=4404 "
                           r"by=server reason='no such document' doc='log-missing' "
                           r"user='rita' address=127\.0\.0\.1$")
    doc = "log-normal"
    async with raw(_url(secured, doc, "wendy", "write")) as ws:
        await recv_until(ws, bytes((0, 0)))
        await ws.close(1000, "bye")
    await _logged(secured, r"websocket closed: code=1000 by=client reason='bye' "
                           r"doc='log-normal' user='wendy' address=127\.0\.0\.1$")
    async with raw(f"{secured.ws_url}/ws/{doc}?token=forged") as ws:
        await close_of(ws)
    await _logged(secured, r"websocket closed: code=4401 by=server reason='[^']*' "
                           r"doc='log-normal' user=None address=127\.0\.0\.1$")
