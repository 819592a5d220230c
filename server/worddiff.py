"""Word diffs: what changed between two texts, in whole words, for people to read.

diff-match-patch's Myers diff runs on words instead of characters: each distinct token (a
word, a run of spaces, one other character) becomes one code point, as its lines-to-chars
trick does for lines, the code-point strings are diffed, and its semantic clean-up merges
the small equalities that shred a change ("W̶S̲hy̶ade"). Then each change is a run of whole
tokens, so no one reads a word half-struck, and a restore built from these spans replaces
whole words (concurrent typing lands beside a restored word, never inside it).

Pure, shared by both sides: the read side's `diff`, the write side's restore spans.
Lines are diffed first, then words inside each block of changed lines. The work is bounded
by a deadline (`timeout`): past it the diff is coarser, still exact (more replaced, never a
wrong text).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from diff_match_patch import diff_match_patch

EQUAL = 0
INSERT = 1
DELETE = -1

# A word (letters, digits, joined by ' or - inside), a run of spaces, a line break, or any
# other single character.
_TOKEN = re.compile(r"\w+(?:['\u2019\-]\w+)*|[ \t]+|\r?\n|.", re.DOTALL)

# Private code points first, well away from anything a document holds; past them the rest.
_FIRST_CODE = 0xF0000

Diff = tuple[int, str]


_LINE = re.compile(r"[^\n]*\n|[^\n]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _encode(parts: list[str], index: dict[str, str], table: dict[str, str]) -> str:
    out = []
    for token in parts:
        code = index.get(token)
        if code is None:
            n = len(table)
            # 65,536 private code points, then from U+0100 on (a million distinct tokens).
            code = chr(_FIRST_CODE + n) if _FIRST_CODE + n <= 0x10FFFF else chr(n - 0xFF00)
            index[token] = code
            table[code] = token
        out.append(code)
    return "".join(out)


def _diff_parts(old: list[str], new: list[str], seconds: float, semantic: bool
                ) -> list[Diff]:
    """Myers on two token lists (each token one code point), merged back into texts."""
    index: dict[str, str] = {}
    table: dict[str, str] = {}
    a = _encode(old, index, table)
    b = _encode(new, index, table)
    dmp = diff_match_patch()
    dmp.Diff_Timeout = max(seconds, 0.001)
    diffs = dmp.diff_main(a, b, False)
    if semantic:
        dmp.diff_cleanupSemantic(diffs)
    return [(op, "".join([table[c] for c in coded])) for op, coded in diffs if coded]


def word_diff(old: str, new: str, *, timeout: float = 0.02, semantic: bool = True
              ) -> list[Diff]:
    """[(op, text), ...] with op EQUAL, INSERT or DELETE, each text whole tokens: the equal and
    deleted texts in order spell `old`, the equal and inserted ones `new`.

    Lines first (few tokens, so fast even between distant texts), then words inside each
    block of changed lines, until `timeout` seconds are spent: past it a block stays
    replaced line by line (exact, coarser)."""
    if old == new:
        return [(EQUAL, old)] if old else []
    deadline = time.monotonic() + timeout
    out: list[Diff] = []

    def add(op: int, text: str) -> None:
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        elif text:
            out.append((op, text))

    def words(deleted: str, inserted: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not deleted or not inserted:
            add(DELETE, deleted)
            add(INSERT, inserted)
            return
        for op, text in _diff_parts(tokens(deleted), tokens(inserted), left, semantic):
            add(op, text)

    deleted = inserted = ""
    for op, text in _diff_parts(_LINE.findall(old), _LINE.findall(new), timeout, False):
        if op == EQUAL:
            words(deleted, inserted)
            deleted = inserted = ""
            add(EQUAL, text)
        elif op == DELETE:
            deleted += text
        else:
            inserted += text
    words(deleted, inserted)
    return out


def spans(diffs: Sequence[Diff]) -> list[tuple[int, int, str]]:
    """(start, end, replacement) spans of the old text, in order, that make it the new one."""
    out: list[tuple[int, int, str]] = []
    pos = 0
    for op, text in diffs:
        if op == EQUAL:
            pos += len(text)
            continue
        if out and out[-1][1] == pos:
            start, end, replacement = out[-1]
        else:
            start, end, replacement = pos, pos, ""
            out.append((start, end, replacement))
        if op == DELETE:
            pos += len(text)
            end = pos
        else:
            replacement += text
        out[-1] = (start, end, replacement)
    return out
