"""What happened to a document: the past-tense event types of its log, shared by both sides.

The log stores records (`storage.records.EventRecord`: kind, payload, meta); this module is
the one place that knows how each event type maps onto a record. The write side builds events
and `encode`s them; the projector and every reader `decode` records and match on the types.

    DocumentCreated    a document came to be, with its title
    DocumentRenamed    its title changed
    UpdateApplied      a Yjs update from an editor (or several, merged by nobody: one each)
    RevisionRestored   a Yjs update that makes the document what it was at `restored_from`
    VersionNamed       a name given to a seq
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.records import EventRecord, NewEvent

# The stored `kind` of each event type. Stored logs depend on these strings: never rename one.
CREATED = "create"
RENAMED = "rename"
UPDATED = "update"
RESTORED = "restore"
VERSION_NAMED = "version"


@dataclass(frozen=True, slots=True)
class DocumentCreated:
    title: str


@dataclass(frozen=True, slots=True)
class DocumentRenamed:
    title: str


@dataclass(frozen=True, slots=True)
class UpdateApplied:
    update: bytes


@dataclass(frozen=True, slots=True)
class RevisionRestored:
    update: bytes
    restored_from: int
    revision: int | None = None  # when the person chose a revision rather than a seq


@dataclass(frozen=True, slots=True)
class VersionNamed:
    seq: int
    name: str


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A record of a kind this code does not know (written by a newer version): kept, skipped."""

    kind: str


Event = (DocumentCreated | DocumentRenamed | UpdateApplied | RevisionRestored | VersionNamed
         | UnknownEvent)
# The events whose payload is a Yjs update to apply to the document.
YjsEvent = UpdateApplied | RevisionRestored


def encode(event: Event, actor: str, time: float) -> NewEvent:
    """The record to append for `event`."""
    match event:
        case UpdateApplied(update):
            return NewEvent(UPDATED, update, actor, time, {})
        case RevisionRestored(update, restored_from, revision):
            meta: dict[str, Any] = {"restored_from": restored_from}
            if revision is not None:
                meta["revision"] = revision
            return NewEvent(RESTORED, update, actor, time, meta)
        case DocumentCreated(title):
            return NewEvent(CREATED, b"", actor, time, {"title": title})
        case DocumentRenamed(title):
            return NewEvent(RENAMED, b"", actor, time, {"title": title})
        case VersionNamed(seq, name):
            return NewEvent(VERSION_NAMED, b"", actor, time, {"seq": seq, "name": name})
        case UnknownEvent(kind):
            raise ValueError(f"cannot append an event of unknown kind {kind!r}")


def decode(record: EventRecord) -> Event:
    """The event a stored record holds."""
    kind, meta = record.kind, record.meta
    if kind == UPDATED:
        return UpdateApplied(record.payload)
    if kind == RESTORED:
        revision = meta.get("revision")
        return RevisionRestored(record.payload, int(meta.get("restored_from", 0)),
                                int(revision) if revision is not None else None)
    if kind == CREATED:
        return DocumentCreated(str(meta.get("title", "")))
    if kind == RENAMED:
        return DocumentRenamed(str(meta.get("title", "")))
    if kind == VERSION_NAMED:
        return VersionNamed(int(meta.get("seq", 0)), str(meta.get("name", "")))
    return UnknownEvent(kind)


_YJS_KINDS = frozenset({UPDATED, RESTORED})


def yjs_update(record: EventRecord) -> bytes | None:
    """The Yjs update a record carries, or None for events that do not change the content.
    (On every fan-out and load: it answers from the kind without building the event.)"""
    return record.payload if record.kind in _YJS_KINDS else None
