"""The y-websocket wire protocol: parse client frames into messages, build server frames.

Frames are binary; the first varUint is the message type:
0 sync (subtype 0 step 1, 1 step 2, 2 update), 1 awareness, 2 auth, 3 query awareness.
Type 100 is Palimpsest's opt-in durable acknowledgement, sent only to connections that asked
for it (`?ack=1`); stock clients never receive it. See docs/protocol.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from pycrdt import write_var_uint

from server.errors import MalformedMessage, UnknownMessageType

MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3
MESSAGE_ACK = 100

SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

AUTH_PERMISSION_DENIED = 0


@dataclass(frozen=True, slots=True)
class SyncStep1:
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessUpdate:
    payload: bytes


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | QueryAwareness


class Reader:
    """A bounds-checked lib0 decoder: every overrun is a MalformedMessage, never an IndexError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def var_uint(self) -> int:
        value = 0
        shift = 0
        data = self.data
        while True:
            if self.pos >= len(data):
                raise MalformedMessage("truncated message")
            byte = data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise MalformedMessage("variable-length integer too long")

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self.pos + length
        if end > len(self.data):
            raise MalformedMessage("truncated message")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage("string is not valid UTF-8") from exc

    def at_end(self) -> bool:
        return self.pos == len(self.data)

    def expect_end(self) -> None:
        if not self.at_end():
            raise MalformedMessage("unexpected bytes after the message")


def parse_message(frame: bytes) -> Message:
    """Decode one client frame. Raises MalformedMessage or UnknownMessageType."""
    reader = Reader(frame)
    kind = reader.var_uint()
    message: Message
    if kind == MESSAGE_SYNC:
        sub = reader.var_uint()
        payload = reader.var_bytes()
        if sub == SYNC_STEP1:
            message = SyncStep1(payload)
        elif sub == SYNC_STEP2:
            message = SyncStep2(payload)
        elif sub == SYNC_UPDATE:
            message = SyncUpdate(payload)
        else:
            raise UnknownMessageType(f"unknown sync message subtype {sub}")
    elif kind == MESSAGE_AWARENESS:
        message = AwarenessUpdate(reader.var_bytes())
    elif kind == MESSAGE_QUERY_AWARENESS:
        message = QueryAwareness()
    else:
        raise UnknownMessageType(f"unknown message type {kind}")
    reader.expect_end()
    return message


def _bytes(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


def sync_step1(state_vector: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_STEP1)) + _bytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_STEP2)) + _bytes(update)


def sync_update(update: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_UPDATE)) + _bytes(update)


def awareness(payload: bytes) -> bytes:
    return bytes((MESSAGE_AWARENESS,)) + _bytes(payload)


def permission_denied(reason: str) -> bytes:
    return bytes((MESSAGE_AUTH, AUTH_PERMISSION_DENIED)) + _bytes(reason.encode())


def ack(messages: int, seq: int) -> bytes:
    """Palimpsest's durable ack: the connection's first `messages` writes are committed."""
    return bytes((MESSAGE_ACK,)) + write_var_uint(messages) + write_var_uint(seq)
