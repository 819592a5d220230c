"""One document's projection in memory: the state the projector folds each event into.

Pure apart from pycrdt: `apply` takes a committed event and returns the rows it produced.
The projector keeps one of these per recently projected document, so a batch costs only
its own events; a cold one is rebuilt from the nearest snapshot and the rows already saved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Text, merge_updates

from server.pending import PendingUpdates
from server.read.revisions import EDIT, RESTORE, GroupingRules, Revision, extend
from server.read.textops import Op, apply_delta, counts
from storage.read_model import ChangeRow, ProjectionBatch, RevisionRow, VersionRow, ViewRow
from storage.records import EventRecord, SnapshotRecord

log = logging.getLogger(__name__)

UPDATE_KINDS = frozenset({"update", "restore"})
MERGE_CHUNK = 5000


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

    def _on_text(self, event: Any) -> None:
        self._deltas.append(event.delta)

    def load(
        self,
        seq: int,
        state: bytes | None,
        updates: list[bytes],
        revision: RevisionRow | None,
        view: ViewRow | None,
    ) -> None:
        """Resume at checkpoint `seq` from a snapshot's state plus the updates after it."""
        if state:
            self.doc.apply_update(state)
        for start in range(0, len(updates), MERGE_CHUNK):
            merged = merge_updates(*updates[start : start + MERGE_CHUNK])
            self.doc.apply_update(merged)
            self.pending.after_apply(self.doc, merged)
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

    def _apply_update(self, event: EventRecord) -> list[Op]:
        self._deltas.clear()
        try:
            self.doc.apply_update(event.payload)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException:  # pycrdt panics are BaseExceptions
            # The write side validated it; if it still fails, the rooms skip it too.
            log.exception("event %s/%s does not apply", self.doc_id, event.seq)
            return []
        self.pending.after_apply(self.doc, event.payload)
        ops: list[Op] = []
        for delta in self._deltas:
            ops += apply_delta(self.content, delta)
        return ops

    def apply(self, event: EventRecord, batch: ProjectionBatch) -> None:
        """Fold one event into the projection, adding the rows it produces to `batch`."""
        if event.seq != self.seq + 1:
            raise ValueError(f"{self.doc_id}: event {event.seq} after {self.seq}")
        view = self.view
        if event.seq == 1:
            view.created_at = event.time
        if event.kind in UPDATE_KINDS:
            ops = self._apply_update(event)
            inserted, deleted = counts(ops)
            batch.changes.append(
                ChangeRow(event.seq, event.actor, [list(op) for op in ops], inserted, deleted)
            )
            revision = extend(
                self.revision, seq=event.seq, actor=event.actor, time=event.time,
                kind=RESTORE if event.kind == "restore" else EDIT,
                inserted=inserted, deleted=deleted, rules=self.rules,
            )
            self.revision = revision
            row = _revision_row(self.doc_id, revision)
            if batch.revisions and batch.revisions[-1].number == revision.number:
                batch.revisions[-1] = row
            else:
                batch.revisions.append(row)
            if event.actor not in view.contributors:
                view.contributors.append(event.actor)
            view.updated_at = event.time
        elif event.kind in ("create", "rename"):
            view.title = str(event.meta.get("title", view.title))
            view.updated_at = event.time
        elif event.kind == "version":
            batch.versions.append(
                VersionRow(self.doc_id, event.seq, int(event.meta.get("seq", 0)),
                           str(event.meta.get("name", "")), event.actor, event.time)
            )
        self.seq = event.seq
        # With structs pending on missing dependencies the doc encodes without them: skip
        # this snapshot rather than store one that loses them (server/pending.py).
        if self.snapshot_every > 0 and event.seq % self.snapshot_every == 0 and not self.pending:
            batch.snapshots.append(
                SnapshotRecord(self.doc_id, event.seq, self.doc.get_update(), self.text_now(),
                               event.time)
            )

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
