"""What happened to a document: the past-tense event types of its log, shared by both sides.

The log stores records (`storage.records.EventRecord`: kind, payload, meta); this module is
the one place that knows how each event type maps onto a record. The write side builds events
and `encode`s them; the projector and every reader `decode` records and match on the types.

    DocumentCreated    a document came to be, with its title
    DocumentRenamed    its title changed
    UpdateApplied      a Yjs update from an editor (or several, merged by nobody: one each)
    RevisionRestored   a Yjs update that makes the document what it was at `restored_from`
    VersionNamed       a name given to a seq
    DocumentDeleted    the document was hidden (restorable until purged)
    DocumentUndeleted  ... and brought back whole
    RetentionSet       the document's own retention policy (None: the server's default)
    HistoryErased      the audit record of an erasure: who, when, why, which events; never what
    HistoryCompacted   the audit record of a compaction
    VersionRenamed     a named version (the seq of the event that named it) got a new name
    VersionDeleted     ... lost its name; the history it named stays
    StatusChanged      the document moved in its review lifecycle (draft, in review, ...)

An `UpdateApplied` written by a compaction carries `absorbed`: it is the merge of the events
from `absorbed.from_seq` to its own seq, which are gone from the log (seqs stay stable: those
seqs answer with this event).
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
DELETED = "delete"
UNDELETED = "undelete"
RETENTION_SET = "retention"
ERASED = "erasure"
COMPACTED = "compaction"
VERSION_RENAMED = "version_renamed"
VERSION_DELETED = "version_deleted"
STATUS_CHANGED = "status"
# Audit events of history rewrites: live documents and cached texts of the document are stale.
REWRITES = frozenset({ERASED, COMPACTED})


@dataclass(frozen=True, slots=True)
class DocumentCreated:
    title: str


@dataclass(frozen=True, slots=True)
class DocumentRenamed:
    title: str


@dataclass(frozen=True, slots=True)
class Absorbed:
    """What a compacted event stands for: the events from_seq..its seq, merged, and what they
    added up to (so revisions are grouped exactly as before)."""

    from_seq: int
    events: int
    first_time: float
    inserted: int
    deleted: int


@dataclass(frozen=True, slots=True)
class UpdateApplied:
    update: bytes
    absorbed: Absorbed | None = None


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
class DocumentDeleted:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DocumentUndeleted:
    pass


@dataclass(frozen=True, slots=True)
class RetentionSet:
    keep_days: float | None  # None: back to the server's default


@dataclass(frozen=True, slots=True)
class HistoryErased:
    reason: str
    events: int  # how many events had their content erased
    from_seq: int | None = None  # the range asked for...
    to_seq: int | None = None
    actor: str | None = None  # ... or every event of this actor


@dataclass(frozen=True, slots=True)
class HistoryCompacted:
    before_time: float  # events older than this were compacted
    merged: int  # events written (each the merge of a run of older ones)
    absorbed: int  # events that went into them


@dataclass(frozen=True, slots=True)
class VersionRenamed:
    version: int  # the seq of the VersionNamed event: a version's stable id
    name: str


@dataclass(frozen=True, slots=True)
class VersionDeleted:
    version: int


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A record of a kind this code does not know (written by a newer version): kept, skipped."""

    kind: str


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """The document moved from one review status to another (draft, in_review, published,
    archived); a transition to `published` publishes the document as it is at this seq."""

    from_status: str
    to_status: str
    note: str = ""


Event = (DocumentCreated | DocumentRenamed | UpdateApplied | RevisionRestored | VersionNamed
         | DocumentDeleted | DocumentUndeleted | RetentionSet | HistoryErased | HistoryCompacted
         | UnknownEvent | VersionRenamed | VersionDeleted | StatusChanged)

