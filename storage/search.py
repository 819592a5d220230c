"""Full-text search over the current text of every document, and the history marks.

PostgreSQL: the `tsvector` column of `search_texts` (title weighted above the body) with its
GIN index, `websearch_to_tsquery`, `ts_rank` and `ts_headline`. SQLite: the FTS5 table
`search_fts`, `bm25` and `snippet`. The caller's words become a query of plain terms (all
required) on both, so no search syntax of either engine reaches it. Snippets come back with
MARK_START/MARK_END around the matches, for the edge to turn into escaped HTML.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from sqlalchemy import select, text

from storage.database import Database
from storage.insight_schema import (
    history_marks,
    history_words,
    insight_checkpoints,
    search_texts,
)

MARK_START = "\x02"
MARK_END = "\x03"
TERM = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 16


@dataclass(frozen=True, slots=True)
class SearchHit:
    doc_id: str
    title: str
    snippet: str
    seq: int
    score: float


def terms(query: str) -> list[str]:
    return TERM.findall(query)[:MAX_TERMS]


_POSTGRES = text(
    "SELECT doc_id, title, seq, rank, ts_headline('english', body, q, :options) AS snippet "
    "FROM (SELECT doc_id, title, body, seq, q, ts_rank(tsv, q) AS rank "
    "      FROM search_texts, to_tsquery('english', :query) AS q "
    "      WHERE tsv @@ q ORDER BY rank DESC, doc_id LIMIT :limit OFFSET :offset) AS found "
    "ORDER BY rank DESC, doc_id")
_HEADLINE = f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=24, MinWords=8, MaxFragments=2"
_SQLITE = text(
    "SELECT f.doc_id, f.title, s.seq, -bm25(search_fts, 4.0, 1.0) AS rank, "
    f"snippet(search_fts, 2, '{MARK_START}', '{MARK_END}', '…', 16) AS snippet "
    "FROM search_fts AS f JOIN search_texts AS s ON s.doc_id = f.doc_id "
    "WHERE search_fts MATCH :query ORDER BY bm25(search_fts, 4.0, 1.0), f.doc_id "
    "LIMIT :limit OFFSET :offset")


async def search(db: Database, words: list[str], limit: int, offset: int = 0) -> list[SearchHit]:
    """The best matches for every one of `words`, best first."""
    if not words:
        return []
    async with db.read() as conn:
        if conn.dialect.name == "postgresql":
            # Each term a lexeme of its own (quoted: no tsquery operator gets through).
            query = " & ".join("'" + w.replace("'", "") + "'" for w in words)
            rows = (await conn.execute(_POSTGRES, {"query": query, "options": _HEADLINE,
                                                   "limit": limit, "offset": offset})).all()
            return [SearchHit(str(r.doc_id), r.title, r.snippet, int(r.seq), float(r.rank))
                    for r in rows]
        query = " ".join('"' + w.replace('"', "") + '"' for w in words)
        rows = (await conn.execute(_SQLITE, {"query": query, "limit": limit,
                                             "offset": offset})).all()
        return [SearchHit(str(r.doc_id), r.title, r.snippet, int(r.seq), float(r.rank))
                for r in rows]


async def current_text(db: Database, doc_id: str) -> tuple[int, str] | None:
    """The document's text at the insight checkpoint, and that checkpoint (one statement:
    the two were saved in one transaction)."""
    async with db.read() as conn:
        row = (await conn.execute(
            select(insight_checkpoints.c.seq, search_texts.c.body)
            .join(insight_checkpoints, insight_checkpoints.c.doc_id == search_texts.c.doc_id)
            .where(search_texts.c.doc_id == doc_id))).first()
    return None if row is None else (int(row[0]), str(row[1]))


async def mark_seqs(db: Database, doc_id: str, until_seq: int) -> list[int]:
    async with db.read() as conn:
        rows = (await conn.execute(
            select(history_marks.c.seq)
            .where(history_marks.c.doc_id == doc_id, history_marks.c.seq <= until_seq)
            .order_by(history_marks.c.seq))).all()
    return [int(r[0]) for r in rows]


async def mark_text(db: Database, doc_id: str, seq: int) -> str:
    async with db.read() as conn:
        data = (await conn.execute(select(history_marks.c.text).where(
            history_marks.c.doc_id == doc_id, history_marks.c.seq == seq))).scalar_one()
    return zlib.decompress(data).decode()


async def stretch_words(db: Database, doc_id: str, until_stretch: int) -> dict[int, bytes]:
    """The words each stretch of history touched (storage.insight_schema.history_words), as
    lower-cased words joined by newlines; a stretch without a row had no edit."""
    async with db.read() as conn:
        rows = (await conn.execute(
            select(history_words.c.stretch, history_words.c.words)
            .where(history_words.c.doc_id == doc_id,
                   history_words.c.stretch <= until_stretch))).all()
    return {int(r[0]): zlib.decompress(r[1]) for r in rows}
