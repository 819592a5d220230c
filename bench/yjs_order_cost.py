"""What keeping to Yjs costs per applied update: the server's apply (clock gaps held back,
deletions of unseen items tracked, key orders learned, surrogate pairs checked) against
pycrdt's bare apply, in one run.

    .venv/bin/python bench/yjs_order_cost.py [--updates 5000]

Three corpora of one-character edits typed by one client (mostly appended, every seventh at the
start): ASCII only; one character in three an emoji (so the surrogate check parses every
update); ASCII with every third edit a backspace (a deletion-only update, whose delete set is
read). CPU time per update (process time), each side run twice, alternating. The rendering of
formatted text is yrs's own (Text.diff), unchanged: keeping to Yjs costs nothing there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pycrdt import Doc, Text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.write.surrogates import SurrogateIndex
from server.ydoc import PendingUpdates


def corpus(chars: str, n: int, backspaces: bool = False) -> list[bytes]:
    """Each edit's own update, as a Yjs client sends it (only its own deletions: pycrdt's
    get_update(state) would carry the document's whole delete set every time)."""
    source: Doc[Any] = Doc()
    text = source.get("content", type=Text)
    out: list[bytes] = []
    subscription = source.observe(lambda event: out.append(event.update))
    for i in range(n):
        if backspaces and i % 3 == 2 and len(text):
            del text[len(text) - 1]
        else:
            text.insert(len(text) if i % 7 else 0, chars[i % len(chars)])
    source.unobserve(subscription)
    return out


def bare(updates: list[bytes]) -> float:
    doc: Doc[Any] = Doc()
    start = time.process_time()
    for update in updates:
        doc.apply_update(update)
    return time.process_time() - start


def kept_to_yjs(updates: list[bytes]) -> float:
    doc: Doc[Any] = Doc()
    pending = PendingUpdates()
    pairs = SurrogateIndex()
    start = time.process_time()
    for update in updates:
        pairs.check(update)
        pending.apply(doc, update)
        pairs.add(update)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=5000)
    n = parser.parse_args().updates
    print("| corpus | bare apply us/update | kept to Yjs us/update | ratio |")
    print("|---|---|---|---|")
    for name, chars, backspaces in (("ASCII", "abc", False),
                                    ("one emoji in three", "ab\U0001F600", False),
                                    ("ASCII, one edit in three a backspace", "abc", True)):
        updates = corpus(chars, n, backspaces)
        b = min(bare(updates), bare(updates)) / n * 1e6
        k = min(kept_to_yjs(updates), kept_to_yjs(updates)) / n * 1e6
        print(f"| {name} | {b:.1f} | {k:.1f} | {k / b:.1f}x |")


if __name__ == "__main__":
    main()
