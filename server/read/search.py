"""Search: the current text of every document (full-text, ranked), and one document's history.

Current text: the search read store (storage.search), filtered to what the caller may read,
with snippets whose matches are marked `<mark>` and everything else HTML-escaped.

History: when a phrase appeared in a document and when it disappeared. The insight follower
keeps the text every MARK_EVERY events (history marks); the phrase is looked for in each
mark and in the current text. Where two neighbours disagree, bisection with the read side's
text at any seq (Queries.text_at) narrows the stretch to EXACT_SCAN events, which are then
replayed from the read side's text changes: every change in that stretch is found, with its
exact seq. So a search costs a few reads per change however long the log. A stretch between
neighbouring marks whose ends agree is replayed only when short (a small document, the events
after the last mark): in a longer one, a phrase that appears and disappears again between two
marks (within MARK_EVERY events) is not seen (docs/architecture.md).
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.errors import BadRequest
from server.read.insight_freshness import InsightFreshness
from server.read.queries import Queries
from server.read.textops import apply_ops
from storage.database import Database
from storage.search import MARK_END, MARK_START, current_text, marks, search, terms

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Found:
    seq: int
    appeared: bool
    text: str  # a text holding the phrase: after the event, or before it when it disappeared
MAX_QUERY = 200
SCAN_PAGES = 10  # pages of ranked hits one search may read past unreadable documents
SNIPPET_CONTEXT = 60
EXACT_SCAN = 512  # a stretch this short is replayed event by event: nothing in it is missed


def marked_html(snippet: str) -> str:
    """Escape everything, then turn the store's match markers into <mark> tags."""
    return (html.escape(snippet).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>"))


def clean_query(q: str | None) -> str:
    if q is None or not q.strip():
        raise BadRequest("q is required")
    if len(q) > MAX_QUERY:
        raise BadRequest(f"q is longer than {MAX_QUERY} characters")
    return q.strip()


class SearchQueries:
    def __init__(self, db: Database, queries: Queries, freshness: InsightFreshness) -> None:
        self.db = db
        self.queries = queries
        self.freshness = freshness

    async def search(self, q: str, limit: int, readable: Callable[[str], bool]) -> Json:
        words = terms(clean_query(q))
        if not words:
            raise BadRequest("q has no word to search for")
        items: list[Json] = []
        offset = 0
        for _ in range(SCAN_PAGES):
            page = await search(self.db, words, limit, offset)
            for hit in page:
                if readable(hit.doc_id):
                    items.append({"id": hit.doc_id, "title": hit.title,
                                  "snippet": marked_html(hit.snippet), "seq": hit.seq,
                                  "score": round(hit.score, 6)})
            offset += len(page)
            if len(page) < limit or len(items) >= limit:
                break
        return {"items": items[:limit], "query": q}

    async def history(self, doc_id: str, phrase: str, min_seq: int | None = None) -> Json:
        phrase = clean_query(phrase)
        needle = phrase.casefold()
        seq = await self.freshness.seq(doc_id, min_seq)
        now = await current_text(self.db, doc_id)
        if now is not None and now[0] >= seq:
            seq = now[0]  # the text kept for search is the text at this seq
        if seq > 0:
            # The text changes replayed below are the history read side's: wait for it too.
            await self.queries.freshness.wait(doc_id, seq)
        points: list[tuple[int, str]] = [(0, "")]
        points += await marks(self.db, doc_id, seq)
        if seq > points[-1][0]:
            points.append((seq, now[1] if now is not None and now[0] == seq
                           else await self.queries.text_at(doc_id, seq)))
        found: list[Found] = []
        for (a, text_a), (b, text_b) in itertools.pairwise(points):
            had, has = needle in text_a.casefold(), needle in text_b.casefold()
            if b - a <= EXACT_SCAN:
                found += await self._scan(doc_id, needle, a, b, had)
            elif had != has:
                low, high = await self._narrow(doc_id, needle, a, b, has)
                found += await self._scan(doc_id, needle, low, high, had)
        items = [await self._item(doc_id, needle, f) for f in found]
        return {"items": items, "seq": seq, "phrase": phrase}

    async def _scan(self, doc_id: str, needle: str, low: int, high: int,
                    had: bool) -> list[Found]:
        """Every change of presence in (low, high]: the text at `low`, then each event's text
        changes (the read side's) applied in turn. While the phrase is absent only the bytes
        around each change are looked at; while present, the whole text."""
        if high <= low:
            return []
        text = await self.queries.text_at(doc_id, low)
        content = bytearray(text.encode())
        span = len(needle.encode()) * 4 + 8  # a casefolded character is at most 3 more bytes
        found = []
        for row in await self.queries.read_model.changes(doc_id, low, high):
            apply_ops(content, row.ops)
            if had:
                after = content.decode(errors="replace")
                has = needle in after.casefold()
            else:
                has = any(needle in bytes(content[max(0, pos - span):
                                                  pos + len(inserted.encode()) + span])
                          .decode(errors="ignore").casefold()
                          for pos, _deleted, inserted in row.ops)
                after = content.decode(errors="replace") if has else ""
            if has != had:
                # The snippet shows the phrase where it is: after the event that made it
                # appear, before the one that made it disappear.
                found.append(Found(row.seq, has, after if has else text))
                had = has
            if had:
                text = after
        return found

    async def _narrow(self, doc_id: str, needle: str, low: int, high: int,
                      present_at_high: bool) -> tuple[int, int]:
        """Bisect (low, high] down to at most EXACT_SCAN events whose ends still disagree."""
        while high - low > EXACT_SCAN:
            middle = (low + high) // 2
            text = await self.queries.text_at(doc_id, middle)
            if (needle in text.casefold()) == present_at_high:
                high = middle
            else:
                low = middle
        return low, high

    async def _item(self, doc_id: str, needle: str, found: Found) -> Json:
        text = found.text
        at = text.casefold().find(needle)
        at = max(at, 0)
        start, end = max(0, at - SNIPPET_CONTEXT), at + len(needle) + SNIPPET_CONTEXT
        snippet = (html.escape(text[start:at]) + "<mark>"
                   + html.escape(text[at:at + len(needle)]) + "</mark>"
                   + html.escape(text[at + len(needle):end]))
        event = (await self.queries.events(doc_id, found.seq - 1, 1))["items"]
        info = event[0] if event else {}
        seq = found.seq
        return {"seq": seq, "time": info.get("time"), "author": info.get("actor"),
                "change": "appeared" if found.appeared else "disappeared",
                "snippet": snippet,
                "link": f"/d/{doc_id}?seq={seq if found.appeared else seq - 1}"}
