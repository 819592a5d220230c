"""History search is exact: every change of presence of a phrase is reported, including one
that appears and disappears again between two history marks whose texts both lack it (the
per-stretch words index, server.read.insight_fold.touch), on both backends. The log is written
straight to the store, projected and folded in this process, with marks 16 events apart."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from pycrdt import Doc, Text

from server.read import insight_fold
from server.read.freshness import Freshness
from server.read.insight_freshness import InsightFreshness
from server.read.insights import InsightFollower
from server.read.projector import Projector
from server.read.queries import Queries
from server.read.search import SearchQueries
from storage.database import open_database
from storage.event_store import EventStore
from storage.insights import InsightStore
from storage.migrate import migrate
from storage.read_model import ReadModel
from storage.records import NewEvent

pytestmark = pytest.mark.timeout(120)

EVERY = 16


@dataclass
class Log:
    search: SearchQueries
    texts: list[bytes]  # the ASCII-lower-cased UTF-8 text after each seq (0: empty)


class Writer:
    """A pycrdt document whose every transaction becomes one update event."""

    def __init__(self) -> None:
        self.doc: Doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.updates: list[bytes] = []
        self.texts: list[bytes] = [b""]

    def edit(self, pos: int, delete: int, insert: str) -> None:
        """At character `pos`, delete `delete` characters, then insert (pycrdt counts bytes)."""
        content = str(self.text)
        start = len(content[:pos].encode())
        end = start + len(content[pos:pos + delete].encode())
        state = self.doc.get_state()
        with self.doc.transaction():
            if end > start:
                del self.text[start:end]
            if insert:
                self.text.insert(start, insert)
        self.updates.append(self.doc.get_update(state))
        self.texts.append(str(self.text).encode().lower())


@asynccontextmanager
async def folded(url: str, doc_id: str, writer: Writer) -> AsyncIterator[Log]:
    await migrate(url)
    db = open_database(url)
    try:
        store = EventStore(db)
        await store.ensure_document(doc_id, "History")
        await store.append(doc_id, [NewEvent("update", u, f"author{i % 3}", 1_000.0 + i)
                                    for i, u in enumerate(writer.updates)])
        read_model = ReadModel(db)
        projector = Projector(store, read_model, snapshot_every=1000)
        await projector.catch_up()
        await projector.stop()
        await InsightFollower(store, db).catch_up()
        queries = Queries(store, read_model, Freshness(read_model))
        yield Log(SearchQueries(db, queries, InsightFreshness(store, InsightStore(db))),
                  writer.texts)
    finally:
        await db.dispose()


def changes(texts: list[bytes], phrase: str) -> list[tuple[int, str]]:
    """The independent count: the whole text after every seq, the phrase looked for in it."""
    needle = phrase.strip().encode().lower()
    out = []
    for seq in range(1, len(texts)):
        had, has = needle in texts[seq - 1], needle in texts[seq]
        if had != has:
            out.append((seq, "appeared" if has else "disappeared"))
    return out


async def answer(search: SearchQueries, doc_id: str, phrase: str) -> list[tuple[int, str]]:
    items = (await search.history(doc_id, phrase))["items"]
    return [(int(i["seq"]), str(i["change"])) for i in items]


@pytest.fixture
def small_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(insight_fold, "MARK_EVERY", EVERY)


@pytest.mark.usefixtures("small_marks")
async def test_a_phrase_gone_again_between_two_marks_that_lack_it_is_found(
        database_url: str) -> None:
    writer = Writer()
    for i in range(18):  # past the first mark (seq 16)
        writer.edit(len(str(writer.text)), 0, f"w{i} ")
    at = len(str(writer.text))
    writer.edit(at, 0, "A Secret xplan. ")  # 19
    writer.edit(at + len("A Secret "), 1, "")  # 20: deleting one letter joins "secret plan"
    writer.edit(at + len("A Secret plan"), 0, "s")  # 21: still there ("plans")
    writer.edit(at + len("A Secret"), 1, "")  # 22: deleting a space ends it ("secretplans")
    writer.edit(at + len("A Secret"), 0, "\n")  # 23: a newline, not the phrase's space
    writer.edit(at + len("A Secret"), 1, " ")  # 24: one change both removes and inserts
    writer.edit(at, len("A Secret plans. "), "")  # 25: all gone
    for i in range(10):  # to the second mark (seq 32) and past it
        writer.edit(0, 0, f"v{i} ")
    assert b"secret plan" not in writer.texts[16] and b"secret plan" not in writer.texts[32]
    async with folded(database_url, "hx-1", writer) as log:
        for phrase in ("secret plan", "  SECRET PLAN ", "cret pl", "secret", "plans",
                       "t\nplan", "w17 a", "a secret plan.", "zebra"):
            expected = changes(log.texts, phrase)
            assert await answer(log.search, "hx-1", phrase) == expected, phrase
        assert await answer(log.search, "hx-1", "secret plan") == [
            (20, "appeared"), (22, "disappeared"), (24, "appeared"), (25, "disappeared")]


@pytest.mark.usefixtures("small_marks")
async def test_history_search_equals_an_independent_replay_on_a_random_log(
        database_url: str) -> None:
    rng = random.Random(141)
    pieces = ["ab", "cd", "abc", " ", "  ", "\t", "Secret", "PLAN", "x", "é", "ab cd "]
    writer = Writer()
    for _ in range(400):
        content = str(writer.text)
        pos = rng.randint(0, len(content))
        delete = rng.choice([0, 0, 1, 2, 4]) if pos < len(content) else 0
        delete = min(delete, len(content) - pos)
        writer.edit(pos, delete, "".join(rng.choices(pieces, k=rng.randint(0, 2))))
        if len(content) > 120:  # keep the text short: phrases come and go often
            writer.edit(0, 30, "")
    phrases = ["ab cd", "b c", "secret plan", "cd ab", "abc", "d a", "plan", "b\tc",
               "ab cd ab", "é", "x s", "cdab"]
    async with folded(database_url, "hx-2", writer) as log:
        scan, replayed = log.search._scan, []

        async def counted(*args: Any) -> Any:
            replayed.append(args)
            return await scan(*args)

        log.search._scan = counted  # type: ignore[method-assign]
        reported = 0
        for phrase in phrases:
            expected = changes(log.texts, phrase)
            reported += len(expected)
            assert await answer(log.search, "hx-2", phrase) == expected, phrase
        assert reported > 80  # the log does exercise the search
        stretches = len(phrases) * (len(log.texts) // EVERY + 1)
        assert 0 < len(replayed) < stretches  # some stretches are skipped, never a change
