"""Would an update change a document? Decided without applying it (invariant 7).

A read-only connection's stock client answers the server's sync step 1 with a step 2: the
structs the server lacks (none, if it is only reading) and its whole delete set (always sent
by Yjs, and equal to the server's when it is only reading). That must be accepted silently;
anything that would add a struct or delete something not yet deleted is refused.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, get_update

from server.write.update_guard import DeleteSet, delete_set

EMPTY_STRUCTS = 0
# What a refused edit is answered with (the y-websocket permission-denied message), whether the
# connection is read-only or the document is (published or archived): the same words.
READ_ONLY_MESSAGE = "read-only access to this document"


def would_change(doc: Doc[Any], update: bytes, *, compare_deletions: bool = True) -> bool:
    """True if applying `update` (scan()-checked) to `doc` could change it. `doc` is only read.

    Comparing deletions costs O(the document's deletions); with `compare_deletions=False`, any
    deletion counts as a change (a reader's client sends its delete set once, in its step 2).
    """
    try:
        missing = get_update(update, doc.get_state())
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException:
        return True  # undecodable here: treat it as a write, which is refused
    if missing[:1] != bytes((EMPTY_STRUCTS,)):
        return True
    wanted = delete_set(update)
    if not wanted:
        return False
    if not compare_deletions:
        return True
    # Only now pay for the document's delete set: encoded against its own state vector, the
    # update holds no structs and the whole delete set, O(deletions) rather than O(document).
    return not _covers(delete_set(doc.get_update(doc.get_state())), wanted)


def merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping, non-empty (start, end) intervals."""
    out: list[tuple[int, int]] = []
    for clock, length in sorted(ranges):
        if length <= 0:
            continue
        end = clock + length
        if out and clock <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((clock, end))
    return out


def _covers(have: DeleteSet, wanted: DeleteSet) -> bool:
    for client, ranges in wanted.items():
        held = merged(have.get(client, []))
        i = 0
        for start, end in merged(ranges):
            while i < len(held) and held[i][1] <= start:
                i += 1
            if i == len(held) or held[i][0] > start or held[i][1] < end:
                return False
    return True
