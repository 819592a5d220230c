"""Events after which a document's live copy must not serve anyone any more.

A deletion closes every live connection for good (4410, which a stock client does not retry);
an erasure rewrote the stored history, so the live copy (which may hold the erased content)
is dropped and its clients reconnect (4500, which a stock client retries) to the rewritten
state. Compaction keeps every state the live copy holds: it needs nothing. The writer checks
the events it commits and the ones it catches up with, so every node reacts the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.errors import Gone, HistoryRewritten, PalimpsestError
from server.events import DELETED, ERASED
from storage.records import EventRecord

DELETED_REASON = "document deleted"
REWRITTEN_REASON = "document history was rewritten; reconnect"


def ends_live_copy(records: Iterable[EventRecord]) -> PalimpsestError | None:
    """The error to close the live copy's clients with, if one of `records` ends it."""
    for record in records:
        if record.kind == DELETED:
            return Gone(DELETED_REASON)
        if record.kind == ERASED:
            return HistoryRewritten(REWRITTEN_REASON)
    return None
