"""Retention against a real server: a document's own policy applied by the server's schedule,
`palimpsest compact` beside a running server, and absorbed seqs answered over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import new_sqlite_url
from tests.governance.support import palimpsest, settle
from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"PALIMPSEST_KEEP_DAYS": "never", "PALIMPSEST_MAINTENANCE_INTERVAL_SECONDS": "0.5",
           "PALIMPSEST_SNAPSHOT_EVERY": "10", "PALIMPSEST_DELETED_RETENTION_DAYS": "0"}
    with ServerProcess(new_sqlite_url(tmp_path), env=env) as process:
        yield process


async def kinds(http: httpx.AsyncClient, doc_id: str) -> list[str]:
    items = (await http.get(f"/api/documents/{doc_id}/events?limit=500")).json()["items"]
    return [e["kind"] for e in items]


async def type_words(client: YClient, words: int) -> None:
    for i in range(words):
        client.insert(len(client.value()), f"w{i} ")
        await asyncio.sleep(0.005)


async def test_the_schedule_applies_a_documents_own_policy_while_it_is_edited(
        server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        for doc_id in ("kept", "trimmed"):
            await http.post("/api/documents", json={"id": doc_id, "title": doc_id})
        async with YClient(server.ws_url, "kept", name="ann") as kept, \
                YClient(server.ws_url, "trimmed", name="ann") as trimmed:
            await type_words(kept, 30)
            await type_words(trimmed, 30)
            await settle(http, "trimmed", trimmed.value())
            before = {seq: (await http.get(f"/api/documents/trimmed?at={seq}")).json()["text"]
                      for seq in range(32)}
            policy = await http.put("/api/documents/trimmed/retention", json={"keep_days": 0})
            assert policy.status_code == 200, policy.text

            async def compacted() -> bool:
                return "compaction" in await kinds(http, "trimmed")

            await _eventually(compacted, 20)
            await type_words(trimmed, 5)  # editing goes on, on the same live document
            final = trimmed.value()
            await settle(http, "trimmed", final)
        async with YClient(server.ws_url, "trimmed", name="newcomer") as newcomer:
            await newcomer.wait_text(final)
        assert "compaction" not in await kinds(http, "kept")
        events = (await http.get("/api/documents/trimmed/events?limit=500")).json()["items"]
        present = {e["seq"] for e in events}
        absorbed = [seq for seq in range(1, 32) if seq not in present]
        assert absorbed, "nothing was merged"
        for seq in absorbed:
            answer = await read_at(http, "trimmed", seq)
            assert answer["absorbed"]["seq"] == seq and answer["seq"] == answer["absorbed"][
                "to_seq"] > seq
            assert answer["text"] == before[answer["seq"]]
        for seq in sorted(present & set(before)):
            assert (await read_at(http, "trimmed", seq))["text"] == before[seq]
        diff = (await http.get(f"/api/documents/trimmed/diff?from={absorbed[0]}&to=31")).json()
        assert diff["absorbed"][0]["seq"] == absorbed[0]

        # The same pass purges what was deleted longer ago than the period (here: 0 days).
        assert (await http.request("DELETE", "/api/documents/kept")).status_code == 200

        async def purged() -> bool:
            return (await http.get("/api/documents/kept")).status_code == 404

        await _eventually(purged, 20)
        assert (await http.get("/api/documents?deleted=1")).json()["items"] == []


async def test_compact_command_beside_a_running_server_reports_bytes(
        server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        await http.post("/api/documents", json={"id": "doc", "title": "d"})
        async with YClient(server.ws_url, "doc", name="bo") as client:
            await type_words(client, 40)
            await settle(http, "doc", client.value())
            result = await asyncio.to_thread(palimpsest, server.database_url, "compact",
                                             "--doc", "doc", "--keep-days", "0")
            assert result.returncode == 0, result.stderr
            assert "doc: kept 0 days whole;" in result.stdout, result.stdout
            assert "payload bytes" in result.stdout
            client.insert(0, ">> ")
            await settle(http, "doc", client.value())
        assert "compaction" in await kinds(http, "doc")
        verified = await asyncio.to_thread(palimpsest, server.database_url, "verify")
        assert verified.returncode == 0, verified.stdout


async def read_at(http: httpx.AsyncClient, doc_id: str, seq: int) -> dict[str, Any]:
    """The document at `seq`. The schedule keeps compacting this document while it is read;
    a read that overlaps a rebuild answers 504 (retry shortly), as any client retries it."""
    for _ in range(100):  # bounded: 10 s
        answer = await http.get(f"/api/documents/{doc_id}?at={seq}")
        if answer.status_code != 504:
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body
        assert answer.json()["error"]["code"] == "read_side_behind", answer.text
        await asyncio.sleep(0.1)
    raise AssertionError(f"the read side of {doc_id} stayed behind seq {seq} for 10 s")


async def _eventually(condition: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not in time")
        await asyncio.sleep(0.1)
