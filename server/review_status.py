"""The review lifecycle of a document (draft -> in review -> published, archived): a state machine.

Not to be confused with deletion (server.write.lifecycle): this is where a document stands in
review. Each transition is a command (`ChangeStatus`) decided under the document's lock in the
same commit as its event, so two concurrent transitions cannot both pass. A published or
archived document is read-only: edits are refused as a read-only connection's are.

    submit           draft      -> in_review   write
    request changes  in_review  -> draft       write
    publish          in_review  -> published   admin
    reopen           published  -> draft       write
    archive          any other  -> archived    admin
    unarchive        archived   -> draft       write
"""

from __future__ import annotations

from server.errors import BadRequest, InvalidTransition

DRAFT = "draft"
IN_REVIEW = "in_review"
PUBLISHED = "published"
ARCHIVED = "archived"
STATUSES = (DRAFT, IN_REVIEW, PUBLISHED, ARCHIVED)
READ_ONLY = frozenset({PUBLISHED, ARCHIVED})
MAX_NOTE = 1000

# (from, to) -> the name of the transition
TRANSITIONS: dict[tuple[str, str], str] = {
    (DRAFT, IN_REVIEW): "submit",
    (IN_REVIEW, DRAFT): "request_changes",
    (IN_REVIEW, PUBLISHED): "publish",
    (PUBLISHED, DRAFT): "reopen",
    (DRAFT, ARCHIVED): "archive",
    (IN_REVIEW, ARCHIVED): "archive",
    (PUBLISHED, ARCHIVED): "archive",
    (ARCHIVED, DRAFT): "unarchive",
}
ADMIN_TARGETS = frozenset({PUBLISHED, ARCHIVED})  # publishing and archiving need admin


def required_role(to_status: str) -> str:
    """The role a caller needs to move a document to `to_status`."""
    return "admin" if to_status in ADMIN_TARGETS else "write"


def allowed_from(status: str) -> list[str]:
    """The statuses a document in `status` may move to, in the order of STATUSES."""
    targets = {to for (frm, to) in TRANSITIONS if frm == status}
    return [s for s in STATUSES if s in targets]


def clean_target(to_status: object) -> str:
    if not isinstance(to_status, str) or to_status not in STATUSES:
        raise BadRequest(f"to must be one of {', '.join(STATUSES)}")
    return to_status


def clean_note(note: object) -> str:
    if note is None:
        return ""
    if not isinstance(note, str):
        raise BadRequest("note must be a string")
    cleaned = note.strip()
    if len(cleaned) > MAX_NOTE:
        raise BadRequest(f"note is longer than {MAX_NOTE} characters")
    return cleaned


def check_transition(from_status: str, to_status: str) -> str:
    """The transition's name, or InvalidTransition naming what is allowed from here."""
    name = TRANSITIONS.get((from_status, to_status))
    if name is None:
        allowed = allowed_from(from_status)
        raise InvalidTransition(
            f"a {from_status} document cannot move to {to_status}; allowed: "
            f"{', '.join(allowed) or 'nothing'}", allowed)
    return name
