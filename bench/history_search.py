"""History search on the full automerge-paper document (259,778 events), against the naive scan.

    .venv/bin/python bench/history_search.py                  # SQLite, the whole trace
    .venv/bin/python bench/history_search.py --patches 20000  # a quick look

Builds the log as bench/read_side.py does (one event per patch, the trace's own times),
projects it, folds it into the insight read models (timed), then, in this process, asks
`SearchQueries.history` for phrases taken from the text at random seqs (a word pair of the
final text, of texts at random seqs, and phrases never in it), and reports p50/p99 in wall
and CPU time. The peer, in the same run: the naive scan that reads the text at the end of
every revision (Queries.text_at) and looks for the phrase in each. The truth: a replay of the
trace on a Python string, checking the phrase after every event; the report counts the
changes each method found against it. Also the bytes the insight tables add.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import text as sql  # noqa: E402

from bench.read_side import DOC, build_log  # noqa: E402
from server.read import insight_fold  # noqa: E402
from server.read.freshness import Freshness  # noqa: E402
from server.read.insight_freshness import InsightFreshness  # noqa: E402
from server.read.insights import InsightFollower  # noqa: E402
from server.read.queries import Queries  # noqa: E402
from server.read.search import SearchQueries  # noqa: E402
from storage.database import open_database  # noqa: E402
from storage.event_store import EventStore  # noqa: E402
from storage.insights import InsightStore  # noqa: E402
from storage.read_model import ReadModel  # noqa: E402
from tests.support.replay import Trace, load_trace  # noqa: E402


class Replay:
    """The trace on a mutable UTF-32 buffer (lower-cased): each patch is one memmove, where a
    Python string would copy the whole text per patch."""

    def __init__(self) -> None:
        self.content = bytearray()

    def apply(self, pos: int, delete: int, insert: str) -> None:
        self.content[pos * 4:(pos + delete) * 4] = insert.lower().encode("utf-32-le")

    def text(self) -> str:
        return self.content.decode("utf-32-le")


def truth(trace: Trace, count: int, asked: list[str]) -> dict[str, list[tuple[int, str]]]:
    """Every seq where each phrase's presence changes, from one replay of the trace: the
    occurrences counted again only in the window around each patch."""
    needles = {p: p.lower().encode("utf-32-le") for p in asked}
    counts = dict.fromkeys(asked, 0)
    found: dict[str, list[tuple[int, str]]] = {p: [] for p in asked}
    replay = Replay()
    for seq, (pos, delete, insert) in enumerate(trace.patches[:count], start=1):
        before = {}
        for phrase, needle in needles.items():
            reach = len(needle) - 4
            before[phrase] = replay.content[max(0, pos * 4 - reach):
                                            (pos + delete) * 4 + reach].count(needle)
        replay.apply(pos, delete, insert)
        for phrase, needle in needles.items():
            reach = len(needle) - 4
            after = replay.content[max(0, pos * 4 - reach):
                                   (pos + len(insert)) * 4 + reach].count(needle)
            old = counts[phrase]
            new = old - before[phrase] + after
            counts[phrase] = new
            if (old > 0) != (new > 0):
                found[phrase].append((seq, "appeared" if new > 0 else "disappeared"))
    return found


def pct(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {"n": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0),
            "mean_ms": statistics.fmean(ordered) * 1000}


def phrases(trace: Trace, count: int, n: int, rng: random.Random) -> list[str]:
    """Word pairs from the text at random seqs (some live now, some long gone), and misses."""
    replay = Replay()
    wanted = sorted(rng.sample(range(1, count + 1), n))
    texts = []
    for seq, (pos, delete, insert) in enumerate(trace.patches[:count], start=1):
        replay.apply(pos, delete, insert)
        if wanted and seq == wanted[0]:
            texts.append(replay.text())
            wanted.pop(0)
    out = []
    for t in texts:
        pairs = re.findall(r"(?=\b([A-Za-z]{3,} [A-Za-z]{3,})\b)", t)
        if pairs:
            out.append(rng.choice(pairs))
    return [*out, "zanzibar quokka", "palimpsest"]


async def measure(url: str, trace: Trace, count: int, samples: int, peers: int,
                  mark_every: int | None = None) -> dict[str, Any]:
    db = open_database(url)
    out: dict[str, Any] = {}
    try:
        store = EventStore(db)
        follower = InsightFollower(store, db, batch_size=5000)
        if mark_every is not None:  # another spacing of the history marks: fold again
            insight_fold.MARK_EVERY = mark_every
            await InsightStore(db).reset()
        started, cpu = time.perf_counter(), time.process_time()
        folded = await follower.catch_up()
        out["fold_s"] = time.perf_counter() - started
        out["fold_cpu_s"] = time.process_time() - cpu
        out["folded"] = folded
        read_model = ReadModel(db)
        queries = Queries(store, read_model, Freshness(read_model))
        search = SearchQueries(db, queries, InsightFreshness(store, InsightStore(db)))
        rng = random.Random(20261130)
        asked = phrases(trace, count, samples, rng)
        started = time.perf_counter()
        truths = truth(trace, count, asked)
        out["truth_s"] = time.perf_counter() - started
        wall, cpu_times, found_ok, found_total = [], [], 0, 0
        for phrase in asked:
            queries.snapshot_texts.forget(DOC)  # each search pays its own reads
            queries.change_chunks.forget(DOC)
            t0, c0 = time.perf_counter(), time.process_time()
            answer = await search.history(DOC, phrase)
            wall.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            exact = truths[phrase]
            got = [(i["seq"], i["change"]) for i in answer["items"]]
            found_total += len(exact)
            found_ok += len(set(got) & set(exact))
            assert set(got) <= set(exact), (phrase, got, exact)  # never a wrong answer
        out["history_search_wall"] = pct(wall)
        out["history_search_cpu"] = pct(cpu_times)
        out["changes_found"] = f"{found_ok} of {found_total}"
        # The peer: the text at the end of every revision, phrase looked for in each.
        ends = [int(r[0]) for r in (await _rows(db, "SELECT to_seq FROM revisions WHERE "
                                                   f"doc_id = '{DOC}' ORDER BY to_seq"))]
        out["revisions"] = len(ends)
        peer_wall = []
        for phrase in asked[:peers]:
            needle = phrase.casefold()
            t0 = time.perf_counter()
            had = False
            for seq in ends:
                has = needle in (await queries.text_at(DOC, seq)).casefold()
                had = has if has != had else had
            peer_wall.append(time.perf_counter() - t0)
        out["naive_scan_wall"] = pct(peer_wall)
        sizes = {}
        for table in ("history_marks", "history_words", "search_texts", "activity_minutes",
                      "status_history"):
            sizes[table] = await _size(db, table)
        out["bytes"] = sizes
    finally:
        await db.dispose()
    return out


async def _rows(db: Any, query: str) -> list[Any]:
    async with db.read() as conn:
        return list((await conn.execute(sql(query))).all())


async def _size(db: Any, table: str) -> int:
    try:
        rows = await _rows(db, f"SELECT SUM(pgsize) FROM dbstat WHERE name = '{table}'")
        return int(rows[0][0] or 0)
    except Exception:
        rows = await _rows(db, f"SELECT pg_total_relation_size('{table}')")
        return int(rows[0][0] or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=0, help="0: the whole trace")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--peers", type=int, default=3, help="phrases the naive scan answers")
    parser.add_argument("--snapshot-every", type=int, default=1000)
    parser.add_argument("--mark-every", type=int, default=None,
                        help="fold again with history marks this far apart (default 4096)")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="a SQLite file an earlier run built (its log and read side)")
    args = parser.parse_args()
    trace = load_trace()
    count = args.patches or len(trace.patches)
    folder = Path(tempfile.mkdtemp(prefix="palimpsest-history-search-"))
    url = f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
    figures: dict[str, Any] = {}
    if args.reuse is not None:
        url = f"sqlite+aiosqlite:///{args.reuse}"
    else:
        figures = asyncio.run(build_log(url, trace, count, args.snapshot_every))
        print(f"log: {int(figures['events'])} events, projected in "
              f"{figures['project_s']:.1f} s; {url}", flush=True)
    figures.update(asyncio.run(measure(url, trace, count, args.samples, args.peers,
                                       args.mark_every)))
    for key, value in figures.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
