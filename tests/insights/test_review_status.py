"""The review lifecycle: transitions as commands, read-only published documents, read models."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.realtime import protocol
from tests.conftest import new_sqlite_url
from tests.security.conftest import SECRET, logged_events, raw, recv_until, token
from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder: Path = tmp_path_factory.mktemp("status")
    with ServerProcess(new_sqlite_url(folder), env={"PALIMPSEST_SECRET": SECRET}) as process:
        yield process


def auth(user: str, role: str, docs: str = "st-*") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, {docs: role})}"}


WRITER = auth("wendy", "write")
ADMIN = auth("ada", "admin")
READER = auth("rob", "read")


async def move(http: httpx.AsyncClient, doc: str, to: str, who: dict[str, str],
               note: str = "") -> httpx.Response:
    return await http.post(f"/api/documents/{doc}/status", json={"to": to, "note": note},
                           headers=who)


async def test_transitions_follow_the_state_machine_and_roles(
        secure_server: ServerProcess) -> None:
    doc = "st-machine"
    async with httpx.AsyncClient(base_url=secure_server.http_url, timeout=10) as http:
        assert (await http.post("/api/documents", json={"id": doc, "title": "Machine"},
                                headers=WRITER)).status_code == 201
        refused = await move(http, doc, "published", ADMIN)
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "invalid_transition"
        assert error["allowed"] == ["in_review", "archived"]
        assert (await move(http, doc, "in_review", READER)).status_code == 403
        submitted = await move(http, doc, "in_review", WRITER, "ready for review")
        assert submitted.status_code == 200
        assert submitted.json()["status"] == "in_review"
        assert (await move(http, doc, "published", WRITER)).status_code == 403  # admin only
        assert (await move(http, doc, "draft", WRITER, "fix the intro")).status_code == 200
        assert (await move(http, doc, "in_review", WRITER)).status_code == 200
        published = await move(http, doc, "published", ADMIN, "approved")
        assert published.status_code == 200
        assert (await move(http, doc, "bogus", ADMIN)).status_code == 400
        seq = published.json()["seq"]
        history = (await http.get(f"/api/documents/{doc}/status-history",
                                  params={"min_seq": seq}, headers=READER)).json()
        assert [(i["from"], i["to"], i["actor"], i["note"]) for i in history["items"]] == [
            ("draft", "in_review", "wendy", "ready for review"),
            ("in_review", "draft", "wendy", "fix the intro"),
            ("draft", "in_review", "wendy", ""),
            ("in_review", "published", "ada", "approved"),
        ]
        assert history["seq"] >= seq and history["items"][-1]["seq"] == seq
        document = (await http.get(f"/api/documents/{doc}", headers=READER)).json()
        assert document["status"] == "published"
        listed = (await http.get("/api/documents", params={"status": "published"},
                                 headers=READER)).json()
        assert [item["id"] for item in listed["items"]] == [doc]
        assert listed["items"][0]["status"] == "published"
        drafts = (await http.get("/api/documents", params={"status": "draft"},
                                 headers=READER)).json()
        assert doc not in [item["id"] for item in drafts["items"]]
        assert (await http.get("/api/documents", params={"status": "nope"},
                               headers=READER)).status_code == 400


async def test_of_concurrent_transitions_exactly_one_passes(
        secure_server: ServerProcess) -> None:
    doc = "st-race"
    async with httpx.AsyncClient(base_url=secure_server.http_url, timeout=20) as http:
        await http.post("/api/documents", json={"id": doc, "title": "Race"}, headers=WRITER)
        for round_, (start, target) in enumerate([("in_review", "published"),
                                                   ("draft", "archived"),
                                                   ("in_review", "draft")]):
            # Eight callers ask for the same transition at once: one passes, the others
            # find the document already moved (409, naming what is allowed from there).
            if start == "in_review":
                assert (await move(http, doc, "in_review", WRITER)).status_code == 200
            answers = await asyncio.gather(*(move(http, doc, target, ADMIN, f"{round_}-{i}")
                                             for i in range(8)))
            codes = sorted(a.status_code for a in answers)
            assert codes == [200] + [409] * 7, codes
            assert all(a.json()["error"]["code"] == "invalid_transition"
                       for a in answers if a.status_code == 409)
            back = {"published": "draft", "archived": "draft", "draft": None}[target]
            if back is not None:
                assert (await move(http, doc, back, ADMIN)).status_code == 200
        statuses = [e.meta for e in await logged_events(secure_server.database_url, doc)
                    if e.kind == "status"]
        for before, after in itertools.pairwise(statuses):
            assert before["to"] == after["from"]  # every stored transition started where the
            # previous one ended: none was decided against a stale status


async def test_a_published_document_refuses_edits_as_a_read_only_connection_would(
        secure_server: ServerProcess) -> None:
    doc = "st-frozen"
    url = f"{secure_server.ws_url}/ws/{doc}?token={token('wendy', {doc: 'write'})}"
    async with httpx.AsyncClient(base_url=secure_server.http_url, timeout=10) as http:
        await http.post("/api/documents", json={"id": doc, "title": "Frozen"}, headers=WRITER)
        async with YClient(secure_server.ws_url, doc, token=token("wendy", {doc: "write"})) as c:
            c.insert(0, "first draft")
            async with raw(url) as ws:
                await recv_until(ws, bytes((0, 0)))
                await move(http, doc, "in_review", WRITER)
                published = (await move(http, doc, "published", ADMIN)).json()
                # Every live connection is told at the transition.
                told = await recv_until(ws, bytes((protocol.MESSAGE_AUTH,)))
                assert told[:2] == bytes((2, 0)) and b"published" in told
                before = await logged_events(secure_server.database_url, doc)
                await ws.send(protocol.sync_update(_insert_update("nope")))
                denied = await recv_until(ws, bytes((protocol.MESSAGE_AUTH,)))
                assert b"read-only access to this document" in denied
                # Still connected: the same socket still syncs.
                await ws.send(protocol.sync_step1(b"\x00"))
                await recv_until(ws, bytes((0, 1)))
            c.insert(0, "late ")  # a live client's edit after publication: refused too
            await asyncio.sleep(0.3)
            assert await logged_events(secure_server.database_url, doc) == before
            # Read at (at least) the transition's seq: the read side follows the log.
            shown = (await http.get(f"/api/documents/{doc}/published",
                                    params={"min_seq": published["seq"]},
                                    headers=READER)).json()
            assert (shown["id"], shown["seq"], shown["text"]) == (
                doc, published["seq"], "first draft")
            assert shown["published_at"]
            # A restore would change the text: refused too while published.
            restore = await http.post(f"/api/documents/{doc}/restore", json={"seq": 1},
                                      headers=WRITER)
            assert restore.status_code == 403, restore.text
            # Reopened, it is writable again; the published text stays as it was.
            reopened = (await move(http, doc, "draft", WRITER, "new edition")).json()
        async with YClient(secure_server.ws_url, doc, token=token("wendy", {doc: "write"})) as c:
            await c.wait_text("first draft")
            c.insert(len("first draft"), ", second edition")
            text = "first draft, second edition"
            for _ in range(200):
                now = (await http.get(f"/api/documents/{doc}", headers=READER)).json()
                if now["text"] == text:
                    break
                await asyncio.sleep(0.05)
            assert now["text"] == text and now["seq"] > reopened["seq"]
        again = (await http.get(f"/api/documents/{doc}/published",
                                params={"min_seq": now["seq"]}, headers=READER)).json()
        assert again["text"] == "first draft" and again["seq"] == published["seq"]


def _insert_update(text: str) -> bytes:
    from pycrdt import Doc, Text

    doc: Doc = Doc()
    doc.get("content", type=Text).insert(0, text)
    return doc.get_update()
