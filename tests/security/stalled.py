"""A WebSocket client that stops reading, and what the tests measure of the server around it.

`StalledClient` does the opening handshake over a plain socket with a tiny receive buffer and
then reads nothing: its TCP window closes, and whatever the server sends it stops making
progress. It can still send (client frames are masked, as RFC 6455 requires).
"""

from __future__ import annotations

import base64
import os
import re
import socket
import struct
import time
from pathlib import Path

import httpx


class StalledClient:
    def __init__(self, port: int, path: str, *, rcvbuf: int = 4096) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect, so the window it advertises stays small.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError(f"handshake refused: {head!r}")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head!r}")

    def send(self, payload: bytes) -> None:
        """One masked binary frame."""
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x82, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x82, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x82, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def read_until_closed(self, within: float) -> bool:
        """Read (and throw away) everything until the server's end is closed: True if that
        happened within `within` seconds. Blocking: run it in a thread."""
        deadline = time.monotonic() + within
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(1 << 20):
                    return True
            except TimeoutError:
                continue
            except OSError:  # reset: closed too
                return True
        return False

    def close(self) -> None:
        self.sock.close()


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's resident set (or VmHWM: its peak) in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def metric(http_url: str, name: str) -> float:
    """One value from the server's /metrics."""
    text = httpx.get(f"{http_url}/metrics", timeout=5).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, text[:500]
    return float(found.group(1))


def connections(http_url: str) -> int:
    """The server's live WebSocket connections."""
    return int(metric(http_url, "palimpsest_connections"))
