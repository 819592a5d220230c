"""Commands: what an editor or an API call asks the write side to do (imperative, frozen).

A command names its document and its actor and carries plain values only: no connection, no
future. The handler for its type (server.write.handlers) turns it into events through the
document's writer, and answers with the committed record or a typed error.
"""

from __future__ import annotations

from dataclasses import dataclass


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


Command = ApplyUpdate | CreateDocument | RenameDocument | NameVersion | RestoreRevision
