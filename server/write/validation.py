"""Checks that need no history: an update's size and well-formedness, ids, titles, names."""

from __future__ import annotations

import re

from pycrdt import get_state

from server.errors import BadRequest, InvalidUpdate, TooLarge
from server.settings import Limits
from server.write.update_guard import scan

EMPTY_UPDATE = b"\x00\x00"  # no structs, no deletes
# Matched whole (fullmatch): `$` would let "doc1\n" through as a different document.
DOC_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,199}")
MAX_TITLE = 200
MAX_VERSION_NAME = 200
MAX_REASON = 1000


def valid_doc_id(doc_id: object) -> bool:
    return isinstance(doc_id, str) and DOC_ID.fullmatch(doc_id) is not None


def check_doc_id(doc_id: object) -> str:
    if not isinstance(doc_id, str) or not valid_doc_id(doc_id):
        raise BadRequest("id must be 1-200 letters, digits, '.', '_', '~' or '-'")
    return doc_id


def clean_title(title: object) -> str:
    if not isinstance(title, str):
        raise BadRequest("title must be a string")
    cleaned = title.strip()
    if len(cleaned) > MAX_TITLE:
        raise BadRequest(f"title is longer than {MAX_TITLE} characters")
    return cleaned


def clean_version_name(name: object) -> str:
    cleaned = name.strip() if isinstance(name, str) else ""
    if not cleaned or len(cleaned) > MAX_VERSION_NAME:
        raise BadRequest(f"name must be 1-{MAX_VERSION_NAME} characters")
    return cleaned


def clean_reason(reason: object, *, required: bool = True) -> str:
    """Why an admin deletes or erases: recorded in the audit event."""
    cleaned = reason.strip() if isinstance(reason, str) else ""
    if reason is not None and not isinstance(reason, str):
        raise BadRequest("reason must be a string")
    if required and not cleaned:
        raise BadRequest("reason is required")
    if len(cleaned) > MAX_REASON:
        raise BadRequest(f"reason is longer than {MAX_REASON} characters")
    return cleaned


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
