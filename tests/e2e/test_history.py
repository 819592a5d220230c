"""History end to end: restore under live editing, restoring a revision exactly, the
`palimpsest rebuild` command, and the roles run as separate processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import pytest

from storage.database import open_database
from storage.read_model import ReadModel
from tests.conftest import new_postgres_url
from tests.support.pyclient import YClient, wait_for
from tests.support.replay import cold_replay
from tests.support.server_process import ROOT, ServerProcess
from tests.support.services import PostgresServer, RedisServer


async def read_side(http: httpx.AsyncClient, doc_id: str, min_seq: int) -> dict[str, object]:
    answer = await http.get(f"/api/documents/{doc_id}", params={"min_seq": min_seq})
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


async def head(http: httpx.AsyncClient, doc_id: str) -> int:
    events = (await http.get(f"/api/documents/{doc_id}/events", params={"limit": 500})).json()
    while events["next"] is not None:
        events = (await http.get(f"/api/documents/{doc_id}/events",
                                 params={"after": events["next"], "limit": 500})).json()
    return int(events["seq"])


async def test_restore_while_two_clients_keep_editing_converges_everywhere(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as http, \
            YClient(server.ws_url, "story", name="ann") as ann, \
            YClient(server.ws_url, "story", name="bob") as bob:
        ann.insert(0, "Once upon a time.")
        await bob.wait_text("Once upon a time.")
        early = await head(http, "story")
        bob.insert(len(bob.value()), " The end.")
        await ann.wait_text("Once upon a time. The end.")

        async def keep_typing(client: YClient, mark: str, stop: asyncio.Event) -> int:
            typed = 0
            while not stop.is_set() and typed < 200:
                client.insert(len(client.value()) // 2, mark)
                typed += 1
                await asyncio.sleep(0.005)
            return typed

        stop = asyncio.Event()
        typists = [asyncio.create_task(keep_typing(ann, "a", stop)),
                   asyncio.create_task(keep_typing(bob, "b", stop))]
        await asyncio.sleep(0.2)
        restored = await http.post("/api/documents/story/restore", json={"seq": early},
                                   headers={"X-Palimpsest-Name": "cy"})
        assert restored.status_code == 200, restored.text
        assert restored.json()["restored_from"] == early
        await asyncio.sleep(0.2)
        stop.set()
        typed = await asyncio.gather(*typists)
        assert all(count > 0 for count in typed)

        await wait_for(lambda: ann.value() == bob.value(), 10,
                       lambda: f"{ann.value()!r} != {bob.value()!r}")
        final = ann.value()
        assert "The end." not in final  # the restore happened ...
        assert "b" in final  # ... and the edits typed after it are all there
        seq = await head(http, "story")
        assert (await read_side(http, "story", seq))["text"] == final
        assert await cold_replay(server.database_url, "story") == final
        events = (await http.get("/api/documents/story/events", params={"limit": 500})).json()
        restores = [e for e in events["items"] if e["kind"] == "restore"]
        assert [(e["actor"], e["seq"]) for e in restores] == [("cy", restored.json()["seq"])]
        # Nothing lost: the text before the restore is still there to read.
        before = await http.get("/api/documents/story", params={"at": restores[0]["seq"] - 1})
        assert "The end." in before.json()["text"]


async def test_restoring_a_revision_gives_exactly_its_text(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as http:
        async with YClient(server.ws_url, "memo", name="ann") as ann:
            ann.insert(0, "first draft")
            await wait_for(lambda: True, 0)
            seq = await _wait_head(http, "memo", 1)
        # A named version closes the working session: bob's edit starts another revision.
        named = await http.post("/api/documents/memo/versions", json={"seq": seq, "name": "v1"})
        assert named.status_code == 201, named.text
        seq += 1
        async with YClient(server.ws_url, "memo", name="bob") as bob:
            await bob.wait_text("first draft")
            bob.delete(0, 5)
            bob.insert(0, "second")
            seq = await _wait_head(http, "memo", seq + 2)
        revisions = (await http.get("/api/documents/memo/revisions",
                                    params={"min_seq": seq})).json()["items"]
        ann_revision = next(r for r in revisions if r["authors"] == ["ann"])
        restored = await http.post("/api/documents/memo/restore",
                                   json={"revision": ann_revision["number"]})
        assert restored.status_code == 200, restored.text
        assert restored.json()["restored_from"] == ann_revision["to_seq"]
        now = await read_side(http, "memo", restored.json()["seq"])
        assert now["text"] == "first draft"
        async with YClient(server.ws_url, "memo") as late:
            await late.wait_text("first draft")
        newest = (await http.get("/api/documents/memo/revisions")).json()["items"][0]
        assert newest["from_seq"] == newest["to_seq"] == restored.json()["seq"]


async def _wait_head(http: httpx.AsyncClient, doc_id: str, at_least: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = await http.get(f"/api/documents/{doc_id}/events", params={"limit": 500})
        if answer.status_code == 200 and answer.json()["seq"] >= at_least:
            return int(answer.json()["seq"])
        await asyncio.sleep(0.02)
    raise AssertionError(f"{doc_id} did not reach seq {at_least}")


async def test_rebuild_command_recreates_the_tables_kept_live(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as http:
        await http.post("/api/documents", json={"id": "log", "title": "Log"})
        async with YClient(server.ws_url, "log", name="ann") as ann:
            for i in range(30):
                ann.insert(len(ann.value()), f"line {i}\n")
                await asyncio.sleep(0.002)
            seq = await _wait_head(http, "log", 2)
        await http.post("/api/documents/log/versions", json={"seq": seq, "name": "v1"})
        await http.patch("/api/documents/log", json={"title": "Log, renamed"})
        seq = await head(http, "log")
        await read_side(http, "log", seq)
    server.stop()
    db = open_database(server.database_url)
    try:
        live = await ReadModel(db).dump(1000)
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "server.cli", "rebuild"], cwd=ROOT, capture_output=True,
            text=True, timeout=120, env={**os.environ, "DATABASE_URL": server.database_url},
        )
        assert result.returncode == 0, result.stderr
        assert "rebuilt" in result.stdout
        assert await ReadModel(db).dump(1000) == live
        assert live["document_views"][0][1] == "Log, renamed"
    finally:
        await db.dispose()
        server.start()


@pytest.mark.postgres
def test_roles_run_as_separate_processes(pg_server: PostgresServer) -> None:
    asyncio.run(_roles(new_postgres_url(pg_server)))


async def _roles(url: str) -> None:
    env = {"PALIMPSEST_READ_WAIT_SECONDS": "10"}
    with ServerProcess(url, role="write", env=env) as writer, \
            ServerProcess(url, role="read", env=env) as reader, \
            ServerProcess(url, role="projector", env=env) as projector:
        async with httpx.AsyncClient(timeout=20) as http:
            created = await http.post(f"{writer.http_url}/api/documents",
                                      json={"id": "split", "title": "Split"})
            assert created.status_code == 201
            async with YClient(writer.ws_url, "split", name="ann") as ann:
                ann.insert(0, "written on the writer")
                seq = await _wait_head_at(http, reader.http_url, "split", 2)
            answer = await http.get(f"{reader.http_url}/api/documents/split",
                                    params={"min_seq": seq})
            assert answer.json()["text"] == "written on the writer"
            # Each process serves only its role.
            assert (await http.get(f"{writer.http_url}/api/documents/split")).status_code == 405
            assert (await http.post(f"{reader.http_url}/api/documents",
                                    json={"title": "x"})).status_code == 405
            assert (await http.get(f"{projector.http_url}/api/documents")).status_code == 404
            for process in (writer, reader, projector):
                assert (await http.get(f"{process.http_url}/metrics")).status_code == 200


async def _wait_head_at(http: httpx.AsyncClient, base: str, doc_id: str, at_least: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = await http.get(f"{base}/api/documents/{doc_id}/events")
        if answer.status_code == 200 and answer.json()["seq"] >= at_least:
            return int(answer.json()["seq"])
        await asyncio.sleep(0.02)
    raise AssertionError(f"{doc_id} did not reach seq {at_least}")


@pytest.mark.postgres
@pytest.mark.redis
def test_two_nodes_project_together_as_one_rebuild_would(
    pg_server: PostgresServer, redis_server: RedisServer,
) -> None:
    """Two full nodes on one Postgres and Redis: both run a projector; the leases share the
    documents out, reads on either node see writes made on the other, and the tables they
    keep equal a rebuild's."""
    asyncio.run(_two_nodes(new_postgres_url(pg_server), redis_server.url))


