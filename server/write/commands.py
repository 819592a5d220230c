"""Commands: what an editor or an API call asks the write side to do (imperative, frozen).

A command names its document and its actor and carries plain values only: no connection, no
future. The handler for its type (server.write.handlers) turns it into events through the
document's writer, and answers with the committed record or a typed error.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.retention import Segment


@dataclass(frozen=True, slots=True)
class ApplyUpdate:
    """Append a Yjs update from an editor to the document's log, then show it to everyone."""

    doc_id: str
    update: bytes
    actor: str
    text_only: bool = False  # validation found only text content: no re-encode check needed


@dataclass(frozen=True, slots=True)
class CreateDocument:
    title: str
    actor: str
    doc_id: str


@dataclass(frozen=True, slots=True)
class RenameDocument:
    doc_id: str
    title: str
    actor: str


@dataclass(frozen=True, slots=True)
class NameVersion:
    doc_id: str
    seq: int
    name: str
    actor: str


@dataclass(frozen=True, slots=True)
class RestoreRevision:
    doc_id: str
    seq: int
    actor: str
    revision: int | None = None  # set when the caller chose a revision (for the record)


@dataclass(frozen=True, slots=True)
class DeleteDocument:
    """Hide the document: its connections closed for good, restorable until purged."""

    doc_id: str
    actor: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class UndeleteDocument:
    doc_id: str
    actor: str


@dataclass(frozen=True, slots=True)
class SetRetention:
    doc_id: str
    keep_days: float | None  # None: back to the server's default
    actor: str


@dataclass(frozen=True, slots=True)
class EraseHistory:
    """Erase the content of a seq range's events, or of every event of one actor."""

    doc_id: str
    actor: str
    reason: str
    from_seq: int | None = None
    to_seq: int | None = None
    erased_actor: str | None = None


@dataclass(frozen=True, slots=True)
class CompactHistory:
    """Merge each planned run of old edits into one event (server.retention)."""

    doc_id: str
    actor: str
    before_time: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class RenameVersion:
    doc_id: str
    version: int  # the seq of the event that named it
    name: str
    actor: str


@dataclass(frozen=True, slots=True)
class DeleteVersion:
    """Take a version's name away; the history it named stays."""

    doc_id: str
    version: int
    actor: str


@dataclass(frozen=True, slots=True)
class CopyDocument:
    """Create `doc_id` with the text `source_id` had at `seq`."""

    source_id: str
    seq: int
    doc_id: str
    title: str
    actor: str


@dataclass(frozen=True, slots=True)
class ChangeStatus:
    """Move the document in its review lifecycle (server.review_status)."""

    doc_id: str
    to_status: str
    actor: str
    note: str = ""


Command = (ApplyUpdate | CreateDocument | RenameDocument | NameVersion | RestoreRevision
           | DeleteDocument | UndeleteDocument | SetRetention | EraseHistory | CompactHistory
           | RenameVersion | DeleteVersion | CopyDocument | ChangeStatus)
