"""Checks on a client's update that need no history: size and well-formedness."""

from __future__ import annotations

from pycrdt import get_state

from server.errors import InvalidUpdate, TooLarge
from server.settings import Limits
from server.write.update_guard import scan

EMPTY_UPDATE = b"\x00\x00"


def validate_update(update: bytes, limits: Limits) -> bool:
    """Raise TooLarge or InvalidUpdate unless `update` is a decodable Yjs v1 update.

    Returns whether it carries only text content (update_guard.only_text)."""
    if len(update) > limits.update_bytes:
        raise TooLarge(f"update of {len(update)} bytes is over the {limits.update_bytes} limit")
    if len(update) < 2:
        raise InvalidUpdate("update is too short to be a Yjs update")
    # The pre-scan first: some malformed updates crash the native decoder outright.
    text_only = scan(update, limits.decode_ms / 1000)
    try:
        # Decoding the whole update (structs and delete set) is the check; a pycrdt panic
        # surfaces as a BaseException, so catch that too, but never swallow cancellation.
        get_state(update)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        raise InvalidUpdate(f"malformed Yjs update: {str(exc)[:80]}") from None
    return text_only
