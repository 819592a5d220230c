"""Every Redis name Palimpsest uses, from one prefix (`PALIMPSEST_REDIS_PREFIX`).

Several deployments (or test runs) can share one Redis by giving each its own prefix. Document
ids never contain glob characters (see `server.realtime.websocket.DOC_ID`), so one pattern
subscription matches exactly the document channels of this prefix.
"""

from __future__ import annotations

from dataclasses import dataclass


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str = "palimpsest"

    def doc_channel(self, doc_id: str) -> bytes:
        """The pub/sub channel carrying one document's events and awareness."""
        return f"{self.prefix}:doc:{doc_id}".encode()

    def all_docs_pattern(self) -> bytes:
        """A PSUBSCRIBE pattern matching every document channel of this prefix."""
        return f"{_glob_escape(self.prefix)}:doc:*".encode()

    def doc_id_of(self, channel: bytes) -> str | None:
        """The document id of a document channel; None for any other channel."""
        head = f"{self.prefix}:doc:".encode()
        if not channel.startswith(head):
            return None
        return channel[len(head):].decode(errors="replace")
