"""The write model of one open document: its pycrdt Doc and the seq of the log it holds.

The doc holds exactly the events 1..applied_seq of the log, plus, only while the writer holds
`lock`, the updates of the batch being committed. Whatever reads the doc for a client (the
answer to sync step 1, the state to restore against) takes the lock, so nobody sees an
uncommitted change. It knows no connection: the writer owns it, the edges ask the writer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pycrdt import Doc, Text, TransactionEvent, merge_updates

from server.errors import InvalidUpdate, MalformedMessage, TaintingUpdate
from server.events import STATUS_CHANGED, absorbed_from, yjs_update
from server.review_status import DRAFT, READ_ONLY
from server.root_watch import OtherRoots, RootWatch
from server.write.surrogates import SurrogateIndex
from server.write.update_guard import keystroke
from server.ydoc import History, PendingUpdates, replay
from storage.records import EventRecord

log = logging.getLogger(__name__)

MAX_ANSWERS = 4  # sync step 2 answers kept per document (state vectors differ per client)


class LiveDocument:
    answers_encoded = 0  # sync step 2 answers encoded, over the process (for /metrics)

    def __init__(self, doc_id: str) -> None:
        self.doc_id = doc_id
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.applied_seq = 0
        self.lock = asyncio.Lock()
        self.pending = PendingUpdates()
        # The review status (server.review_status): published and archived documents
        # refuse edits. Set at load from the log, by a status decision, and by catch-up.
        self.status = DRAFT
        self.surrogates = SurrogateIndex()  # updates cutting an emoji in half are refused
        self._changed = False
        self._subscription = self.doc.observe(self._on_transaction)
        # The Y.Text deltas of each apply, kept only when a projector in this process asked
        # for them (capture_text_deltas): it then needs no Doc of its own to find them.
        self._text_deltas: list[Any] | None = None
        self._text_subscription: Any = None
        self._roots: RootWatch | None = None
        self._roots_may_change = False  # an update since the last look could add a root
        # Sync step 2 answers at `_answers_seq`, by state vector: clients joining together (a
        # join storm, everyone back after a restart) mostly send the same one, and encoding a
        # large document's state costs milliseconds each time.
        self._answers: dict[bytes, bytes] = {}
        self._answers_seq = -1

    def capture_text_deltas(self) -> None:
        if self._text_deltas is None:
            self._text_deltas = []
            # The raw Rust-side subscription (as the projector's): pycrdt's wrapper converts
            # every attribute of the event.
            self._text_subscription = self.text.integrated.observe(self._on_text)
            # ... and what each apply changed in the other root types, for its revisions.
            self._roots = RootWatch(self.doc)
            self._roots.after_apply()
            self._roots.take()  # what the doc held already

    def _on_text(self, event: Any) -> None:
        assert self._text_deltas is not None
        self._text_deltas.append(event.delta)

    def take_text_deltas(self) -> list[Any] | None:
        """The deltas of the applies since the last call (None when not captured)."""
        taken = self._text_deltas
        if taken is not None:
            self._text_deltas = []
            roots = self._roots
            assert roots is not None
            if self._roots_may_change or not roots.settled:
                # Listing the roots costs more than the apply: skipped after keystrokes.
                roots.after_apply()
                self._roots_may_change = False
            inserted, deleted = roots.take()
            if inserted or deleted:
                taken.append(OtherRoots(inserted, deleted))
        return taken

    def _on_transaction(self, _event: TransactionEvent) -> None:
        self._changed = True

    def load(self, history: History) -> None:
        """Build the doc from a snapshot plus the events after it."""
        replay(self.doc, history.state, history.events, self.pending)
        self._roots_may_change = True
        self.surrogates.add_all([history.state or b"\x00\x00",
                                 *(u for u in map(yjs_update, history.events) if u)])
        self.applied_seq = history.seq

    # Applying

    def try_apply(self, update: bytes) -> bool:
        """Apply a client's update; True if it changed the document (so must be stored).

        False means a no-op: everything in it is already here. An update ahead of its
        dependencies (server/ydoc.py) is kept pending by the doc and must be stored. Raises
        InvalidUpdate if it does not decode (the doc is untouched), TaintingUpdate if yrs
        panicked mid-apply (the doc may be half-changed: rebuild it from the log).
        """
        self._changed = False
        self.surrogates.check(update)  # before yrs sees it: refused, nothing touched
        if not self._roots_may_change and not keystroke(update):
            self._roots_may_change = True
        try:
            # Structs past a gap in their client's clocks are held back, as Yjs does.
            waiting = self.pending.apply(self.doc, update)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except ValueError as exc:  # a decode error: raised before anything is integrated
            raise InvalidUpdate(f"update does not apply: {str(exc)[:80]}") from None
        except BaseException as exc:  # pycrdt panics are BaseExceptions
            raise TaintingUpdate(f"update does not apply: {str(exc)[:80]}") from None
        self.surrogates.add(update)
        # Structs waiting for their dependencies change nothing yet, but must be stored.
        return waiting or self._changed

    def apply_event(self, event: EventRecord) -> bool:
        """Apply a committed event from the log (another node's, or one we missed); False if
        it was not the next seq (a duplicate is dropped, a gap refused: the caller reads it)."""
        if event.seq <= self.applied_seq:
            return False
        # A compacted event stands for the seqs it absorbed: it may follow any of them.
        if event.seq != self.applied_seq + 1 and absorbed_from(event) > self.applied_seq + 1:
            # Callers read the log from applied_seq on, so this is a bug: refuse, loudly,
            # rather than apply out of order. The next catch-up reads the gap.
            log.error("event %s/%s out of order: the document is at %s", self.doc_id,
                      event.seq, self.applied_seq)
            return False
        if event.kind == STATUS_CHANGED and event.payload:
            self.status = event.payload.decode()  # the target rides in the payload (bus hints)
        update = yjs_update(event)
        if update is not None:
            self._roots_may_change = True
            try:
                self.pending.apply(self.doc, update)
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException:
                log.exception("event %s/%s in the log does not apply", self.doc_id, event.seq)
            else:
                self.surrogates.add(update)
        self.applied_seq = event.seq
        return True

    # Reading (callers hold the lock when a batch may be in flight)

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def missing_from(self, state_vector: bytes) -> bytes:
        """The update a peer at `state_vector` lacks (sync step 2's payload). The same bytes
        object for everyone at the same state vector until the document's seq moves (callers
        hold the lock, so the doc is exactly the log up to applied_seq)."""
        if self._answers_seq != self.applied_seq:
            self._answers.clear()
            self._answers_seq = self.applied_seq
        answer = self._answers.get(state_vector)
        if answer is None:
            answer = self._missing_from(state_vector)
            LiveDocument.answers_encoded += 1
            if len(self._answers) >= MAX_ANSWERS:
                self._answers.pop(next(iter(self._answers)))
            self._answers[state_vector] = answer
        return answer

    def _missing_from(self, state_vector: bytes) -> bytes:
        try:
            update = self.doc.get_update(state_vector)
            if self.pending:
                # yrs leaves pending structs out of what it encodes; a newcomer needs them too,
                # to integrate them when their dependencies arrive.
                update = merge_updates(update, *self.pending.updates)
            # yrs forgets the key order of JSON objects; the writers' order is put back.
            update = self.pending.key_orders.restore(update)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException:
            raise MalformedMessage("sync step 1 carries an invalid state vector") from None
        return update

    def state(self) -> bytes:
        return self.pending.key_orders.restore(self.doc.get_update())

    @property
    def read_only(self) -> bool:
        """Published or archived: every edit is refused, as a read-only connection's."""
        return self.status in READ_ONLY

    def current_text(self) -> str:
        return str(self.text)
