"""The compact binary form of a bus message on Redis.

    version u8 | kind u8 | seq u64 (big-endian) | origin u8-length + UTF-8
    | event kind u8-length + UTF-8 | payload (the rest)

The document id is not repeated: it is the channel's (see `redis_keys`). A Yjs update travels
as its own bytes, with 12 bytes of header plus the two short strings.
"""

from __future__ import annotations

import struct

from server.bus import AWARENESS, EVENT, REVOKE, BusMessage

VERSION = 1
_HEADER = struct.Struct(">BBQ")
_KINDS = {EVENT: 0, AWARENESS: 1, REVOKE: 2}
_KIND_NAMES = {code: name for name, code in _KINDS.items()}


class BadBusMessage(ValueError):
    """Bytes on a document channel that are not a bus message of this version."""


def _short(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"{text[:20]!r}... is longer than 255 bytes")
    return bytes([len(raw)]) + raw


def encode(message: BusMessage) -> bytes:
    return b"".join((
        _HEADER.pack(VERSION, _KINDS[message.kind], message.seq),
        _short(message.origin),
        _short(message.event_kind),
        message.payload,
    ))


def decode(doc_id: str, data: bytes) -> BusMessage:
    try:
        version, kind, seq = _HEADER.unpack_from(data)
        if version != VERSION or kind not in _KIND_NAMES:
            raise BadBusMessage(f"unknown bus message version {version} or kind {kind}")
        at = _HEADER.size
        origin_len = data[at]
        origin = data[at + 1 : at + 1 + origin_len].decode()
        at += 1 + origin_len
        kind_len = data[at]
        event_kind = data[at + 1 : at + 1 + kind_len].decode()
        at += 1 + kind_len
        if at > len(data):
            raise BadBusMessage("truncated bus message")
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise BadBusMessage(f"malformed bus message: {exc}") from None
    return BusMessage(doc_id, _KIND_NAMES[kind], origin, seq, event_kind, bytes(data[at:]))
