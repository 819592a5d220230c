"""Plain records that cross the storage boundary. Storage keeps records, never domain objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended; its seq is given by the store."""

    kind: str
    payload: bytes
    actor: str
    time: float
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as committed in a document's log."""

    doc_id: str
    seq: int
    kind: str
    payload: bytes
    actor: str
    time: float
    meta: dict[str, Any]
    hash: bytes = b""  # the chain hash (storage.chain); empty only before the append links it


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    id: str
    title: str
    head_seq: int
    created_at: float


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """The full Yjs state of a document after applying events 1..seq."""

    doc_id: str
    seq: int
    state: bytes
    text: str
    time: float
