"""Server messages as they go out: encoded once, framed once, the same bytes for every client.

A fan-out sends one message to many connections. Each connection used to encode its own copy
(the y-websocket message, then the WebSocket frame around it, in the WebSocket library); now the
room builds an `Outbound` once and every connection writes its `wire` bytes, the complete
WebSocket frame, straight to its socket (`DirectWriter`) when nothing is queued before it.

Writing a frame to the transport is what the WebSocket library itself does when asked to send
one, so it is only done where that is all the library would do: a connection served by
uvicorn's sans-I/O WebSocket protocol, open, with no extension negotiated (permessage-deflate
compresses per connection: there, every frame goes through the library as before).
"""

from __future__ import annotations

from typing import Any

from websockets.frames import Frame, Opcode
from websockets.protocol import State


class Outbound:
    """One message for any number of connections: its WebSocket frame is built on first use,
    then shared."""

    __slots__ = ("_wire", "data")

    encoded = 0  # frames built, over the whole process (for /metrics and the tests)

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._wire: bytes | None = None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def wire(self) -> bytes:
        """An unmasked, uncompressed, final binary frame carrying `data` (RFC 6455 5.2)."""
        if self._wire is None:
            self._wire = Frame(Opcode.BINARY, self.data).serialize(mask=False)
            Outbound.encoded += 1
        return self._wire


class DirectWriter:
    """Writes whole frames to one connection's transport, bypassing the ASGI send path, when
    that is exactly what the WebSocket library would write."""

    __slots__ = ("_conn", "_protocol", "_transport")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._conn = protocol.conn
        self._transport = protocol.transport

    @classmethod
    def of(cls, protocol: Any) -> DirectWriter | None:
        """A writer for uvicorn's sans-I/O protocol object of an accepted connection; None for
        anything else (another server, wsproto, a negotiated extension)."""
        conn = getattr(protocol, "conn", None)
        if (conn is None or getattr(conn, "extensions", None) != []
                or getattr(conn, "state", None) is not State.OPEN
                or not all(hasattr(protocol, name)
                           for name in ("transport", "close_sent", "disconnected", "writable"))):
            return None
        _release_handshake(protocol)
        return cls(protocol)

    def ready(self) -> bool:
        """Open, and nothing buffered in the transport: a frame written now goes out now."""
        protocol = self._protocol
        transport = self._transport
        return (not protocol.close_sent and not protocol.disconnected
                and self._conn.state is State.OPEN and not transport.is_closing()
                and transport.get_write_buffer_size() == 0)

    def open(self) -> bool:
        """Still open for data frames (the server has not sent its close)."""
        protocol = self._protocol
        return (not protocol.close_sent and not protocol.disconnected
                and self._conn.state is State.OPEN and not self._transport.is_closing())

    def write(self, frame: Outbound) -> None:
        self._transport.write(frame.wire)

    async def writable(self) -> None:
        """Until the transport's buffer is back under its low-water mark (or the socket is
        gone: uvicorn sets the event then too)."""
        await self._protocol.writable.wait()

    def is_writable(self) -> bool:
        return bool(self._protocol.writable.is_set())


def _release_handshake(protocol: Any) -> None:
    """uvicorn keeps the handshake's request and response (their headers, a few KB) for the
    connection's life, though it reads them only until the handshake completes: let them go."""
    if getattr(protocol, "handshake_complete", False):
        for name in ("request", "response"):
            if getattr(protocol, name, None) is not None:
                setattr(protocol, name, None)
