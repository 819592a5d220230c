"""A room: the live pycrdt Doc of one open document on this node, and its connections.

The doc holds exactly the events 1..applied_seq of the log, plus, only while the writer holds
`lock`, the updates of the batch being committed. Everything that reads the doc for a client
(answers to sync step 1) takes the lock, so no client sees an uncommitted change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from pycrdt import Doc, Text, TransactionEvent, merge_updates

from server.errors import InvalidUpdate, MalformedMessage, TaintingUpdate
from server.pending import PendingUpdates
from server.realtime import protocol
from server.realtime.awareness import AwarenessRelay
from server.realtime.connection import Connection
from storage.records import EventRecord

log = logging.getLogger(__name__)

# Event kinds whose payload is a Yjs update to apply.
UPDATE_KINDS = frozenset({"update", "restore"})
MERGE_CHUNK = 5000


class Room:
    def __init__(self, doc_id: str) -> None:
        self.doc_id = doc_id
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.applied_seq = 0
        self.connections: set[Connection] = set()
        self.awareness = AwarenessRelay()
        self.lock = asyncio.Lock()
        self._changed = False
        self.pending = PendingUpdates()
        self._subscription = self.doc.observe(self._on_transaction)

    def _on_transaction(self, _event: TransactionEvent) -> None:
        self._changed = True

    # Loading

    def load(self, state: bytes | None, seq: int, events: Iterable[EventRecord]) -> None:
        """Build the doc from a snapshot's state (at `seq`) and the events after it."""
        if state:
            self.doc.apply_update(state)
        self.applied_seq = seq
        chunk: list[bytes] = []
        for event in events:
            if event.kind in UPDATE_KINDS:
                chunk.append(event.payload)
                if len(chunk) >= MERGE_CHUNK:
                    self._apply_loaded(merge_updates(*chunk))
                    chunk = []
            self.applied_seq = event.seq
        if chunk:
            self._apply_loaded(merge_updates(*chunk))

    def _apply_loaded(self, update: bytes) -> None:
        self.doc.apply_update(update)
        self.pending.after_apply(self.doc, update)

    # Applying

    def try_apply(self, update: bytes) -> bool:
        """Apply a client's update; True if it changed the document (so must be stored).

        False means a no-op: everything in it is already here. An update ahead of its
        dependencies (server/pending.py) is kept pending by the doc and must be stored. Raises
        InvalidUpdate if it does not decode (the doc is untouched), TaintingUpdate if yrs
        panicked mid-apply (the doc may be half-changed: rebuild it from the log).
        """
        self._changed = False
        try:
            self.doc.apply_update(update)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except ValueError as exc:  # a decode error: raised before anything is integrated
            raise InvalidUpdate(f"update does not apply: {str(exc)[:80]}") from None
        except BaseException as exc:  # pycrdt panics are BaseExceptions
            raise TaintingUpdate(f"update does not apply: {str(exc)[:80]}") from None
        # Structs waiting for their dependencies change nothing yet, but must be stored.
        return self.pending.after_apply(self.doc, update) or self._changed

    def apply_event(self, event: EventRecord) -> None:
        """Apply a committed event from the log (another node's, or one we missed)."""
        if event.seq <= self.applied_seq:
            return
        if event.seq != self.applied_seq + 1:
            # Callers read the log from applied_seq on, so this is a bug: refuse, loudly,
            # rather than apply out of order. The next catch-up reads the gap.
            log.error("event %s/%s out of order: the room is at %s", self.doc_id, event.seq,
                      self.applied_seq)
            return
        if event.kind in UPDATE_KINDS:
            try:
                self.doc.apply_update(event.payload)
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException:
                log.exception("event %s/%s in the log does not apply", self.doc_id, event.seq)
            else:
                self.pending.after_apply(self.doc, event.payload)
        self.applied_seq = event.seq

    # Reading (callers hold the lock when a batch may be in flight)

    def sync_step2_for(self, state_vector: bytes) -> bytes:
        try:
            update = self.doc.get_update(state_vector)
            if self.pending:
                # yrs leaves pending structs out of what it encodes; a newcomer needs them too,
                # to integrate them when their dependencies arrive.
                update = merge_updates(update, *self.pending.updates)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException:
            raise MalformedMessage("sync step 1 carries an invalid state vector") from None
        return protocol.sync_step2(update)

    def state(self) -> bytes:
        return self.doc.get_update()

    def current_text(self) -> str:
        return str(self.text)

    # Fan-out

    def broadcast(self, frame: bytes, *, exclude: Connection | None = None) -> None:
        for conn in self.connections:
            if conn is not exclude:
                conn.send(frame)

    def broadcast_update(self, update: bytes, *, exclude: Connection | None = None) -> None:
        for conn in self.connections:
            if conn is not exclude:
                conn.send_update(update)
