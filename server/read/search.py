"""Search: the current text of every document (full-text, ranked), and one document's history.

Current text: the search read store (storage.search), filtered to what the caller may read,
with snippets whose matches are marked `<mark>` and everything else HTML-escaped.

History: when a phrase appeared in a document and when it disappeared. The insight follower
keeps the text every MARK_EVERY events (history marks); the phrase is looked for in each
mark and in the current text, and where two neighbours disagree the seq it changed at is found
by bisection with the read side's text at any seq (Queries.text_at): about log2(MARK_EVERY)
texts per change. So a search costs a few dozen reads however long the log. A stretch of at
most EXACT_SCAN events (a short document, or the events after the last mark) is read seq by
seq, so nothing in it is missed; in a longer stretch, a phrase that appears and disappears
again between two marks is not seen (docs/architecture.md).
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable
from typing import Any

from server.errors import BadRequest
from server.read.insight_freshness import InsightFreshness
from server.read.queries import Queries
from storage.database import Database
from storage.search import MARK_END, MARK_START, current_text, marks, search, terms

Json = dict[str, Any]
MAX_QUERY = 200
SCAN_PAGES = 10  # pages of ranked hits one search may read past unreadable documents
SNIPPET_CONTEXT = 60
EXACT_SCAN = 256  # a stretch between marks this short is read seq by seq: nothing is missed


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
        points: list[tuple[int, str]] = [(0, "")]
        points += await marks(self.db, doc_id, seq)
        if now is not None and now[0] == seq and now[0] > points[-1][0]:
            points.append(now)
        elif seq > points[-1][0]:
            points.append((seq, await self.queries.text_at(doc_id, seq)))
        found: list[tuple[int, bool]] = []
        for (a, text_a), (b, text_b) in itertools.pairwise(points):
            had, has = needle in text_a.casefold(), needle in text_b.casefold()
            if b - a <= EXACT_SCAN:
                found += await self._scan(doc_id, needle, a, b, had)
            elif had != has:
                found.append((await self._changed_at(doc_id, needle, a, b, has), has))
        items = [await self._item(doc_id, phrase, needle, at, appeared)
                 for at, appeared in found]
        return {"items": items, "seq": seq, "phrase": phrase}

    async def _scan(self, doc_id: str, needle: str, low: int, high: int,
                    had: bool) -> list[tuple[int, bool]]:
        """Every change of presence in (low, high], seq by seq (a short stretch)."""
        found = []
        for seq in range(low + 1, high + 1):
            has = needle in (await self.queries.text_at(doc_id, seq)).casefold()
            if has != had:
                found.append((seq, has))
                had = has
        return found

    async def _changed_at(self, doc_id: str, needle: str, low: int, high: int,
                          present_at_high: bool) -> int:
        """The first seq in (low, high] whose text agrees with `high` (bisection)."""
        while high - low > 1:
            middle = (low + high) // 2
            text = await self.queries.text_at(doc_id, middle)
            if (needle in text.casefold()) == present_at_high:
                high = middle
            else:
                low = middle
        return high

    async def _item(self, doc_id: str, phrase: str, needle: str, seq: int,
                    appeared: bool) -> Json:
        # The snippet shows the phrase in the text where it is: after the event that made it
        # appear, before the one that made it disappear.
        text = await self.queries.text_at(doc_id, seq if appeared else seq - 1)
        at = text.casefold().find(needle)
        start, end = max(0, at - SNIPPET_CONTEXT), at + len(needle) + SNIPPET_CONTEXT
        snippet = (html.escape(text[start:at]) + "<mark>" + html.escape(text[at:at + len(needle)])
                   + "</mark>" + html.escape(text[at + len(needle):end]))
        event = (await self.queries.events(doc_id, seq - 1, 1))["items"]
        info = event[0] if event else {}
        return {"seq": seq, "time": info.get("time"), "author": info.get("actor"),
                "change": "appeared" if appeared else "disappeared", "snippet": snippet,
                "link": f"/d/{doc_id}?seq={seq if appeared else seq - 1}"}


