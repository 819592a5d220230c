"""Restore planning: the Yjs update that turns a document's text into an earlier one.

Pure: given the room's state and texts, it edits a scratch copy of the doc and returns what
changed. The edits are small and word-aligned (the words both texts share are kept, whole
words replaced), so people editing at the same time keep their cursors and their own
concurrent edits merge in beside the restored words.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Text

from server.worddiff import spans, word_diff

# The restore is planned under the document's lock: past this the diff answers a coarser
# (still exact, still word-aligned) plan rather than hold the writer longer.
DIFF_SECONDS = 0.1


def edits(current: str, target: str) -> list[tuple[int, int, str]]:
    """(start, end, replacement) spans of `current`, in order, that make it `target`.

    Each span covers whole words (server.worddiff): a restored word is inserted in one
    piece, so someone typing at the same time lands beside it, never inside it; the words
    the two texts share are kept, with the cursors in them."""
    return spans(word_diff(current, target, timeout=DIFF_SECONDS, semantic=False))


def plan_restore(state: bytes, current: str, target: str) -> bytes | None:
    """The update that makes the text of the doc with `state` (text `current`) `target`;
    None when they are already equal."""
    spans = edits(current, target)
    if not spans:
        return None
    scratch: Doc[Any] = Doc()
    scratch.apply_update(state)
    text = scratch.get("content", type=Text)
    before = scratch.get_state()
    with scratch.transaction():
        # From the end, so the offsets of earlier spans stay valid. pycrdt counts UTF-8 bytes.
        for start, end, replacement in reversed(spans):
            offset = len(current[:start].encode())
            length = len(current[start:end].encode())
            if length:
                del text[offset : offset + length]
            if replacement:
                text.insert(offset, replacement)
    update: bytes = scratch.get_update(before)
    return update
