"""What one event did to the text, as plain edit operations, and how to replay them.

An op is `(pos, deleted, inserted)`: at byte offset `pos` of the UTF-8 text, `deleted` was
removed and then `inserted` put in its place. Offsets are UTF-8 bytes because that is what
pycrdt's Y.Text deltas count in; texts are only decoded at the edges. Ops of one event apply
in order, each to the text the previous one left.

An embed (an image, a formula: any non-string insert of a formatted Y.Text) takes one unit
of a Yjs offset, so it takes one byte here: the EMBED marker, an ASCII control character
nobody types. The texts and ops stored keep the markers, so later offsets stay right; what
people read (`visible`) leaves them out, as Y.Text.toString does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Op = tuple[int, str, str]

EMBED = "\x1a"  # one UTF-8 byte: an embed counts 1 in pycrdt's offsets as in Yjs's


def visible(text: str) -> str:
    """The text as people read it: embeds left out (Y.Text.toString)."""
    return text.replace(EMBED, "") if EMBED in text else text


def apply_delta(content: bytearray, delta: Iterable[dict[str, Any]]) -> list[Op]:
    """Apply a Y.Text delta to `content` in place; return the ops it amounted to."""
    ops: list[Op] = []
    pos = 0
    for part in delta:
        if "retain" in part:
            pos += int(part["retain"])
        elif "insert" in part:
            inserted = part["insert"]
            if not isinstance(inserted, str):
                inserted = EMBED  # one unit, as Yjs counts it
            data = inserted.encode()
            content[pos:pos] = data
            if ops and ops[-1][0] == pos and not ops[-1][2]:
                # A delete then an insert at one place is one replacement.
                ops[-1] = (pos, ops[-1][1], inserted)
            else:
                ops.append((pos, "", inserted))
            pos += len(data)
        elif "delete" in part:
            length = int(part["delete"])
            removed = bytes(content[pos : pos + length])
            del content[pos : pos + length]
            ops.append((pos, removed.decode(errors="replace"), ""))
    return ops


def apply_ops(content: bytearray, ops: Sequence[Sequence[Any]]) -> None:
    """Replay ops forward, in place."""
    for pos, deleted, inserted in ops:
        content[pos : pos + len(deleted.encode())] = inserted.encode()


def revert_ops(content: bytearray, ops: Sequence[Sequence[Any]]) -> None:
    """Undo ops, in place: the inverse of apply_ops (last op first)."""
    for pos, deleted, inserted in reversed(ops):
        content[pos : pos + len(inserted.encode())] = deleted.encode()


def counts(ops: Sequence[Op]) -> tuple[int, int]:
    """Characters (code points) inserted and deleted by `ops`."""
    return sum(len(op[2]) for op in ops), sum(len(op[1]) for op in ops)
