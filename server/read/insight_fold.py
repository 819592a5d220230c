"""What each event of a document adds to the insight read models: status, activity, search.

A pure fold (no I/O): `DocumentInsight.apply(event, batch)` updates the document's state (its
Yjs doc and text, status, authors' last edit) and adds the rows the event produces to an
`InsightBatch` (storage.insights).

Activity, per edit event (an update or a restore), counted for its author in the minute of
its time: `inserted`/`deleted` are characters (code points); `words_added`/`words_removed`
are the rise or fall of the document's word count (a word: a run of characters other than
ASCII whitespace), so typing a word adds one and deleting it removes one; `active_seconds`
is the time since the author's previous edit of this document, when at most IDLE_GAP.

History words, per edit event, for the stretch of MARK_EVERY events it belongs to: the
lower-cased words each change touched, in the text before it (around what it removed) and
after it (around what it inserted), each reaching one word further over the whitespace at
either end. An occurrence of a phrase that a change creates or destroys holds one of them
(server.read.search relies on it to skip the stretches no change of presence can be in).
"""

from __future__ import annotations

import itertools
import logging
import re
from typing import Any

from pycrdt import Doc, Text

from server.events import (
    REWRITES,
    DocumentCreated,
    DocumentRenamed,
    RevisionRestored,
    StatusChanged,
    UpdateApplied,
    absorbed_from,
    decode,
)
from server.read.textops import EMBED, visible
from server.root_watch import OtherRoots
from server.ydoc import History, PendingUpdates, apply_deferred, replay
from storage.insights import ActivityCounts, InsightBatch, StatusRow, TransitionRow
from storage.records import EventRecord

log = logging.getLogger(__name__)

IDLE_GAP = 120.0  # seconds between two edits of one author that still count as active
MARK_EVERY = 4096  # events between two history marks (the text kept for history search)
WHITESPACE = b" \t\n\r\f\v"
WORD = re.compile(rb"[^ \t\n\r\f\v]+")
# Deferred updates held; past this the Doc is given up on (no pause merging them all on the
# event loop): an event without deltas then has the document loaded again (NeedsReload).
MAX_UNAPPLIED = 5_000


