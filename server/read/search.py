"""Search: the current text of every document (full-text, ranked), and one document's history.

Current text: the search read store (storage.search), filtered to what the caller may read,
with snippets whose matches are marked `<mark>` and everything else HTML-escaped.

History: when a phrase appeared in a document and when it disappeared. The insight follower
keeps the text every MARK_EVERY events (history marks); the phrase is looked for (ASCII letters
case-insensitively) in each mark and in the current text. Where two neighbours disagree, the
stretch between them is replayed from the mark's text with the read side's text changes (one
read), the phrase's occurrences counted again only around each change: every change of
presence in it is found, at its exact seq. A stretch whose ends agree may still hold changes
(the phrase appeared and disappeared again within it): it is replayed when one of the words
its edits touched (server.read.insight_fold.touch, kept per stretch) could belong to an
occurrence of the phrase; otherwise no change created or destroyed one, and it is skipped.
"""

from __future__ import annotations

import html
import itertools
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.errors import BadRequest
from server.read import insight_fold
from server.read.insight_freshness import InsightFreshness
from server.read.queries import Queries
from storage.database import Database
from storage.search import (
    MARK_END,
    MARK_START,
    current_text,
    mark_seqs,
    mark_text,
    search,
    stretch_words,
    terms,
)

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Found:
    seq: int
    appeared: bool
MAX_QUERY = 200
SCAN_PAGES = 10  # pages of ranked hits one search may read past unreadable documents
SNIPPET_CONTEXT = 60
MARK_CACHE_BYTES = 64_000_000  # lower-cased mark texts kept in memory (a 260k-event paper: 4 MB)


def marked_html(snippet: str) -> str:
    """Escape everything, then turn the store's match markers into <mark> tags."""
    return (html.escape(snippet).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>"))


def could_change(touched: bytes, parts: list[bytes]) -> bool:
    """Whether an occurrence of the phrase made of the words `parts` could hold what a stretch's
    changes touched (`touched`: newline-separated words and "left right" pairs of neighbouring
    words, insight_fold.touch). In the text an occurrence's first word ends with the phrase's
    first, its last starts with the phrase's last, the ones between are equal: a one-word phrase
    lies inside a touched word; a longer one needs a touched pair that fits two neighbours."""
    if len(parts) < 2:
        return not parts or parts[0] in touched  # words hold no newline: inside one of them
    last = len(parts) - 1
    fits = []
    for i in range(last):
        left = rb"[^ \n]*" + re.escape(parts[0]) if i == 0 else re.escape(parts[i])
        right = re.escape(parts[last]) + rb"[^ \n]*" if i + 1 == last else re.escape(parts[i + 1])
        fits.append(left + b" " + right)
    return re.search(rb"(?m)^(?:" + b"|".join(fits) + rb")$", touched) is not None


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
        self._marks: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._marks_bytes = 0

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
        needle = phrase.encode().lower()
        seq = await self.freshness.seq(doc_id, min_seq)
        now = await current_text(self.db, doc_id)
        if now is not None and now[0] >= seq:
            seq = now[0]  # the text kept for search is the text at this seq
        if seq > 0:
            # The text changes replayed below are the history read side's: wait for it too.
            await self.queries.freshness.wait(doc_id, seq)
        points: list[tuple[int, bytes]] = [(0, b"")]
        for mark in await mark_seqs(self.db, doc_id, seq):
            points.append((mark, await self._lowered_mark(doc_id, mark)))
        if seq > points[-1][0]:
            points.append((seq, (now[1] if now is not None and now[0] == seq
                                 else await self.queries.text_at(doc_id, seq)).encode().lower()))
        every = insight_fold.MARK_EVERY
        touched = await stretch_words(self.db, doc_id, (seq - 1) // every) if seq > 0 else {}
        parts = needle.split()  # ASCII whitespace, as the fold splits words
        found: list[Found] = []
        for (a, text_a), (b, text_b) in itertools.pairwise(points):
            had, has = needle in text_a, needle in text_b
            # The events in (a, b] are kept under the stretches (seq - 1) // every.
            if had != has or any(could_change(touched.get(k, b""), parts)
                                 for k in range(a // every, (b - 1) // every + 1)):
                found += await self._scan(doc_id, needle, a, b, text_a)
        items = [await self._item(doc_id, phrase, f) for f in found]
        return {"items": items, "seq": seq, "phrase": phrase}

    async def _lowered_mark(self, doc_id: str, seq: int) -> bytes:
        """A mark's text, UTF-8 and ASCII-lower-cased, cached: marks never change, but for a
        history rewrite, which bumps the document's generation (Queries.forget)."""
        key = (doc_id, self.queries.generations.get(doc_id, 0), seq)
        cached = self._marks.get(key)
        if cached is not None:
            self._marks.move_to_end(key)
            return cached
        lowered = (await mark_text(self.db, doc_id, seq)).encode().lower()
        self._marks[key] = lowered
        self._marks_bytes += len(lowered)
        while self._marks_bytes > MARK_CACHE_BYTES:
            _, dropped = self._marks.popitem(last=False)
            self._marks_bytes -= len(dropped)
        return lowered

    async def _scan(self, doc_id: str, needle: bytes, low: int, high: int,
                    lowered_text: bytes) -> list[Found]:
        """Every change of presence in (low, high]: the text at `low`, then each event's text
        changes (the read side's) applied in turn, the phrase's occurrences counted again
        only in the bytes around each change."""
        # Only the lower-cased bytes are kept (one copy to move per change); the snippets read
        # the few texts they show from the read side.
        lowered = bytearray(lowered_text)
        reach = len(needle) - 1
        count = lowered.count(needle)
        found = []
        for row in await self.queries.read_model.changes(doc_id, low, high):
            before = count
            for pos, deleted, inserted in row.ops:
                gone, new = len(deleted.encode()), inserted.encode().lower()
                start = max(0, pos - reach)
                count -= lowered[start:pos + gone + reach].count(needle)
                lowered[pos:pos + gone] = new
                count += lowered[start:pos + len(new) + reach].count(needle)
            if (before > 0) != (count > 0):
                found.append(Found(row.seq, count > 0))
        return found

    async def _item(self, doc_id: str, phrase: str, found: Found) -> Json:
        seq = found.seq
        shown = seq if found.appeared else seq - 1  # a text holding the phrase
        text = await self.queries.text_at(doc_id, shown)
        at = max(text.lower().find(phrase.lower()), 0)
        start, end = max(0, at - SNIPPET_CONTEXT), at + len(phrase) + SNIPPET_CONTEXT
        snippet = (html.escape(text[start:at]) + "<mark>"
                   + html.escape(text[at:at + len(phrase)]) + "</mark>"
                   + html.escape(text[at + len(phrase):end]))
        event = (await self.queries.events(doc_id, seq - 1, 1))["items"]
        info = event[0] if event else {}
        return {"seq": seq, "time": info.get("time"), "author": info.get("actor"),
                "change": "appeared" if found.appeared else "disappeared",
                "snippet": snippet, "link": f"/d/{doc_id}?seq={shown}"}
