"""Every error the server answers with, each knowing its HTTP status and WebSocket close code.

    PalimpsestError                      500 / 1011
    ├── BadRequest                       400 / 4400
    │   ├── MalformedMessage             400 / 4400  a frame that is not a y-websocket message
    │   ├── UnknownMessageType           400 / 4415
    │   ├── TextFrame                    400 / 1003  text frames are not part of the protocol
    │   └── InvalidUpdate                422 / 4422  not a well-formed Yjs update
    │       ├── TaintingUpdate           422 / 4422  rejected after touching the room's doc
    │       └── SplitsSurrogatePair      422 / 4423  cuts an emoji in half (Yjs and yrs differ)
    ├── CannotRestore                    422 / 4422  some content cannot be restored: nothing done
    ├── TooLarge                         413 / 1009  frame, update or document over its limit
    ├── RateLimited                      429 / 4429  a limit a retry cannot fix
    │   └── AtCapacity                   503 / 4503  a connection count is full: retry later
    ├── Unauthorised                     401 / 4401
    ├── Forbidden                        403 / 4403
    │   └── ReadOnlyDocument             403 / 4403  published or archived: answered, not closed
    ├── NotFound                         404 / 4404
    ├── Conflict                         409 / 4409
    │   └── InvalidTransition            409 / 4409  a review status change not allowed now
    ├── Gone                             410 / 4410  the document was deleted (not retried)
    ├── HistoryRewritten                 409 / 4500  an erasure rewrote it: reconnect, resync
    ├── Unavailable                      503 / 1013  storage unreachable: reconnect and resend
    └── ReadSideBehind                   504 / 1013  the read side did not reach ?min_seq in time

The edges (the WebSocket endpoint, the HTTP API) translate these once; nothing else
builds close frames or error bodies.

Close codes follow the convention of stock y-websocket clients (docs/protocol.md, "Close
codes"): 4400-4499 say a retry can never help, and such a client stops reconnecting for good;
every other code (1013, 4500-4599, ...) is retried. Refuse with 44xx only what the same client
would do again.
"""

from __future__ import annotations


class PalimpsestError(Exception):
    status = 500
    close_code = 1011
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def reason(self) -> str:
        # A close reason must fit in 123 bytes of UTF-8.
        return self.message.encode()[:123].decode(errors="ignore")


class BadRequest(PalimpsestError):
    status = 400
    close_code = 4400
    code = "bad_request"


class MalformedMessage(BadRequest):
    code = "malformed_message"


class UnknownMessageType(BadRequest):
    close_code = 4415
    code = "unknown_message_type"


class TextFrame(BadRequest):
    close_code = 1003
    code = "text_frame"


class InvalidUpdate(BadRequest):
    status = 422
    close_code = 4422
    code = "invalid_update"


class TaintingUpdate(InvalidUpdate):
    """Rejected, but only after it reached the room's doc (yrs panicked mid-apply): the room
    must be rebuilt from the log."""


class SplitsSurrogatePair(InvalidUpdate):
    """The update cuts between the two UTF-16 halves of a character (deleting or inserting
    there): Yjs turns each half into U+FFFD, yrs keeps the character whole on one side, so
    the server's copy would drift from its clients' (docs/protocol.md)."""

    close_code = 4423
    code = "splits_surrogate_pair"


class CannotRestore(PalimpsestError):
    """A restore would leave some content unlike the seq it restores: refused, nothing done."""

    status = 422
    close_code = 4422
    code = "cannot_restore"


class TooLarge(PalimpsestError):
    status = 413
    close_code = 1009
    code = "too_large"


class RateLimited(PalimpsestError):
    status = 429
    close_code = 4429
    code = "rate_limited"


class AtCapacity(RateLimited):
    """A connection count (per document, user or address) is full. Retryable: a stock client
    backs off and reconnects, and gets in once a slot frees."""

    status = 503
    close_code = 4503
    code = "at_capacity"


class Unauthorised(PalimpsestError):
    status = 401
    close_code = 4401
    code = "unauthorised"


class Forbidden(PalimpsestError):
    status = 403
    close_code = 4403
    code = "forbidden"


class NotFound(PalimpsestError):
    status = 404
    close_code = 4404
    code = "not_found"


class Conflict(PalimpsestError):
    status = 409
    close_code = 4409
    code = "conflict"


class Gone(PalimpsestError):
    """The document was deleted: a stock client does not reconnect (4400-4499)."""

    status = 410
    close_code = 4410
    code = "gone"


class HistoryRewritten(PalimpsestError):
    """The document's stored history was rewritten (an erasure): live copies are stale, so
    its clients are closed with a code a stock client retries (4500-4599), and resync."""

    status = 409
    close_code = 4500
    code = "history_rewritten"


class Unavailable(PalimpsestError):
    status = 503
    close_code = 1013
    code = "unavailable"


class ReadSideBehind(PalimpsestError):
    status = 504
    close_code = 1013
    code = "read_side_behind"


class InvalidTransition(Conflict):
    """A review status change the document's current status does not allow; `allowed` names
    the statuses it may move to (server.review_status)."""

    code = "invalid_transition"

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class ReadOnlyDocument(Forbidden):
    """An edit to a published or archived document: refused exactly as a read-only
    connection's (the y-websocket permission-denied message, nothing stored), not closed."""