def minute(t: float) -> int:
    return int(t // 60) * 60


def _words(region: bytes | bytearray) -> int:
    return len(WORD.findall(region))


# How far a word's edge is looked for. A run of text with no whitespace (pasted data, a
# client appending megabytes of one "word") would otherwise be walked byte by byte on every
# edit: O(length) per event on the event loop. Counting is unchanged (the same clipped edge is
# used before and after a change); an indexed word longer than this is kept by its first or
# last MAX_WORD bytes.
MAX_WORD = 256


# Every whitespace byte made a space, so one find/rfind (in C) locates a word's edge.
_TO_SPACE = bytes.maketrans(WHITESPACE, b" " * len(WHITESPACE))


def _edge_left(content: bytearray, pos: int) -> int:
    stop = max(0, pos - MAX_WORD)
    found = content[stop:pos].translate(_TO_SPACE).rfind(b" ")
    return stop + found + 1 if found >= 0 else stop


def _edge_right(content: bytearray, pos: int) -> int:
    end = min(len(content), pos + MAX_WORD)
    found = content[pos:end].translate(_TO_SPACE).find(b" ")
    return pos + found if found >= 0 else end


def _reach(content: bytearray, start: int, end: int) -> tuple[int, int]:
    """content[start:end] widened to whole words, and one word further across whitespace."""
    stop = max(0, start - MAX_WORD)
    start = stop + len(content[stop:start].translate(_TO_SPACE).rstrip(b" "))
    end_of_text = min(len(content), end + MAX_WORD)
    end = end_of_text - len(content[end:end_of_text].translate(_TO_SPACE).lstrip(b" "))
    return _edge_left(content, start), _edge_right(content, end)


# How far `touch` may look from its span: two reaches, each over whitespace and a word.
TOUCH_REACH = 4 * MAX_WORD


def _left_in(spaced: bytes, pos: int) -> int:
    stop = max(0, pos - MAX_WORD)
    found = spaced.rfind(b" ", stop, pos)
    return found + 1 if found >= 0 else stop


def _right_in(spaced: bytes, pos: int) -> int:
    end = min(len(spaced), pos + MAX_WORD)
    found = spaced.find(b" ", pos, end)
    return found if found >= 0 else end


def _reach_in(spaced: bytes, start: int, end: int) -> tuple[int, int]:
    """`_reach` on text whose whitespace is all spaces (`_TO_SPACE`)."""
    stop = max(0, start - MAX_WORD)
    start = stop + len(spaced[stop:start].rstrip(b" "))
    end_of_text = min(len(spaced), end + MAX_WORD)
    end = end_of_text - len(spaced[end:end_of_text].lstrip(b" "))
    return _left_in(spaced, start), _right_in(spaced, end)


def touch(content: bytearray, start: int, end: int, into: set[bytes]) -> None:
    """Add to `into` the lower-cased words overlapping content[start:end] and the nearest word
    on either side across whitespace (for an empty span: the words at its two sides), and,
    as "left right", every two neighbouring words of that reach widened by one more word. A
    phrase's occurrence that overlaps the span, or straddles an empty one, holds one of those
    words, and, if it has two words or more, one of those pairs."""
    # Worked on a copy of the stretch it can reach, whitespace made spaces once: every edge
    # is then one find in C. The copy ends where the text does or past any reach, so each
    # edge lands where it would in the whole text.
    lo = max(0, start - TOUCH_REACH)
    window = bytes(content[lo : end + TOUCH_REACH])
    spaced = window.translate(_TO_SPACE)
    left, right = _reach_in(spaced, start - lo, end - lo)
    into.update(window[left:right].lower().split())
    wide = window[slice(*_reach_in(spaced, left, right))].lower().split()
    into.update(b" ".join(pair) for pair in itertools.pairwise(wide))


def fold_delta(content: bytearray, delta: list[dict[str, Any]],
               touched: set[bytes] | None = None) -> tuple[int, int, int]:
    """Apply a Y.Text delta (UTF-8 byte offsets, as pycrdt counts) to `content` in place;
    (characters inserted, characters deleted, change of the word count). Only the words
    touching each change are counted again: the rest of the text keeps its words. With
    `touched`, the words each change touched are added to it (`touch`, before and after)."""
    inserted = deleted = words = 0
    pos = 0
    for part in delta:
        if "retain" in part:
            pos += int(part["retain"])
        elif "insert" in part:
            value = part["insert"]
            if not isinstance(value, str):
                value = EMBED  # one unit, as Yjs and the read side's text ops count it
            data = value.encode()
            left, right = _edge_left(content, pos), _edge_right(content, pos)
            before = _words(content[left:right])
            if touched is not None:
                touch(content, pos, pos, touched)
            content[pos:pos] = data
            if touched is not None:
                touch(content, pos, pos + len(data), touched)
            words += _words(content[left:right + len(data)]) - before
            inserted += len(value)
            pos += len(data)
        elif "delete" in part:
            length = int(part["delete"])
            left, right = _edge_left(content, pos), _edge_right(content, pos + length)
            before = _words(content[left:right])
            deleted += len(bytes(content[pos:pos + length]).decode(errors="replace"))
            if touched is not None:
                touch(content, pos, pos + length, touched)
            del content[pos:pos + length]
            if touched is not None:
                touch(content, pos, pos, touched)
            words += _words(content[left:right - length]) - before
    return inserted, deleted, words


class NeedsReload(Exception):
    """The state's Doc was left behind (MAX_UNAPPLIED): load it again at its checkpoint."""


class NeedsReset(Exception):
    """The log was rewritten (an erasure, a compaction) after this state was built."""

    def __init__(self, seq: int) -> None:
        super().__init__(seq)
        self.seq = seq


class DocumentInsight:
    def __init__(self, doc_id: str) -> None:
        self.doc_id = doc_id
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.pending = PendingUpdates()
        self.content = bytearray()
        self.seq = 0
        self.title = ""
        self.status: StatusRow | None = None
        self.last_times: dict[str, float] = {}
        self.rewritten_at = 0
        self._deltas: list[list[dict[str, Any]]] = []
        # Updates whose deltas came with them (the write side's, in this process): the Doc
        # takes them later, merged, only when an event comes without (server.read.offers).
        self._unapplied: list[bytes] = []
        self._doc_behind = False  # more than MAX_UNAPPLIED were deferred: the Doc is stale
        self._catching_up = False
        # The raw subscription, as in server.read.projection: the wrapper costs far more.
        self._subscription = self.text.integrated.observe(self._on_text)

    def _on_text(self, event: Any) -> None:
        if not self._catching_up:  # reading `delta` walks the whole text: only when needed
            self._deltas.append(event.delta)

    def _apply_deferred(self) -> None:
        updates = self._unapplied
        if not updates:
            return
        self._unapplied = []
        self._catching_up = True  # the text they make is in `content` already
        try:
            apply_deferred(self.doc, updates, self.pending)
        finally:
            self._catching_up = False

    def load(self, history: History, title: str, status: StatusRow | None,
             last_times: dict[str, float], rewritten_at: int) -> None:
        """Resume at `history.seq` (the checkpoint) from a snapshot plus the events after."""
        self._catching_up = True  # the text is read whole below
        try:
            replay(self.doc, history.state, history.events, self.pending)
        finally:
            self._catching_up = False
        self._deltas.clear()
        self.content = bytearray(str(self.text).encode())
        self.seq = history.seq
        self.title = title
        self.status = status
        self.last_times = dict(last_times)
        self.rewritten_at = rewritten_at

    def text_now(self) -> str:
        return self.content.decode(errors="replace")

    def apply(self, event: EventRecord, batch: InsightBatch,
              deltas: list[Any] | None = None) -> None:
        """Fold one event in. `deltas`: the Y.Text deltas applying it at the previous seq gave
        (the write side's, in this process), when known: the Doc is then spared."""
        if absorbed_from(event) != self.seq + 1:
            raise ValueError(f"{self.doc_id}: event {event.seq} after {self.seq}")
        if event.kind in REWRITES and event.seq > self.rewritten_at:
            raise NeedsReset(event.seq)
        previous = self.seq
        decoded = decode(event)
        match decoded:
            case UpdateApplied(update, absorbed):
                self._edit(event, update, batch, 1 if absorbed is None else absorbed.events,
                           deltas)
            case RevisionRestored(update):
                self._edit(event, update, batch, 1, deltas)
            case DocumentCreated(title) | DocumentRenamed(title):
                self.title = title
                batch.search = (self.title, visible(self.text_now()))
                batch.search_seq = event.seq
            case StatusChanged(from_status, to_status, note):
                self._transition(event, from_status, to_status, note, batch)
            case _:
                pass
        self.seq = event.seq
        if event.seq // MARK_EVERY > previous // MARK_EVERY:
            batch.marks.append((event.seq, self.text_now()))

    def _text_deltas(self, event: EventRecord, update: bytes,
                     deltas: list[Any] | None) -> list[Any] | None:
        if deltas is not None:
            if not self._doc_behind:
                self._unapplied.append(update)
                if len(self._unapplied) > MAX_UNAPPLIED:
                    self._unapplied = []
                    self._doc_behind = True
            return [d for d in deltas if not isinstance(d, OtherRoots)]
        if self._doc_behind:
            raise NeedsReload
        self._apply_deferred()
        self._deltas.clear()
        try:
            # As the projection and the write side: structs past a clock gap wait (Yjs).
            self.pending.apply(self.doc, update)
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException:  # pycrdt panics are BaseExceptions
            log.exception("event %s/%s does not apply", self.doc_id, event.seq)
            return None
        return self._deltas

    def _edit(self, event: EventRecord, update: bytes, batch: InsightBatch, count: int,
              deltas: list[Any] | None) -> None:
        text_deltas = self._text_deltas(event, update, deltas)
        if text_deltas is None:
            return
        inserted = deleted = words = 0
        touched: set[bytes] = set()
        for delta in text_deltas:
            i, d, w = fold_delta(self.content, delta, touched)
            inserted, deleted, words = inserted + i, deleted + d, words + w
        if touched:
            # The stretch ending at the mark on the grid (a mark at k * MARK_EVERY closes it).
            batch.words.setdefault((event.seq - 1) // MARK_EVERY, set()).update(touched)
        counts = batch.activity.setdefault((minute(event.time), event.actor), ActivityCounts())
        counts.events += count
        counts.inserted += inserted
        counts.deleted += deleted
        counts.words_added += max(words, 0)
        counts.words_removed += max(-words, 0)
        last = self.last_times.get(event.actor)
        if last is not None and 0 <= event.time - last <= IDLE_GAP:
            counts.active_seconds += event.time - last
        self.last_times[event.actor] = event.time
        batch.last_times[event.actor] = event.time
        if inserted or deleted:
            batch.search = (self.title, "")  # filled with the text at the batch's end
            batch.search_seq = event.seq

    def _transition(self, event: EventRecord, from_status: str, to_status: str, note: str,
                    batch: InsightBatch) -> None:
        batch.transitions.append(
            TransitionRow(event.seq, from_status, to_status, event.actor, event.time, note))
        published = self.status.published_seq if self.status is not None else None
        published_at = self.status.published_at if self.status is not None else None
        if to_status == "published":
            published, published_at = event.seq, event.time
        self.status = StatusRow(to_status, event.seq, event.time, event.actor, published,
                                published_at)
        batch.status = self.status
