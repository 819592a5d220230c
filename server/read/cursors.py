"""Opaque cursors: a position in a list that tells the client nothing and cannot be forged.

The document list is filtered by what the caller may read, and a page ends where the scan
stopped, which may be a document the caller may not read: its id must not reach the client
(issue 11: the old cursor was base64 JSON of that id). So a cursor is encrypted and
authenticated with keys derived from the server secret (shared by every node, so any node
resumes any cursor): a keystream of HMAC-SHA256 blocks over a random nonce (counter mode),
then HMAC-SHA256 over nonce and ciphertext (encrypt-then-MAC). A cursor that does not verify
is refused (400) before anything is decoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from server.errors import BadRequest

NONCE = 16
TAG = 16
MAX_CURSOR_CHARS = 1024
OPEN_SERVER_SEED = b"palimpsest open server: nothing to hide, every caller reads everything"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, secret: str | None) -> None:
        seed = secret.encode() if secret else OPEN_SERVER_SEED
        self._enc = hmac.new(seed, b"palimpsest list cursor: encryption", hashlib.sha256).digest()
        self._mac = hmac.new(seed, b"palimpsest list cursor: authentication",
                             hashlib.sha256).digest()

    def _keystream(self, nonce: bytes, length: int) -> bytes:
        blocks = (length + 31) // 32
        return b"".join(
            hmac.new(self._enc, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest()
            for i in range(blocks)
        )[:length]

    def _tag(self, nonce: bytes, body: bytes) -> bytes:
        return hmac.new(self._mac, nonce + body, hashlib.sha256).digest()[:TAG]

    def encode(self, value: Any) -> str:
        plain = json.dumps(value, separators=(",", ":")).encode()
        nonce = os.urandom(NONCE)
        body = bytes(a ^ b for a, b in zip(plain, self._keystream(nonce, len(plain)),
                                          strict=True))
        return _b64(nonce + body + self._tag(nonce, body))

    def decode(self, cursor: str) -> Any:
        refused = BadRequest("cursor is not one this server gave")
        if len(cursor) > MAX_CURSOR_CHARS:
            raise refused
        try:
            raw = _unb64(cursor)
        except ValueError:
            raise refused from None
        if len(raw) < NONCE + TAG:
            raise refused
        nonce, body, tag = raw[:NONCE], raw[NONCE:-TAG], raw[-TAG:]
        if not hmac.compare_digest(tag, self._tag(nonce, body)):
            raise refused
        plain = bytes(a ^ b for a, b in zip(body, self._keystream(nonce, len(body)),
                                           strict=True))
        try:
            return json.loads(plain)
        except ValueError:
            raise refused from None