def encode(event: Event, actor: str, time: float) -> NewEvent:
    """The record to append for `event`."""
    match event:
        case UpdateApplied(update, absorbed):
            return NewEvent(UPDATED, update, actor, time, {} if absorbed is None else {
                "absorbed": {"from_seq": absorbed.from_seq, "events": absorbed.events,
                             "first_time": absorbed.first_time, "inserted": absorbed.inserted,
                             "deleted": absorbed.deleted}})
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
        case DocumentDeleted(reason):
            return NewEvent(DELETED, b"", actor, time, {"reason": reason} if reason else {})
        case DocumentUndeleted():
            return NewEvent(UNDELETED, b"", actor, time, {})
        case RetentionSet(keep_days):
            return NewEvent(RETENTION_SET, b"", actor, time, {"keep_days": keep_days})
        case HistoryErased(reason, count, from_seq, to_seq, erased_actor):
            selection: dict[str, Any] = (
                {"actor": erased_actor} if erased_actor is not None
                else {"from_seq": from_seq, "to_seq": to_seq})
            return NewEvent(ERASED, b"", actor, time,
                            {"reason": reason, "events": count, **selection})
        case HistoryCompacted(before_time, merged, absorbed_count):
            return NewEvent(COMPACTED, b"", actor, time, {
                "before_time": before_time, "merged": merged, "absorbed": absorbed_count})
        case VersionRenamed(version, name):
            return NewEvent(VERSION_RENAMED, b"", actor, time, {"version": version, "name": name})
        case VersionDeleted(version):
            return NewEvent(VERSION_DELETED, b"", actor, time, {"version": version})
        case StatusChanged(from_status, to_status, note):
            # The target status is the payload too: the bus carries payloads, not metas, and
            # every node's live copy must learn from the hint that it is now read-only.
            return NewEvent(STATUS_CHANGED, to_status.encode(), actor, time,
                            {"from": from_status, "to": to_status, "note": note})
        case UnknownEvent(kind):
            raise ValueError(f"cannot append an event of unknown kind {kind!r}")


def decode(record: EventRecord) -> Event:
    """The event a stored record holds."""
    kind, meta = record.kind, record.meta
    if kind == UPDATED:
        absorbed = meta.get("absorbed")
        if absorbed is None:
            return UpdateApplied(record.payload)
        return UpdateApplied(record.payload, Absorbed(
            int(absorbed["from_seq"]), int(absorbed["events"]), float(absorbed["first_time"]),
            int(absorbed["inserted"]), int(absorbed["deleted"])))
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
    return _decode_governance(kind, meta)


def _decode_governance(kind: str, meta: dict[str, Any]) -> Event:
    if kind == DELETED:
        return DocumentDeleted(str(meta.get("reason", "")))
    if kind == UNDELETED:
        return DocumentUndeleted()
    if kind == RETENTION_SET:
        keep = meta.get("keep_days")
        return RetentionSet(None if keep is None else float(keep))
    if kind == ERASED:
        def optional(name: str) -> int | None:
            value = meta.get(name)
            return None if value is None else int(value)

        actor = meta.get("actor")
        return HistoryErased(str(meta.get("reason", "")), int(meta.get("events", 0)),
                             optional("from_seq"), optional("to_seq"),
                             None if actor is None else str(actor))
    if kind == COMPACTED:
        return HistoryCompacted(float(meta.get("before_time", 0.0)), int(meta.get("merged", 0)),
                                int(meta.get("absorbed", 0)))
    if kind == VERSION_RENAMED:
        return VersionRenamed(int(meta.get("version", 0)), str(meta.get("name", "")))
    if kind == VERSION_DELETED:
        return VersionDeleted(int(meta.get("version", 0)))

    if kind == STATUS_CHANGED:
        return StatusChanged(str(meta.get("from", "")), str(meta.get("to", "")),
                             str(meta.get("note", "")))
    return UnknownEvent(kind)


def absorbed_from(record: EventRecord) -> int:
    """The first seq a record stands for: its own, or the first a compaction merged into it."""
    absorbed = record.meta.get("absorbed") if record.kind == UPDATED else None
    return int(absorbed["from_seq"]) if absorbed else record.seq


_YJS_KINDS = frozenset({UPDATED, RESTORED})


def yjs_update(record: EventRecord) -> bytes | None:
    """The Yjs update a record carries, or None for events that do not change the content.
    (On every fan-out and load: it answers from the kind without building the event.)"""
    return record.payload if record.kind in _YJS_KINDS else None

