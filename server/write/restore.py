"""Restore planning: the Yjs update that turns a whole document into an earlier state.

Pure: given the room's state and the state at the seq to restore, it edits a scratch copy
of the doc and returns what changed. Every root type is restored (`whole_document.py`). The
text edits are small and word-aligned (`edits`: the words both texts share are kept, whole
words replaced), so people editing at the same time keep their cursors and their own
concurrent edits merge in beside the restored words.
"""

from __future__ import annotations

from server.worddiff import spans, word_diff
from server.write.whole_document import plan_whole_restore

# The restore is planned under the document's lock: past this the diff answers a coarser
# (still exact, still word-aligned) plan rather than hold the writer longer.
DIFF_SECONDS = 0.1


def edits(current: str, target: str) -> list[tuple[int, int, str]]:
    """(start, end, replacement) spans of `current`, in order, that make it `target`.

    Each span covers whole words (server.worddiff): a restored word is inserted in one
    piece, so someone typing at the same time lands beside it, never inside it; the words
    the two texts share are kept, with the cursors in them."""
    return spans(word_diff(current, target, timeout=DIFF_SECONDS, semantic=False))


def plan_restore(state: bytes, target: bytes) -> bytes | None:
    """The update that makes the doc with `state` equal to the doc with `target` in every
    root type; None when they are already equal. CannotRestore (nothing changed) when some
    content cannot be made what it was."""
    return plan_whole_restore(state, target, edits)
