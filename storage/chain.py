"""The hash chain over each document's log: what makes tampering with stored history evident.

Every event stores `hash = SHA-256(TAG, previous hash, its content)`, the first event of a
document chaining on GENESIS. The content is length-prefixed, so no two different events
encode the same: seq (8 bytes, big-endian), kind, payload, actor, time (IEEE 754 double,
big-endian) and meta (JSON with sorted keys, compact, ASCII), each preceded by its length in
8 bytes. The document id is not part of it, so a log imported under another id keeps its
hashes. `documents.head_hash` holds the hash of the last event (NULL: no event yet).

Pure: no SQL. The event store calls `link` inside the append transaction, with the previous
hash read under the row lock that serialises appends; `palimpsest verify` calls `Verifier`.
This encoding is a stored format: never change it (a new one would need a new TAG).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from storage.records import EventRecord

TAG = b"palimpsest-event-v1"
GENESIS = bytes(32)


def canonical_meta(meta: dict[str, Any]) -> bytes:
    if not meta:
        return b"{}"  # most events (every keystroke): what json.dumps gives, without it
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def event_hash(previous: bytes, seq: int, kind: str, payload: bytes, actor: str, time: float,
               meta: dict[str, Any]) -> bytes:
    digest = hashlib.sha256(TAG)
    digest.update(previous)
    digest.update(_field(seq.to_bytes(8, "big", signed=True)))
    digest.update(_field(kind.encode()))
    digest.update(_field(payload))
    digest.update(_field(actor.encode()))
    digest.update(_field(struct.pack(">d", time)))
    digest.update(_field(canonical_meta(meta)))
    return digest.digest()


_SEQ_LEN = (8).to_bytes(8, "big")


def event_hash_of_meta(previous: bytes, seq: int, kind: str, payload: bytes, actor: str,
                       time: float, meta: bytes) -> bytes:
    """`event_hash` with the meta already canonical (`canonical_meta`): the same digest, in
    one call (readers of packed segments recompute a hash per event)."""
    kind_b, actor_b = kind.encode(), actor.encode()
    return hashlib.sha256(b"".join((
        TAG, previous, _SEQ_LEN, seq.to_bytes(8, "big", signed=True),
        len(kind_b).to_bytes(8, "big"), kind_b, len(payload).to_bytes(8, "big"), payload,
        len(actor_b).to_bytes(8, "big"), actor_b, _SEQ_LEN, struct.pack(">d", time),
        len(meta).to_bytes(8, "big"), meta,
    ))).digest()


def hash_of(previous: bytes, record: EventRecord) -> bytes:
    return event_hash(previous, record.seq, record.kind, record.payload, record.actor,
                      record.time, record.meta)


def link(previous: bytes | None, records: Sequence[EventRecord]) -> list[EventRecord]:
    """`records` (consecutive in the log) with their hashes, chained on `previous` (the hash of
    the event before the first; None or GENESIS at the start of a log)."""
    current = previous or GENESIS
    linked: list[EventRecord] = []
    for record in records:
        current = hash_of(current, record)
        linked.append(replace(record, hash=current))
    return linked


class Verifier:
    """Walks one log in seq order; `first_broken` is the first seq whose stored hash is not
    the one its content and its predecessor's hash give (None while all agree)."""

    def __init__(self) -> None:
        self.expected = GENESIS
        self.first_broken: int | None = None
        self.count = 0

    def feed(self, record: EventRecord) -> bool:
        """Check the next event; False once the chain is broken (at this event or before)."""
        if self.first_broken is not None:
            return False
        self.count += 1
        self.expected = hash_of(self.expected, record)
        if record.hash != self.expected:
            self.first_broken = record.seq
            return False
        return True
