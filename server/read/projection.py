"""One document's projection in memory: the state the projector folds each event into.

Pure apart from pycrdt: `apply` takes a committed event and returns the rows it produced.
The projector keeps one of these per recently projected document, so a batch costs only
its own events; a cold one is rebuilt from the nearest snapshot and the rows already saved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Text

from server.events import (
    Absorbed,
    DocumentCreated,
    DocumentDeleted,
    DocumentRenamed,
    DocumentUndeleted,
    RevisionRestored,
    UpdateApplied,
    VersionNamed,
    absorbed_from,
    decode,
)
from server.read.revisions import EDIT, RESTORE, GroupingRules, Revision, extend
from server.read.root_watch import RootWatch
from server.read.textops import Op, apply_delta, counts
from server.ydoc import History, PendingUpdates, replay
from storage.lifecycle import Deletion
from storage.read_model import ChangeRow, ProjectionBatch, RevisionRow, VersionRow, ViewRow
from storage.records import EventRecord, SnapshotRecord

log = logging.getLogger(__name__)


@dataclass
class ViewState:
    title: str = ""
    contributors: list[str] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0


class DocumentProjection:
    def __init__(self, doc_id: str, rules: GroupingRules, snapshot_every: int) -> None:
        self.doc_id = doc_id
        self.rules = rules
        self.snapshot_every = snapshot_every
        self.pending = PendingUpdates()
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.content = bytearray()
        self.seq = 0
        self.revision: Revision | None = None
        self.view = ViewState()
        self._deltas: list[list[dict[str, Any]]] = []
        # The raw Rust-side subscription, not Text.observe: pycrdt's event wrapper converts
        # every attribute of the event (path, target, ...) and costs 20x the apply itself.
        self._subscription = self.text.integrated.observe(self._on_text)
        self.roots = RootWatch(self.doc)  # every other root type, counted for revisions

    def _on_text(self, event: Any) -> None:
        self._deltas.append(event.delta)

    def load(self, history: History, revision: RevisionRow | None,
             view: ViewRow | None) -> None:
        """Resume at the checkpoint `history.seq` from a snapshot plus the events after it."""
        replay(self.doc, history.state, history.events, self.pending)
        self.roots.after_apply()
        self.roots.take()  # what the doc held before: no event of this batch
        seq = history.seq
        self._deltas.clear()
        self.content = bytearray(str(self.text).encode())
        self.seq = seq
        if revision is not None:
            self.revision = Revision(
                revision.number, revision.from_seq, revision.to_seq, tuple(revision.authors),
                revision.started_at, revision.ended_at, revision.inserted, revision.deleted,
                revision.events, revision.kind,
            )
        if view is not None:
            self.view = ViewState(view.title, list(view.contributors), view.created_at,
                                  view.updated_at)

    def _apply_update(self, event: EventRecord, update: bytes) -> list[Op]:
        self._deltas.clear()
        try:
            self.pending.apply(self.doc, update)  # as Yjs: structs past a clock gap wait
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException:  # pycrdt panics are BaseExceptions
            # The write side validated it; if it still fails, the rooms skip it too.
            log.exception("event %s/%s does not apply", self.doc_id, event.seq)
            return []
        self.roots.after_apply()
        ops: list[Op] = []
        for delta in self._deltas:
            ops += apply_delta(self.content, delta)
        return ops

    def apply(self, event: EventRecord, batch: ProjectionBatch) -> None:
        """Fold one event into the projection, adding the rows it produces to `batch`."""
        # A compacted event follows the seq before the first one it absorbed.
        if absorbed_from(event) != self.seq + 1:
            raise ValueError(f"{self.doc_id}: event {event.seq} after {self.seq}")
        view = self.view
        previous = self.seq
        decoded = decode(event)
        if previous == 0:  # the log's first event (or the run a compaction merged it into)
            absorbed = decoded.absorbed if isinstance(decoded, UpdateApplied) else None
            view.created_at = event.time if absorbed is None else absorbed.first_time
        match decoded:
            case UpdateApplied(update, absorbed):
                self._fold_update(event, update, batch, restore=False, absorbed=absorbed)
            case RevisionRestored(update):
                self._fold_update(event, update, batch, restore=True)
            case DocumentCreated(title) | DocumentRenamed(title):
                view.title = title
                view.updated_at = event.time
            case VersionNamed(seq, name):
                batch.versions.append(
                    VersionRow(self.doc_id, event.seq, seq, name, event.actor, event.time))
            case DocumentDeleted():
                batch.deletion = Deletion(event.time, event.actor, event.seq)
                batch.deletion_changed = True
            case DocumentUndeleted():
                batch.deletion = None
                batch.deletion_changed = True
            case _:
                pass  # events that change nothing people read (retention, audit records)
        self.seq = event.seq
        # Structs pending on missing dependencies are stored in the snapshot too
        # (server/ydoc.py): yrs leaves them out of what the doc encodes. Seqs a compaction
        # absorbed are missing: a snapshot is due when a multiple is passed.
        if (self.snapshot_every > 0
                and event.seq // self.snapshot_every > previous // self.snapshot_every):
            batch.snapshots.append(
                SnapshotRecord(self.doc_id, event.seq, self.pending.snapshot_state(self.doc),
                               self.text_now(), event.time)
            )

    def _fold_update(self, event: EventRecord, update: bytes, batch: ProjectionBatch, *,
                     restore: bool, absorbed: Absorbed | None = None) -> None:
        ops = self._apply_update(event, update)
        inserted, deleted = counts(ops)
        other_inserted, other_deleted = self.roots.take()  # the other root types
        inserted, deleted = inserted + other_inserted, deleted + other_deleted
        batch.changes.append(
            ChangeRow(event.seq, event.actor, [list(op) for op in ops], inserted, deleted)
        )
        if absorbed is None:
            revision = extend(
                self.revision, seq=event.seq, actor=event.actor, time=event.time,
                kind=RESTORE if restore else EDIT, inserted=inserted, deleted=deleted,
                rules=self.rules,
            )
        else:  # grouped as the run it stands for was (server.read.revisions)
            revision = extend(
                self.revision, seq=event.seq, actor=event.actor, time=event.time, kind=EDIT,
                inserted=absorbed.inserted, deleted=absorbed.deleted, rules=self.rules,
                first_seq=absorbed.from_seq, first_time=absorbed.first_time,
                events=absorbed.events,
            )
        self.revision = revision
        row = _revision_row(self.doc_id, revision)
        if batch.revisions and batch.revisions[-1].number == revision.number:
            batch.revisions[-1] = row
        else:
            batch.revisions.append(row)
        view = self.view
        if event.actor not in view.contributors:
            view.contributors.append(event.actor)
        view.updated_at = event.time

    def text_now(self) -> str:
        return self.content.decode(errors="replace")

    def view_row(self) -> ViewRow:
        text = self.text_now()
        v = self.view
        return ViewRow(self.doc_id, v.title, self.seq, text, len(text), list(v.contributors),
                       v.created_at, v.updated_at)


def _revision_row(doc_id: str, r: Revision) -> RevisionRow:
    return RevisionRow(doc_id, r.number, r.from_seq, r.to_seq, list(r.authors), r.started_at,
                       r.ended_at, r.inserted, r.deleted, r.events, r.kind)
