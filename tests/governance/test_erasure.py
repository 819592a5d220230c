"""Erasure against a real server on SQLite: the erased text leaves every event, snapshot, read
model, API answer, newcomer's sync and byte of the database files, live clients reconnect and
cannot bring it back, and every other part of history still works."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import websockets

from server.realtime.protocol import sync_update
from server.write.update_rewrite import placeholder
from tests.conftest import new_sqlite_url
from tests.governance.support import (
    closed_with,
    containing,
    database_bytes,
    every_answer,
    palimpsest,
    settle,
)
from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.timeout(240)

INTRO = "Dear team, the code is "
# Pasted in three pieces, so each piece is a distinctive string in one event's payload.
PIECES = ["Zanzibar-", "7731-", "QUOKKA-ORBIT"]
SECRET = "".join(PIECES)
NEEDLES = [*PIECES, SECRET]
OUTRO = ". Regards."


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def server(folder: Path) -> ServerProcess:
    env = {"PALIMPSEST_SNAPSHOT_EVERY": "4", "PALIMPSEST_ROOM_GRACE_SECONDS": "0.2"}
    with ServerProcess(new_sqlite_url(folder), env=env) as process:
        yield process


async def test_an_erased_range_is_gone_from_every_stored_byte_and_every_answer(
        server: ServerProcess, folder: Path) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        assert (await http.post("/api/documents", json={"id": "doc", "title": "Note"})
                ).status_code == 201
        ann = YClient(server.ws_url, "doc", name="ann")
        await ann.connect()
        ann.insert(0, INTRO)
        await settle(http, "doc", INTRO)
        async with YClient(server.ws_url, "doc", name="mallory") as mallory:
            await mallory.wait_text(INTRO)
            typed = INTRO
            for piece in PIECES:
                mallory.insert(len(typed), piece)
                typed += piece
                await settle(http, "doc", typed)
        ann.insert(len(typed), OUTRO)
        final = await settle(http, "doc", typed + OUTRO)
        named = await http.post("/api/documents/doc/versions",
                                json={"seq": 2, "name": "intro only"})
        assert named.status_code == 201
        head = int(named.headers["x-palimpsest-seq"])
        assert (await http.get(f"/api/documents/doc?min_seq={head}")).json()["seq"] == head
        history = (await http.get("/api/documents/doc/events?limit=500")).json()["items"]
        secret_seqs = [e["seq"] for e in history if e["actor"] == "mallory"]
        assert len(secret_seqs) == len(PIECES)
        before = {seq: (await http.get(f"/api/documents/doc?at={seq}")).json()["text"]
                  for seq in range(head + 1)}
        hash_before = final["head_hash"]
        held_by_ann = ann.doc.get_update()  # the original items, erased text included
        # The search finds what it looks for: the pieces are stored before the erasure.
        assert containing(database_bytes(folder), PIECES)

        refused = await http.post("/api/documents/doc/erase",
                                  json={"from_seq": secret_seqs[0], "to_seq": secret_seqs[-1]})
        assert refused.status_code == 400  # a reason is required
        erased = await http.post("/api/documents/doc/erase", json={
            "from_seq": secret_seqs[0], "to_seq": secret_seqs[-1], "reason": "request #42"})
        assert erased.status_code == 200, erased.text
        answer = erased.json()
        assert answer["erased"] == len(PIECES) and answer["rechained_from"] == secret_seqs[0]
        audit_seq = answer["seq"]
        assert audit_seq == head + 1

        # The live client was closed with a code a stock client retries.
        assert ann.ws is not None and await closed_with(ann.ws) == 4500
        await ann.close()

        # The read side rebuilt the document from the rewritten log.
        rebuilt = (await http.get(f"/api/documents/doc?min_seq={audit_seq}")).json()
        expected_now = INTRO + placeholder(SECRET) + OUTRO
        assert rebuilt["text"] == expected_now
        assert rebuilt["head_hash"] == answer["head_hash"] != hash_before

        # No API answer carries it; history at every seq is the old one with placeholders.
        for body in await every_answer(http, "doc"):
            assert not [n for n in NEEDLES if n in body], body[:300]
        for seq, text in before.items():
            now = (await http.get(f"/api/documents/doc?at={seq}")).json()["text"]
            typed_then = sum(1 for s in secret_seqs if s <= seq)
            shown = "".join(PIECES[:typed_then])
            assert now == text.replace(shown, placeholder(shown)), seq
        assert (await http.get("/api/documents/doc?at=2")).json()["text"] == INTRO
        audit = (await http.get(f"/api/documents/doc/events?after={head}")).json()["items"]
        assert [(e["seq"], e["kind"], e["actor"]) for e in audit] == [
            (audit_seq, "erasure", "anonymous")]

        # A newcomer's sync, and a client that held the text and sends it all back.
        async with YClient(server.ws_url, "doc", name="newcomer") as newcomer:
            await newcomer.wait_text(expected_now)
            assert not [n for n in NEEDLES if n in newcomer.value()]
        # Ann comes back with the doc she held: her sync and a resend of her whole state
        # carry the erased text under ids the server has, so nothing changes.
        returning = YClient(server.ws_url, "doc", name="ann")
        returning.doc.apply_update(held_by_ann)
        await returning.connect()
        await asyncio.sleep(0.5)
        await returning.close()
        async with websockets.connect(f"{server.ws_url}/ws/doc?name=ann") as raw:
            await raw.send(sync_update(held_by_ann))
            await asyncio.sleep(0.5)
        async with YClient(server.ws_url, "doc", name="reader") as reader:
            await reader.wait_text(expected_now)
        assert (await http.get("/api/documents/doc")).json()["seq"] == audit_seq  # no-ops

        # Restoring an earlier seq, diffs and the chain still work.
        restored = await http.post("/api/documents/doc/restore", json={"seq": 2})
        assert restored.status_code == 200, restored.text
        await settle(http, "doc", INTRO)
        diff = (await http.get(f"/api/documents/doc/diff?from=2&to={head}")).json()["changes"]
        assert "".join(c["text"] for c in diff if c["op"] != "delete") == expected_now
    await _no_secret_left(server, folder)


async def _no_secret_left(server: ServerProcess, folder: Path) -> None:
    # Every byte of the database files, once the server has stopped writing.
    await asyncio.sleep(0.5)
    assert containing(database_bytes(folder), NEEDLES) == []
    result = await asyncio.to_thread(palimpsest, server.database_url, "verify")
    assert result.returncode == 0, result.stdout + result.stderr
