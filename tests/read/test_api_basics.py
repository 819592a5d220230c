"""The query API against a real server process, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess


async def test_create_edit_and_read_a_document(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        created = await http.post("/api/documents", json={"title": "Notes", "id": "notes"})
        assert created.status_code == 201
        assert created.json()["id"] == "notes" and created.json()["seq"] == 1
        async with YClient(server.ws_url, "notes", name="ann", ack="1") as client:
            client.insert(0, "hello world")
            await _wait_head(http, "notes", 2)
        answer = (await http.get("/api/documents/notes", params={"min_seq": 2})).json()
        assert answer["text"] == "hello world" and answer["seq"] == 2
        assert answer["title"] == "Notes"
        past = (await http.get("/api/documents/notes", params={"at": 1})).json()
        assert past["text"] == "" and past["seq"] == 1
        listing = (await http.get("/api/documents")).json()
        assert listing["items"][0]["id"] == "notes"
        assert listing["items"][0]["contributors"] == ["ann"]


async def _wait_head(http: httpx.AsyncClient, doc_id: str, seq: int) -> None:
    """Wait (bounded) until the log has `seq`: the events endpoint reads the log itself."""
    import asyncio
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = (await http.get(f"/api/documents/{doc_id}/events")).json()
        if events["items"] and events["items"][-1]["seq"] >= seq:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{doc_id} never reached seq {seq}")
