"""Activity and search: figures equal to an independent count from the log, search on both
backends, history search, the live stream, and a rebuild equal to the live read models."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text

from server.read.insights import InsightFollower
from storage.database import open_database
from storage.event_store import EventStore
from storage.insights import InsightStore
from tests.conftest import new_sqlite_url
from tests.security.conftest import logged_events
from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Activity, history search and the stream need no second backend: one server for them."""
    with ServerProcess(new_sqlite_url(tmp_path_factory.mktemp("insights"))) as process:
        yield process
WORD = re.compile(r"[^ \t\n\r\f\v]+")
IDLE_GAP = 120.0


async def settled(http: httpx.AsyncClient, path: str, seq: int) -> dict[str, Any]:
    url = httpx.URL(path)
    answer = await http.get(url.path, params={**dict(url.params), "min_seq": str(seq)})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def head(http: httpx.AsyncClient, doc: str, text: str) -> int:
    """The seq once the read side shows `text` (bounded)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = (await http.get(f"/api/documents/{doc}")).json()
        if answer["text"] == text:
            return int(answer["seq"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"text never became {text!r}")


def independent_activity(records: list[Any]) -> dict[tuple[int, str], dict[str, float]]:
    """Replay the log with pycrdt and count, per minute and author, from whole texts."""
    doc: Doc = Doc()
    content = doc.get("content", type=Text)
    out: dict[tuple[int, str], dict[str, float]] = {}
    last: dict[str, float] = {}
    for record in records:
        if record.kind not in ("update", "restore"):
            continue
        before = str(content)
        doc.apply_update(record.payload)
        after = str(content)
        words = len(WORD.findall(after)) - len(WORD.findall(before))
        # characters: the common prefix and suffix bound the one change a keystroke makes
        p = 0
        while p < min(len(before), len(after)) and before[p] == after[p]:
            p += 1
        s = 0
        while (s < min(len(before), len(after)) - p
               and before[len(before) - 1 - s] == after[len(after) - 1 - s]):
            s += 1
        row = out.setdefault((int(record.time // 60) * 60, record.actor), {
            "events": 0, "inserted": 0, "deleted": 0, "words_added": 0, "words_removed": 0,
            "active_seconds": 0.0})
        row["events"] += 1
        row["inserted"] += len(after) - p - s
        row["deleted"] += len(before) - p - s
        row["words_added"] += max(words, 0)
        row["words_removed"] += max(-words, 0)
        previous = last.get(record.actor)
        if previous is not None and 0 <= record.time - previous <= IDLE_GAP:
            row["active_seconds"] += record.time - previous
        last[record.actor] = record.time
    return out


async def test_activity_equals_an_independent_count_from_the_log(
        sqlite_server: ServerProcess) -> None:
    doc = "act-1"
    async with httpx.AsyncClient(base_url=sqlite_server.http_url, timeout=10) as http:
        await http.post("/api/documents", json={"id": doc, "title": "Activity"})
        async with YClient(sqlite_server.ws_url, doc) as ann:
            text = ""
            for i, word in enumerate(["alpha", "beta", "gamma", "delta"] * 5):
                piece = ("" if not text else " ") + word
                for ch in piece:  # typed one character at a time, as people do
                    ann.insert(len(text), ch)
                    text += ch
                if i % 6 == 5:
                    ann.delete(0, len(text.split(" ")[0]) + 1)  # a word removed
                    text = text[len(text.split(" ")[0]) + 1:]
            seq = await head(http, doc, text)
        records = await logged_events(sqlite_server.database_url, doc)
        expected = independent_activity(records)
        answer = await settled(http, f"/api/documents/{doc}/activity?bucket=minute&"
                                     f"since=2000-01-01T00:00:00Z", seq)
        assert answer["seq"] >= seq
        got = {(_epoch(i["start"]), i["author"]): {k: i[k] for k in (
            "events", "inserted", "deleted", "words_added", "words_removed",
            "active_seconds")} for i in answer["items"]}
        assert got.keys() == expected.keys()
        for key, row in expected.items():
            for name, value in row.items():
                assert got[key][name] == pytest.approx(value, abs=0.01), (key, name)
        total = sum(r["words_added"] - r["words_removed"] for r in expected.values())
        assert total == len(WORD.findall(text))
        across = (await http.get("/api/activity", params={"bucket": "day"})).json()
        assert sum(i["events"] for i in across["items"]) == sum(
            r["events"] for r in expected.values())


def _epoch(iso_time: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp())


async def test_search_finds_current_text_ranked_with_snippets(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        texts = {"s-whales": "The blue whale is the largest animal. Whales sing <b>songs</b>.",
                 "s-ships": "Ships sail the sea; one saw a whale once.",
                 "s-trees": "Oaks and pines grow slowly."}
        seqs = {}
        for doc, body in texts.items():
            await http.post("/api/documents", json={"id": doc, "title": doc})
            async with YClient(server.ws_url, doc) as c:
                c.insert(0, body)
                seqs[doc] = await head(http, doc, body)
        for doc, seq in seqs.items():
            await settled(http, f"/api/documents/{doc}/status", seq)
        found = (await http.get("/api/search", params={"q": "whale"})).json()["items"]
        assert [i["id"] for i in found] == ["s-whales", "s-ships"]
        assert "<mark>" in found[0]["snippet"] and "<b>" not in found[0]["snippet"]
        assert found[0]["seq"] == seqs["s-whales"] and found[0]["score"] >= found[1]["score"]
        assert (await http.get("/api/search", params={"q": "oaks pines"})).json()[
            "items"][0]["id"] == "s-trees"
        # Engine syntax is never passed through: operators are plain words or nothing.
        assert (await http.get("/api/search", params={"q": "\"*) OR NEAR("})).status_code == 200
        assert (await http.get("/api/search", params={"q": "\"*) ("})).status_code == 400
        assert (await http.get("/api/search", params={"q": "nothing-here"})).json()[
            "items"] == []
        # Within a second of an edit, the search answers the new text.
        async with YClient(server.ws_url, "s-trees") as c:
            await c.wait_text(texts["s-trees"])
            c.insert(0, "Zebras! ")
            started = time.monotonic()
            while time.monotonic() - started < 5:
                hits = (await http.get("/api/search", params={"q": "zebras"})).json()["items"]
                if hits:
                    break
                await asyncio.sleep(0.05)
            assert hits and hits[0]["id"] == "s-trees"
            assert time.monotonic() - started < 1.5


async def test_history_search_finds_when_a_phrase_appeared_and_disappeared(
        sqlite_server: ServerProcess) -> None:
    doc = "h-1"
    async with httpx.AsyncClient(base_url=sqlite_server.http_url, timeout=10) as http:
        await http.post("/api/documents", json={"id": doc, "title": "History"})
        async with YClient(sqlite_server.ws_url, doc) as c:
            c.insert(0, "Hello there.")
            await head(http, doc, "Hello there.")
            c.insert(len("Hello there."), " A secret plan.")
            appeared = await head(http, doc, "Hello there. A secret plan.")
            c.delete(len("Hello there."), len(" A secret plan."))
            gone = await head(http, doc, "Hello there.")
        answer = await settled(http, f"/api/documents/{doc}/history-search?q=Secret+plan",
                               gone)
        items = answer["items"]
        assert [(i["seq"], i["change"]) for i in items] == [(appeared, "appeared"),
                                                              (gone, "disappeared")]
        assert "<mark>secret plan</mark>" in items[0]["snippet"]
        assert items[0]["author"] and items[0]["time"]
        assert items[1]["link"] == f"/d/{doc}?seq={gone - 1}"


async def test_the_stream_pushes_each_edit_within_a_second(sqlite_server: ServerProcess) -> None:
    doc = "live-1"
    async with httpx.AsyncClient(base_url=sqlite_server.http_url, timeout=10) as http:
        await http.post("/api/documents", json={"id": doc, "title": "Live"})
        async with YClient(sqlite_server.ws_url, doc) as c, http.stream(
                "GET", "/api/activity/stream") as stream:
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith(": connected")
            c.insert(0, "x")
            sent = time.monotonic()
            async with asyncio.timeout(5):
                while True:
                    line = await anext(lines)
                    if line.startswith("data: "):
                        message = json.loads(line[6:])
                        if message["id"] == doc and message["kind"] == "update":
                            break
            assert time.monotonic() - sent < 1.0
        presence = (await http.get("/api/activity/presence")).json()
        assert isinstance(presence["items"], list)


async def test_rebuilt_insight_read_models_equal_the_ones_kept_live(
        server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        await http.post("/api/documents", json={"id": "rb-1", "title": "Rebuild"})
        async with YClient(server.ws_url, "rb-1") as c:
            for i in range(30):
                c.insert(len(c.value()), f"word{i} ")
            await head(http, "rb-1", "".join(f"word{i} " for i in range(30)))
            await http.post("/api/documents/rb-1/status", json={"to": "in_review"})
            published = await http.post("/api/documents/rb-1/status", json={"to": "published"})
        await settled(http, "/api/documents/rb-1/status", published.json()["seq"])
    db = open_database(server.database_url)
    try:
        store = InsightStore(db)
        live = await store.dump()
        assert live["review_status"] and live["activity_minutes"] and live["search_texts"]
        await InsightFollower(EventStore(db), db).rebuild()
        assert await store.dump() == live
    finally:
        await db.dispose()
