"""History people read, through the API of a real server: joint typing is one revision with
both names, diffs in words, a restore recorded as one, named versions renamed and deleted,
a copy, a Markdown download, and the feed that tells every reader at once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess


async def settle(http: httpx.AsyncClient, doc_id: str, at_least: int = 1) -> int:
    """The document's head once the read side has reached it (bounded)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = (await http.get(f"/api/documents/{doc_id}/events", params={"limit": 500}))
        seq = int(events.json()["seq"])
        if seq >= at_least:
            answer = await http.get(f"/api/documents/{doc_id}", params={"min_seq": seq})
            assert answer.status_code == 200, answer.text
            return seq
        await asyncio.sleep(0.02)
    raise AssertionError(f"{doc_id} did not reach seq {at_least}")


async def test_two_people_typing_together_make_one_revision_with_both_shares(
        server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as http, \
            YClient(server.ws_url, "duet", name="ann") as ann, \
            YClient(server.ws_url, "duet", name="bob") as bob:
        for i in range(30):  # 60 alternating edits
            ann.insert(len(ann.value()), "a")
            await bob.wait_text("ab" * i + "a")
            bob.insert(len(bob.value()), "b")
            await ann.wait_text("ab" * (i + 1))
        seq = await settle(http, "duet", 60)
        revisions = (await http.get("/api/documents/duet/revisions",
                                    params={"min_seq": seq})).json()["items"]
        assert len(revisions) == 1
        [revision] = revisions
        assert revision["authors"] == ["ann", "bob"] and revision["kind"] == "edit"
        assert revision["shares"] == [
            {"author": "ann", "events": 30, "inserted": 30, "deleted": 0},
            {"author": "bob", "events": 30, "inserted": 30, "deleted": 0}]
        # The revision's own changes, each in its author's name.
        diff = (await http.get("/api/documents/duet/diff",
                               params={"from": revision["from_seq"] - 1,
                                       "to": revision["to_seq"]})).json()
        assert diff["granularity"] == "word" and diff["attributed"] is True
        assert {c["author"] for c in diff["changes"]} <= {"ann", "bob"}
        assert "".join(c["text"] for c in diff["changes"] if c["op"] != "delete") == "ab" * 30


async def test_a_restore_is_its_own_revision_and_diffs_across_it_read_in_words(
        server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as http:
        async with YClient(server.ws_url, "city", name="ann") as ann:
            ann.insert(0, "Why cities need infrastructure")
            before = await settle(http, "city", 1)
            ann.delete(0, 3)
            ann.insert(0, "Shade")
            await settle(http, "city", before + 2)
        restored = await http.post("/api/documents/city/restore", json={"seq": before},
                                   headers={"X-Palimpsest-Name": "cy"})
        assert restored.status_code == 200, restored.text
        seq = restored.json()["seq"]
        await settle(http, "city", seq)
        newest = (await http.get("/api/documents/city/revisions")).json()["items"][0]
        assert (newest["kind"], newest["restored_from"], newest["restored_by"]) == (
            "restore", before, "cy")
        events = (await http.get("/api/documents/city/events")).json()["items"]
        assert events[-1]["kind"] == "restore" and events[-1]["restored_from"] == before
        diff = (await http.get("/api/documents/city/diff",
                               params={"from": seq - 1, "to": seq})).json()
        changed = [(c["op"], c["text"], c["author"]) for c in diff["changes"] if c["op"] != "keep"]
        assert changed == [("delete", "Shade", "cy"), ("insert", "Why", "cy")]
        assert (await http.get("/api/documents/city")).json()["text"] == \
            "Why cities need infrastructure"


async def read_feed(http: httpx.AsyncClient, doc_id: str, items: list[dict[str, Any]],
                    ready: asyncio.Event, enough: int, done: asyncio.Event) -> None:
    async with http.stream("GET", f"/api/documents/{doc_id}/feed") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            ready.set()
            if line.startswith("data: "):
                items.append(json.loads(line[6:]))
                if len(items) >= enough:
                    done.set()


async def test_named_versions_renamed_deleted_copied_downloaded_and_told_to_every_reader(
        server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as http:
        await http.post("/api/documents", json={"id": "plan", "title": "Plan"})
        async with YClient(server.ws_url, "plan", name="ann") as ann:
            ann.insert(0, "# Plan\n\nFirst step.")
            seq = await settle(http, "plan", 2)
        told: list[dict[str, Any]] = []
        ready, four = asyncio.Event(), asyncio.Event()
        follower = asyncio.create_task(read_feed(http, "plan", told, ready, 4, four))
        async with asyncio.timeout(10):
            await ready.wait()
        named = await http.post("/api/documents/plan/versions", json={"seq": seq, "name": "v1"})
        assert named.status_code == 201, named.text
        version = named.json()["id"]
        renamed = await http.patch(f"/api/documents/plan/versions/{version}",
                                   json={"name": "First draft"})
        assert renamed.status_code == 200, renamed.text
        await http.patch("/api/documents/plan", json={"title": "Plan B"})
        head = await settle(http, "plan", seq + 3)
        versions = (await http.get("/api/documents/plan/versions",
                                   params={"min_seq": head})).json()["items"]
        assert [(v["id"], v["seq"], v["name"]) for v in versions] == [
            (version, seq, "First draft")]
        deleted = await http.delete(f"/api/documents/plan/versions/{version}")
        assert deleted.status_code == 200, deleted.text
        head = await settle(http, "plan", head + 1)
        assert (await http.get("/api/documents/plan/versions",
                               params={"min_seq": head})).json()["items"] == []
        # Deleting a name deletes no history; deleting it twice is a 404.
        assert (await http.get("/api/documents/plan", params={"at": seq})).json()["text"] == \
            "# Plan\n\nFirst step."
        again = await http.delete(f"/api/documents/plan/versions/{version}")
        assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
        assert (await http.patch("/api/documents/plan/versions/abc",
                                 json={"name": "x"})).status_code == 400
        # Every reader was told, in order, as each was committed.
        async with asyncio.timeout(10):
            await four.wait()
        follower.cancel()
        assert [(t["kind"], t.get("name") or t.get("title")) for t in told] == [
            ("version", "v1"), ("version_renamed", "First draft"), ("rename", "Plan B"),
            ("version_deleted", None)]
        # A copy of the old version is a new document with that text and its own history.
        copied = await http.post("/api/documents/plan/copy", json={"seq": seq})
        assert copied.status_code == 201, copied.text
        new_id = copied.json()["id"]
        assert copied.json()["title"] == "Copy of Plan B"
        await settle(http, new_id, 2)
        assert (await http.get(f"/api/documents/{new_id}")).json()["text"] == \
            "# Plan\n\nFirst step."
        taken = await http.post("/api/documents/plan/copy", json={"id": new_id})
        assert taken.status_code == 409
        # Downloaded as Markdown, named after the title.
        download = await http.get("/api/documents/plan/markdown", params={"at": seq})
        assert download.status_code == 200
        assert download.headers["content-type"].startswith("text/markdown")
        assert download.headers["content-disposition"].startswith(
            'attachment; filename="Plan B (change 2).md"')
        assert download.text == "# Plan\n\nFirst step."
        missing = await http.get("/api/documents/nothing/markdown")
        assert missing.status_code == 404


async def test_a_server_with_an_open_feed_still_stops_promptly(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=20) as http:
        await http.post("/api/documents", json={"id": "quiet", "title": "Quiet"})
        ready, never = asyncio.Event(), asyncio.Event()
        follower = asyncio.create_task(read_feed(http, "quiet", [], ready, 1, never))
        async with asyncio.timeout(10):
            await ready.wait()
        started = time.monotonic()
        await asyncio.to_thread(server.stop)
        # The feed never ends by itself: the stop cancels it after a bounded grace.
        assert time.monotonic() - started < 9
        follower.cancel()
