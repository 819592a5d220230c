"""The server's cache of snapshot texts, which forgets a document when its history is rewritten.

After an erasure or a compaction the projector rebuilds a document's snapshots at the same
seqs with other texts, so cached ones must go: on this node at once (the route that ran the
command), on the others when the audit event's bus hint arrives (`Queries.on_bus`, which also
tells the read workers through the generation their next job carries). A read in flight may still
bring an old text back from before the rewrite, so for a while afterwards nothing of that
document is cached. A node whose hint is lost keeps stale texts until they are evicted: the
bus is a hint (docs/operations.md).
"""

from __future__ import annotations

import time

from server.read.queries import TextCache

QUARANTINE_SECONDS = 10.0


class RewriteAwareTextCache(TextCache):
    def __init__(self, max_chars: int = 32_000_000,
                 quarantine: float = QUARANTINE_SECONDS) -> None:
        super().__init__(max_chars)
        self.quarantine = quarantine
        self._quiet: dict[str, float] = {}

    def forget(self, doc_id: str) -> None:
        super().forget(doc_id)
        self._quiet[doc_id] = time.monotonic() + self.quarantine

    def put(self, key: tuple[str, int], text: str) -> None:
        until = self._quiet.get(key[0])
        if until is not None:
            if time.monotonic() < until:
                return
            del self._quiet[key[0]]
        super().put(key, text)
