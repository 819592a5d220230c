"""Deleting documents against real servers: a command for admins that closes every live
connection for good (4410, on every node), hides the document from everyone but its admins,
keeps it restorable whole, and is purged to the last row after the period."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from storage.database import open_database
from storage.schema import READ_MODEL_TABLES, documents, event_segments, events, snapshots
from tests.conftest import new_postgres_url, new_sqlite_url
from tests.governance.support import closed_with, palimpsest, settle
from tests.security.conftest import SECRET, close_of, raw, token
from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess
from tests.support.services import PostgresServer

pytestmark = pytest.mark.timeout(180)

ADMIN = token("root", {"*": "admin"})
WRITER = token("wendy", {"*": "write"})
READER = token("rita", {"*": "read"})


def auth(bearer: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {bearer}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"PALIMPSEST_SECRET": SECRET, "PALIMPSEST_SNAPSHOT_EVERY": "3"}
    with ServerProcess(new_sqlite_url(tmp_path), env=env) as process:
        yield process


async def rows_of(database_url: str, doc_id: str) -> dict[str, int]:
    db = open_database(database_url)
    try:
        counts = {}
        async with db.read() as conn:
            for table in (documents, events, event_segments, snapshots, *READ_MODEL_TABLES):
                column = table.c.id if table is documents else table.c.doc_id
                counts[table.name] = int((await conn.execute(
                    select(func.count()).select_from(table).where(column == doc_id))).scalar_one())
        return counts
    finally:
        await db.dispose()


async def test_deleting_hides_a_document_closes_it_for_good_and_undeleting_brings_it_back(
        server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        admin, writer, reader = auth(ADMIN), auth(WRITER), auth(READER)
        await http.post("/api/documents", json={"id": "memo", "title": "Memo"}, headers=admin)
        await http.post("/api/documents", json={"id": "other", "title": "Other"}, headers=admin)
        editor = YClient(server.ws_url, "memo", token=WRITER)
        await editor.connect()
        watcher = YClient(server.ws_url, "memo", token=READER)
        await watcher.connect()
        for word in ("one ", "two ", "three"):
            editor.insert(len(editor.value()), word)
        await watcher.wait_text("one two three")
        before = await settle_admin(http, "memo", "one two three")
        revisions = (await http.get("/api/documents/memo/revisions", headers=admin)).json()

        refused = await http.request("DELETE", "/api/documents/memo", headers=writer)
        assert refused.status_code == 403
        # Every governance command is for admins only.
        for method, path, body in (
                ("POST", "/api/documents/memo/erase", {"actor": "wendy", "reason": "r"}),
                ("POST", "/api/documents/memo/erase",
                 {"from_seq": 1, "to_seq": 2, "reason": "r"}),
                ("PUT", "/api/documents/memo/retention", {"keep_days": 0})):
            for headers in (writer, reader):
                answer = await http.request(method, path, json=body, headers=headers)
                assert answer.status_code == 403, (path, answer.text)
        deleted = await http.request("DELETE", "/api/documents/memo", headers=admin,
                                     json={"reason": "duplicate"})
        assert deleted.status_code == 200, deleted.text
        assert set(deleted.json()) == {"id", "seq", "deleted_at", "deleted_by", "purge_after"}
        assert deleted.json()["deleted_by"] == "root"

        # Every live connection closed with 4410, which a stock client does not retry.
        for client in (editor, watcher):
            assert client.ws is not None and await closed_with(client.ws) == 4410
            await client.close()
        async with raw(f"{server.ws_url}/ws/memo?token={WRITER}") as ws:
            assert (await close_of(ws))[0] == 4410
        async with raw(f"{server.ws_url}/ws/memo?token={ADMIN}") as ws:
            assert (await close_of(ws))[0] == 4410

        # Gone to everyone but its admins; listed for admins only, as deleted.
        for headers in (writer, reader):
            for path in ("/api/documents/memo", "/api/documents/memo/revisions",
                         "/api/documents/memo/events", "/api/documents/memo?at=2"):
                answer = await http.get(path, headers=headers)
                assert answer.status_code == 410 and answer.json()["error"]["code"] == "gone"
        seen = (await http.get("/api/documents/memo", headers=admin)).json()
        assert seen["text"] == "one two three" and seen["deleted"]["deleted_by"] == "root"
        listed = (await http.get("/api/documents", headers=admin)).json()["items"]
        assert [item["id"] for item in listed] == ["other"]
        shown = (await http.get("/api/documents?deleted=1", headers=admin)).json()["items"]
        assert [(item["id"], item["title"]) for item in shown] == [("memo", "Memo")]
        assert (await http.get("/api/documents?deleted=1", headers=writer)).json()["items"] == []
        rename = await http.patch("/api/documents/memo", json={"title": "x"}, headers=admin)
        assert rename.status_code == 410

        # Undeleting (admins only) brings it back whole.
        assert (await http.post("/api/documents/memo/undelete", headers=writer)).status_code == 403
        back = await http.post("/api/documents/memo/undelete", headers=admin)
        assert back.status_code == 200, back.text
        again = (await http.get("/api/documents/memo", headers=writer)).json()
        assert (again["text"], again["title"]) == (before["text"], before["title"])
        assert (await http.get("/api/documents/memo/revisions", headers=writer)
                ).json()["items"] == revisions["items"]
        assert (await http.post("/api/documents/memo/undelete", headers=admin)).status_code == 409
        async with YClient(server.ws_url, "memo", token=WRITER) as returning:
            await returning.wait_text("one two three")


async def test_purging_removes_every_row_only_after_the_period(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        admin = auth(ADMIN)
        await http.post("/api/documents", json={"id": "old", "title": "Old"}, headers=admin)
        async with YClient(server.ws_url, "old", token=WRITER) as editor:
            for i in range(8):
                editor.insert(0, f"{i} ")
            await settle_admin(http, "old", editor.value())
        assert (await rows_of(server.database_url, "old"))["snapshots"] > 0
        await http.post("/api/documents", json={"id": "also", "title": "Also"}, headers=admin)
        await http.request("DELETE", "/api/documents/also", headers=admin)
        await http.request("DELETE", "/api/documents/old", headers=admin)
        kept = await asyncio.to_thread(palimpsest, server.database_url, "purge")
        assert kept.returncode == 0 and "0 documents purged" in kept.stdout, kept.stdout
        purged = await asyncio.to_thread(palimpsest, server.database_url, "purge",
                                         "--doc", "old", "--older-than-days", "0")
        assert purged.returncode == 0, purged.stderr
        assert "old: purged" in purged.stdout and "1 documents purged" in purged.stdout
        assert set((await rows_of(server.database_url, "old")).values()) == {0}
        assert (await http.get("/api/documents/old", headers=admin)).status_code == 404
        # Only the one asked for: the other deleted document is still there, restorable.
        assert (await rows_of(server.database_url, "also"))["documents"] == 1
        assert (await http.post("/api/documents/also/undelete", headers=admin)
                ).status_code == 200


async def settle_admin(http: httpx.AsyncClient, doc_id: str, expected: str) -> dict[str, Any]:
    http.headers.update(auth(ADMIN))
    try:
        return await settle(http, doc_id, expected)
    finally:
        del http.headers["Authorization"]


def test_another_node_closes_its_connections_when_a_document_is_deleted(
        pg_server: PostgresServer) -> None:
    """Two nodes on one PostgreSQL without a bus between them: the other node learns from the
    log (its sweep), and closes its live connections with 4410."""
    url = new_postgres_url(pg_server)
    env = {"PALIMPSEST_ROOM_SWEEP_SECONDS": "0.5"}
    with ServerProcess(url, env=env) as one, ServerProcess(url, env=env) as two:
        asyncio.run(_delete_on_one_seen_on_two(one, two))


async def _delete_on_one_seen_on_two(one: ServerProcess, two: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=one.http_url, timeout=30) as http:
        await http.post("/api/documents", json={"id": "shared", "title": "S"})
        async with YClient(two.ws_url, "shared", name="bo") as far:
            far.insert(0, "hello")
            await settle(http, "shared", "hello")
            assert (await http.request("DELETE", "/api/documents/shared")).status_code == 200
            assert far.ws is not None and await closed_with(far.ws, 15) == 4410
