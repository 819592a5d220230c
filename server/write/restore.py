"""Restore planning: the Yjs update that turns a whole document into an earlier state.

Pure: given the room's state and the state at the seq to restore, it edits a scratch copy
of the doc and returns what changed. The text edits are small (`edits`: common prefix and
suffix kept, the middle diffed), so people editing at the same time keep their cursors and
their own concurrent edits merge in. Every root type is restored (`whole_document.py`).
"""

from __future__ import annotations

import difflib

from server.write.whole_document import plan_whole_restore

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


def plan_restore(state: bytes, target: bytes) -> bytes | None:
    """The update that makes the doc with `state` equal to the doc with `target` in every
    root type; None when they are already equal. CannotRestore (nothing changed) when some
    content cannot be made what it was."""
    return plan_whole_restore(state, target, edits)
