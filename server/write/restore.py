"""Restore planning: the Yjs update that turns a document's text into an earlier one.

Pure: given the room's state and texts, it edits a scratch copy of the doc and returns what
changed. The edits are small (common prefix and suffix kept, the middle diffed), so people
editing at the same time keep their cursors and their own concurrent edits merge in.
"""

from __future__ import annotations

import difflib
from typing import Any

from pycrdt import Doc, Text

# Above this many character comparisons the middle is replaced wholesale instead of diffed.
MAX_DIFF_WORK = 4_000_000


def edits(current: str, target: str) -> list[tuple[int, int, str]]:
    """(start, end, replacement) spans of `current`, in order, that make it `target`."""
    prefix = 0
    limit = min(len(current), len(target))
    while prefix < limit and current[prefix] == target[prefix]:
        prefix += 1
    suffix = 0
    while (suffix < limit - prefix
           and current[len(current) - 1 - suffix] == target[len(target) - 1 - suffix]):
        suffix += 1
    a = current[prefix : len(current) - suffix]
    b = target[prefix : len(target) - suffix]
    if not a and not b:
        return []
    if not a or not b or len(a) * len(b) > MAX_DIFF_WORK:
        return [(prefix, prefix + len(a), b)]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [
        (prefix + i1, prefix + i2, b[j1:j2])
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


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
