"""Counting what an event changed in every root type, not only the text named `content`.

A root arrives untyped (server/ystructs.py); once the state says what it holds, it is typed
in the projection's doc and observed deeply, so changes anywhere under it (a paragraph of a
ProseMirror fragment, a key of a nested map) are counted: a character inserted or deleted
counts one, an element, array item or map entry inserted or removed counts one (a map value
replaced counts one of each), and a formatting change counts the characters it formats, as
inserted. The projection adds these to the revision's counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from server.yrender import SHARED
from server.ystructs import root_types


@dataclass(frozen=True, slots=True)
class OtherRoots:
    """What one apply changed in the other root types, counted by the write side's own
    RootWatch: handed to a projector in the same process beside the text deltas (it then
    applies the update later, merged, and must not count it again)."""

    inserted: int
    deleted: int


class RootWatch:
    def __init__(self, doc: Doc[Any], skip: frozenset[str] = frozenset({"content"})) -> None:
        self.doc = doc
        self.skip = skip  # roots counted elsewhere (the text ops)
        self.inserted = 0
        self.deleted = 0
        self._watched: set[str] = set()
        self._subscriptions: list[Any] = []
        self._names: frozenset[str] = frozenset()
        self._since_retry = 0
        self._seen: frozenset[str] = frozenset()

    # A root whose every child is deleted says nothing of its type: looked at again every
    # RETRY_EVERY events (a whole-state encoding each time), not on every one.
    RETRY_EVERY = 64

    @property
    def settled(self) -> bool:
        """Every root seen is typed and watched: `after_apply` after an update that can bring
        no new root (a keystroke) would change nothing."""
        return not self._untyped()

    def after_apply(self) -> None:
        """Type and observe roots that appeared; cheap when none did (a dict of names)."""
        names = frozenset(self.doc.keys())
        if names == self._names:
            return
        self._since_retry += 1
        if self._names <= names and not (names - self._names - self._untyped()) \
                and self._since_retry < self.RETRY_EVERY:
            return
        self._since_retry = 0
        new = names - self._watched - self.skip
        if not new:
            self._names = names
            return
        kinds = root_types(self.doc.get_update())
        for name in new:
            kind = kinds.get(name)
            if kind is None:
                continue  # nothing says yet: looked at again when the names change
            shared = self.doc.get(name, type=SHARED[kind])
            # What it holds came before anyone watched: the event that brought it.
            self.inserted += _size(shared)
            self._subscriptions.append(shared.integrated.observe_deep(self._on_events))
            self._watched.add(name)
        self._names = frozenset(self._watched | self.skip) & names
        self._seen = names

    def _untyped(self) -> frozenset[str]:
        return self._seen - self._names

    def _on_events(self, events: list[Any]) -> None:
        # Read inside the callback: pycrdt's event objects die with it.
        for event in events:
            for part in getattr(event, "delta", None) or []:
                if "insert" in part:
                    value = part["insert"]
                    self.inserted += len(value) if isinstance(value, (str, list)) else 1
                elif "delete" in part:
                    self.deleted += int(part["delete"])
                elif part.get("attributes"):
                    self.inserted += int(part.get("retain", 0))
            for change in (getattr(event, "keys", None) or {}).values():
                action = change.get("action") if isinstance(change, dict) else None
                if action in ("add", "update"):
                    self.inserted += 1
                if action in ("delete", "update"):
                    self.deleted += 1

    def take(self) -> tuple[int, int]:
        """(inserted, deleted) counted since the last take."""
        counted = self.inserted, self.deleted
        self.inserted = self.deleted = 0
        return counted


def _size(shared: Any) -> int:
    """What a type holds, counted as the events count it."""
    if isinstance(shared, (Text, XmlText)):
        return sum(len(insert) if isinstance(insert, str) else 1
                   for insert, _ in shared.diff())
    if isinstance(shared, (XmlFragment, XmlElement)):
        return sum(1 + _size(child) if isinstance(child, XmlElement) else _size(child)
                   for child in shared.children)
    if isinstance(shared, (Map, Array)):
        return len(shared)
    return 0
