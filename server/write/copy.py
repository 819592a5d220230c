"""The Yjs update that gives a document a text (the first edit of a copy)."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Text


def text_update(state: bytes, current: str, text: str) -> bytes:
    """The update that replaces the text `current` of the doc with `state` by `text`."""
    scratch: Doc[Any] = Doc()
    scratch.apply_update(state)
    content = scratch.get("content", type=Text)
    before = scratch.get_state()
    with scratch.transaction():
        if current:
            del content[0:len(current.encode())]  # pycrdt counts UTF-8 bytes
        content.insert(0, text)
    update: bytes = scratch.get_update(before)
    return update
