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
    VersionDeleted,
    VersionNamed,
    VersionRenamed,
    absorbed_from,
    decode,
)
from server.read.revisions import EDIT, RESTORE, GroupingRules, Revision, extend
from server.read.textops import Op, apply_delta, counts
from server.root_watch import OtherRoots, RootWatch
from server.ydoc import History, PendingUpdates, apply_deferred, replay
from storage.lifecycle import Deletion
from storage.packing import PackedChange, chunk_of
from storage.read_model import (
    ChangeRow,
    ProjectionBatch,
    RevisionRow,
    SnapshotRow,
    VersionRow,
    ViewRow,
)
from storage.records import EventRecord

log = logging.getLogger(__name__)


@dataclass
class ViewState:
    title: str = ""
    contributors: list[str] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0


# Of the snapshots before the latest, one in this many keeps its Yjs state; the others keep the
# text only (storage.read_model drops their state when a later snapshot is saved).
STATE_EVERY_SNAPSHOTS = 10
MAX_UNAPPLIED = 20_000  # deferred updates held before the Doc takes them anyway


class DocumentProjection:
    def __init__(self, doc_id: str, rules: GroupingRules, snapshot_every: int,
                 state_every: int | None = None) -> None:
        self.doc_id = doc_id
        self.rules = rules
        self.snapshot_every = snapshot_every
        self.state_every = (snapshot_every * STATE_EVERY_SNAPSHOTS if state_every is None
                            else state_every)
        # The changes saved so far in the chunk of the next one (storage.packing).
        self.chunk = 0
        self.chunk_changes: list[PackedChange] = []
        self.pending = PendingUpdates()
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.content = bytearray()
        self.seq = 0
        self.revision: Revision | None = None
        self.view = ViewState()
        self._deltas: list[list[dict[str, Any]]] = []
        # Updates whose text deltas came with them (from the write side's own apply, in this
        # process): the Doc takes them later, merged, when a snapshot needs its state.
        self._unapplied: list[bytes] = []
        self._catching_up = False
        self._row_behind = False  # the batch's last revision row lags self.revision (finish)
        # The raw Rust-side subscription, not Text.observe: pycrdt's event wrapper converts
        # every attribute of the event (path, target, ...) and costs 20x the apply itself.
        self._subscription = self.text.integrated.observe(self._on_text)
        self.roots = RootWatch(self.doc)  # every other root type, counted for revisions

    def _on_text(self, event: Any) -> None:
        if not self._catching_up:  # reading `delta` walks the whole text: only when needed
            self._deltas.append(event.delta)

    def load(self, history: History, revision: RevisionRow | None,
             view: ViewRow | None, chunk_changes: list[PackedChange]) -> None:
        """Resume at the checkpoint `history.seq` from a snapshot plus the events after it;
        `chunk_changes`: the changes saved in the chunk of seq + 1, up to seq."""
        self._catching_up = True  # the text is read whole below
        try:
            replay(self.doc, history.state, history.events, self.pending)
        finally:
            self._catching_up = False
        self.roots.after_apply()
        self.roots.take()  # what the doc held before: no event of this batch
        seq = history.seq
        self.chunk = chunk_of(seq + 1)
        self.chunk_changes = list(chunk_changes)
        self._deltas.clear()
        self.content = bytearray(str(self.text).encode())
        self.seq = seq
        if revision is not None:
            self.revision = Revision(
                revision.number, revision.from_seq, revision.to_seq, tuple(revision.authors),
                revision.started_at, revision.ended_at, revision.inserted, revision.deleted,
                revision.events, revision.kind,
                tuple((str(a), int(n), int(i), int(d)) for a, n, i, d in revision.shares or ()),
                revision.restored_from,
            )
        if view is not None:
            self.view = ViewState(view.title, list(view.contributors), view.created_at,
                                  view.updated_at)

    def _apply_update(self, event: EventRecord, update: bytes,
                      deltas: list[Any] | None = None) -> list[Op]:
        if deltas is not None:
            self._unapplied.append(update)
            if len(self._unapplied) >= MAX_UNAPPLIED:
                self._apply_deferred()
            ops: list[Op] = []
            for delta in deltas:
                if isinstance(delta, OtherRoots):  # counted by the writer's own watch
                    self.roots.inserted += delta.inserted
                    self.roots.deleted += delta.deleted
                else:
                    ops += apply_delta(self.content, delta)
            return ops
        self._apply_deferred()
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
        ops = []
        for delta in self._deltas:
            ops += apply_delta(self.content, delta)
        return ops

    def _apply_deferred(self) -> None:
        """Bring the Doc up to the projection's seq: apply what was deferred, merged."""
        updates = self._unapplied
        if not updates:
            return
        self._unapplied = []
        self._catching_up = True  # the text they make is in `content` already
        try:
            apply_deferred(self.doc, updates, self.pending)
        finally:
            self._catching_up = False
        # Their changes to the other root types were counted by the writer (OtherRoots).
        self.roots.after_apply()
        self.roots.take()

    def apply(self, event: EventRecord, batch: ProjectionBatch,
              deltas: list[Any] | None = None) -> None:
        """Fold one event into the projection, adding the rows it produces to `batch`.
        `deltas`: the Y.Text deltas the event gave when applied to a Doc at the previous seq
        (the write side's, in this process), when known: the projection's Doc is then spared."""
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
                self._fold_update(event, update, batch, deltas, restore=False,
                                  absorbed=absorbed)
            case RevisionRestored(update, restored_from):
                self._fold_update(event, update, batch, deltas, restore=True,
                                  restored_from=restored_from)
            case DocumentCreated(title) | DocumentRenamed(title):
                view.title = title
                view.updated_at = event.time
            case VersionNamed(seq, name):
                batch.versions.append(
                    VersionRow(self.doc_id, event.seq, seq, name, event.actor, event.time))
            case VersionRenamed(version, name):
                batch.version_names.append((version, name))
            case VersionDeleted(version):
                batch.versions_deleted.append(version)
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
        every = self.snapshot_every
        if every > 0 and event.seq // every > previous // every:
            # Each snapshot has the state (the latest is what loading starts from); the save
            # drops it from the earlier ones but every `state_every` seqs.
            self._apply_deferred()
            state = self.pending.snapshot_state(self.doc)
            batch.state_every = self.state_every
            batch.snapshots.append(SnapshotRow(event.seq, self.text_now(), event.time, state))

    def _fold_update(self, event: EventRecord, update: bytes, batch: ProjectionBatch,
                     deltas: list[Any] | None, *, restore: bool,
                     absorbed: Absorbed | None = None,
                     restored_from: int | None = None) -> None:
        ops = self._apply_update(event, update, deltas)
        inserted, deleted = counts(ops)
        other_inserted, other_deleted = self.roots.take()  # the other root types
        inserted, deleted = inserted + other_inserted, deleted + other_deleted
        listed = [list(op) for op in ops]
        if not batch.changes:
            batch.chunk_before = (list(self.chunk_changes) if chunk_of(event.seq) == self.chunk
                                  else [])
        batch.changes.append(ChangeRow(event.seq, event.actor, listed, inserted, deleted))
        chunk = chunk_of(event.seq)
        if chunk != self.chunk:
            self.chunk = chunk
            self.chunk_changes = []
        self.chunk_changes.append(PackedChange(event.seq, event.actor, listed))
        if absorbed is None:
            revision = extend(
                self.revision, seq=event.seq, actor=event.actor, time=event.time,
                kind=RESTORE if restore else EDIT, inserted=inserted, deleted=deleted,
                rules=self.rules, restored_from=restored_from,
            )
        else:  # grouped as the run it stands for was (server.read.revisions)
            revision = extend(
                self.revision, seq=event.seq, actor=event.actor, time=event.time, kind=EDIT,
                inserted=absorbed.inserted, deleted=absorbed.deleted, rules=self.rules,
                first_seq=absorbed.from_seq, first_time=absorbed.first_time,
                events=absorbed.events,
            )
        previous = self.revision
        self.revision = revision
        # The batch's last row is brought up to date only when its revision closes or the
        # batch ends (`finish`): building a row per event cost more than the grouping.
        if batch.revisions and batch.revisions[-1].number == revision.number:
            self._row_behind = True
        else:
            if self._row_behind and batch.revisions and previous is not None:
                batch.revisions[-1] = _revision_row(self.doc_id, previous)
            batch.revisions.append(_revision_row(self.doc_id, revision))
            self._row_behind = False
        view = self.view
        if event.actor not in view.contributors:
            view.contributors.append(event.actor)
        view.updated_at = event.time

    def finish(self, batch: ProjectionBatch) -> None:
        """Bring the batch's rows up to the projection's state: call before saving it."""
        if self._row_behind and batch.revisions and self.revision is not None:
            batch.revisions[-1] = _revision_row(self.doc_id, self.revision)
        self._row_behind = False

    def text_now(self) -> str:
        return self.content.decode(errors="replace")

    def view_row(self) -> ViewRow:
        text = self.text_now()
        v = self.view
        return ViewRow(self.doc_id, v.title, self.seq, text, len(text), list(v.contributors),
                       v.created_at, v.updated_at)


def _revision_row(doc_id: str, r: Revision) -> RevisionRow:
    return RevisionRow(doc_id, r.number, r.from_seq, r.to_seq, list(r.authors), r.started_at,
                       r.ended_at, r.inserted, r.deleted, r.events, r.kind,
                       [list(s) for s in r.shares], r.restored_from)
