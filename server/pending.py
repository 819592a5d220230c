"""Updates a pycrdt Doc holds pending on missing dependencies.

A stock client that reconnects sends its new keystrokes as soon as the socket opens, before its
sync step 2 carries the edits they build on, so an update can arrive ahead of its dependencies.
yrs keeps such structs pending and integrates them when the dependencies come. But it leaves
pending structs out of every encoded state: a snapshot taken meanwhile would silently lose them.
Whoever snapshots a Doc tracks its pending updates here and snapshots only when there are none.
"""

from __future__ import annotations

from typing import Any

from pycrdt import get_update


def _has_unintegrated(update: bytes, state: bytes) -> bool:
    # The first varUint of a v1 update counts the clients with structs: 0 means the doc's
    # state vector covers every struct in `update`.
    return get_update(update, state)[:1] != b"\x00"


class PendingUpdates:
    def __init__(self) -> None:
        self.updates: list[bytes] = []

    def __bool__(self) -> bool:
        return bool(self.updates)

    def after_apply(self, doc: Any, update: bytes) -> bool:
        """Call after `doc.apply_update(update)`; True if some of it stayed pending."""
        state = doc.get_state()
        if self.updates:
            self.updates = [u for u in self.updates if _has_unintegrated(u, state)]
        if _has_unintegrated(update, state):
            self.updates.append(update)
            return True
        return False
