"""Yjs documents as both sides keep them: loading one from a snapshot plus events, and the
updates a pycrdt Doc holds pending on missing dependencies.

A stock client that reconnects sends its new keystrokes as soon as the socket opens, before its
sync step 2 carries the edits they build on, so an update can arrive ahead of its dependencies.
yrs keeps such structs pending and integrates them when the dependencies come. But it leaves
pending structs out of every encoded state: a snapshot of `doc.get_update()` alone would
silently lose them. So whoever snapshots a Doc tracks what is pending here and stores
`PendingUpdates.snapshot_state(doc)`: the doc's state merged with the pending structs. Loading
such a snapshot integrates what it can and leaves the rest pending, tracked again, so a
struct whose dependencies never come neither stops snapshots nor is ever dropped.

yrs also integrates a struct whose clock is past what the doc holds of its client (a gap)
as soon as its origins are there; Yjs makes it wait, with every later struct of that client,
until the gap is filled. So every update goes through `PendingUpdates.apply`, which holds
such structs back (`server/ystructs.split_ready`) and gives them to yrs once the gap is
filled: the server's doc, its history and its newcomers then show what Yjs clients show.
A deletion of an item the doc does not hold yet is kept pending by yrs (as by Yjs) but, like
pending structs, left out of what yrs encodes: it is tracked here too
(`server/ystructs.unseen_deletions`), and an update made only of such deletions is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, get_update, merge_updates

from server.events import yjs_update
from server.ykeyorder import KeyOrders, merge_keeping_order
from server.ystructs import split_ready, unseen_deletions
from storage.event_store import EventStore
from storage.records import EventRecord


def _has_unintegrated(update: bytes, state: bytes) -> bool:
    # The first varUint of a v1 update counts the clients with structs: 0 means the doc's
    # state vector covers every struct in `update`.
    return get_update(update, state)[:1] != b"\x00"


class PendingUpdates:
    def __init__(self) -> None:
        self._unintegrated: list[bytes] = []  # what yrs keeps pending
        self._deletions: list[bytes] = []  # deletions yrs keeps pending (unseen_deletions)
        self.held: list[bytes] = []  # what waits for a gap in its client's clocks
        self.key_orders = KeyOrders()  # JSON objects' key order, which yrs forgets

    @property
    def updates(self) -> list[bytes]:
        """Every struct and deletion the doc does not show yet: what a snapshot and a
        newcomer need."""
        return self._unintegrated + self._deletions + self.held

    def __bool__(self) -> bool:
        return bool(self._unintegrated or self._deletions or self.held)

    def apply(self, doc: Any, update: bytes) -> bool:
        """Apply `update` to `doc` as Yjs would (structs past a clock gap held back); True
        if some of it stayed pending or held. Raises what `doc.apply_update` raises."""
        ready: bytes | None
        held: bytes | None
        if update[:1] == b"\x00":  # no structs (a deletion): nothing to hold, no state read
            ready, held = update, None
        else:
            ready, held = split_ready(update, doc.get_state())
        self.key_orders.learn(update)
        waiting = False
        if ready is not None:
            doc.apply_update(ready)
            waiting = self.after_apply(doc, ready)
        if held is not None:
            self.held.append(held)
            waiting = True
        if ready is not None and self.held:
            # The update may have filled a gap: give yrs what no longer waits.
            waiting = self._release(doc) or waiting
        return waiting

    def _release(self, doc: Any) -> bool:
        while self.held:
            merged = self.held[0] if len(self.held) == 1 else merge_updates(*self.held)
            ready, held = split_ready(merged, doc.get_state())
            if ready is None:
                return True
            self.held = [held] if held is not None else []
            doc.apply_update(ready)
            self.after_apply(doc, ready)
            if held is None:
                break
        return bool(self)

    def after_apply(self, doc: Any, update: bytes) -> bool:
        """Call after `doc.apply_update(update)`; True if some of it stayed pending."""
        if update[:1] == b"\x00" and not self._unintegrated:
            # No structs to stay pending, none pending to integrate now: only deletions of
            # items not seen yet wait (a backspace arriving before the edit it erases).
            unseen = unseen_deletions(update, doc.get_state())
            if unseen is None:
                return False
            self._deletions.append(unseen)
            return True
        state = doc.get_state()
        if self._unintegrated:
            self._unintegrated = [u for u in self._unintegrated
                                  if _has_unintegrated(u, state)]
        if self._deletions:
            self._deletions = [d for d in self._deletions
                               if unseen_deletions(d, state) is not None]
        unseen = unseen_deletions(update, state)
        if unseen is not None:
            self._deletions.append(unseen)
        rest = get_update(update, state)
        if rest[:1] != b"\x00":
            # Only what did not integrate (and the update's delete set): a snapshot loaded
            # with pending structs must not keep the whole snapshot as "pending".
            self._unintegrated.append(rest)
            return True
        return unseen is not None

    def snapshot_state(self, doc: Doc[Any]) -> bytes:
        """The doc's encoded state with every pending struct in it: what a snapshot stores."""
        state = doc.get_update()
        state = merge_updates(state, *self.updates) if self.updates else state
        return self.key_orders.restore(state)


# Merging thousands of small updates first makes a cold load one integration instead of many.
MERGE_CHUNK = 5000


def replay(doc: Doc[Any], state: bytes | None, records: Iterable[EventRecord],
           pending: PendingUpdates) -> None:
    """Bring `doc` to the end of `records`: a snapshot's `state` (if any), then every Yjs
    update the records carry, merged in chunks. The one way both sides load a document."""
    if state:
        pending.apply(doc, state)  # a snapshot may carry pending structs
    chunk: list[bytes] = []
    for record in records:
        update = yjs_update(record)
        if update is None:
            continue
        chunk.append(update)
        if len(chunk) >= MERGE_CHUNK:
            _apply_merged(doc, chunk, pending)
            chunk = []
    if chunk:
        _apply_merged(doc, chunk, pending)


# Updates deferred by a follower are merged this many at a time: merging is superlinear in yrs
# (100 small updates: 5 us each; 5,000: 23 us each, measured), applying one by one 7 us each.
DEFERRED_CHUNK = 100


def apply_deferred(doc: Doc[Any], updates: list[bytes], pending: PendingUpdates) -> None:
    """Bring `doc` up to date with updates whose effects were taken elsewhere (a follower fed
    the writer's own deltas): merged DEFERRED_CHUNK at a time, clock gaps held back as Yjs."""
    for start in range(0, len(updates), DEFERRED_CHUNK):
        _apply_merged(doc, updates[start : start + DEFERRED_CHUNK], pending)


def _apply_merged(doc: Doc[Any], updates: list[bytes], pending: PendingUpdates) -> None:
    update = updates[0] if len(updates) == 1 else merge_keeping_order(*updates)
    pending.apply(doc, update)


@dataclass(frozen=True, slots=True)
class History:
    """What loading a document at `seq` needs: the nearest snapshot and the events after it."""

    seq: int
    state: bytes | None
    events: list[EventRecord]


async def read_history(store: EventStore, doc_id: str, until: int | None = None) -> History:
    """The latest snapshot at or before `until` (the head when None) and the events after it."""
    snapshot = await store.snapshot_at_or_before(doc_id, until)
    after = snapshot.seq if snapshot is not None else 0
    # No chain hashes: loading needs none, and packed events would have theirs recomputed.
    events = await store.read_list(doc_id, after, until, hashes=False)
    seq = events[-1].seq if events else after
    return History(seq, snapshot.state if snapshot is not None else None, events)