async def _two_nodes(url: str, redis_url: str) -> None:
    env = {"PALIMPSEST_REDIS_PREFIX": f"history-{os.getpid()}-{time.monotonic_ns()}"}
    with ServerProcess(url, redis_url=redis_url, env=env) as one, \
            ServerProcess(url, redis_url=redis_url, env=env) as two:
        async with httpx.AsyncClient(timeout=20) as http:
            docs = [f"shared-{i}" for i in range(4)]
            clients = [YClient((one if i % 2 else two).ws_url, doc, name=f"u{i}")
                       for i, doc in enumerate(docs)]
            for client in clients:
                await client.connect()
            try:
                for round_ in range(10):
                    for client in clients:
                        client.insert(len(client.value()), f"{round_} ")
                    await asyncio.sleep(0.01)
                for i, doc in enumerate(docs):
                    reader = two if i % 2 else one  # the other node
                    seq = await _wait_head_at(http, reader.http_url, doc, 10)
                    answer = await http.get(f"{reader.http_url}/api/documents/{doc}",
                                            params={"min_seq": seq})
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["text"] == clients[i].value()
            finally:
                for client in clients:
                    await client.close()
    db = open_database(url)
    try:
        kept = await ReadModel(db).dump(1000)
        from server.read.projector import Projector
        from server.read.rebuild import rebuild
        from storage.event_store import EventStore

        read_model = ReadModel(db)
        await rebuild(read_model, Projector(EventStore(db), read_model, snapshot_every=1000))
        assert await ReadModel(db).dump(1000) == kept
    finally:
        await db.dispose()
