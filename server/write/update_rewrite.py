"""Rewriting the content of a Yjs v1 update while keeping its structure: what erasure stores.

`erase_content` decodes an update's structs (the layout `update_guard` scans: groups of
structs per client, each struct's info byte, origins or parent, content; then the delete set)
and re-encodes them with every piece of user content replaced:

- strings (ContentString, and string values inside ContentAny, ContentJSON, ContentEmbed and
  ContentFormat values) by placeholders of the same length character by character: a
  character of 1, 2, 3 or 4 UTF-8 bytes by one of the same UTF-8 length, so the same UTF-16
  length too. Yjs counts an item's clock length in UTF-16 units, so every id, every later
  event and every position stays the same; and pycrdt's UTF-8 offsets stay the same too;
- binary content (ContentBinary, byte values in ContentAny) by zeros of the same length.

Ids, origins, parents, type names, map keys, deletions and gaps are copied unchanged, so the
rewritten update integrates exactly where the original did. Everything else is copied byte for
byte: rewriting with `keep` (no replacement) gives back the original bytes.

Input must have passed the pre-scan (update_guard.scan) or come from the log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from server.write.update_guard import (
    ANY,
    BINARY,
    DELETED,
    DOC,
    EMBED,
    FORMAT,
    GC,
    JSON,
    SKIP,
    STRING,
    TYPE,
    XML_ELEMENT,
    XML_HOOK,
)

# One placeholder per UTF-8 length: the same UTF-16 length follows (4 bytes: a surrogate pair).
PLACEHOLDERS = {1: "x", 2: "\u00d7", 3: "\u2588", 4: "\U0001f532"}

Replace = Callable[[str], str]


def placeholder(text: str) -> str:
    """`text` with every character replaced by a placeholder of the same UTF-8 length."""
    return "".join(PLACEHOLDERS[len(c.encode("utf-8", "surrogatepass"))] for c in text)


def keep(text: str) -> str:
    return text


class _Codec:
    def __init__(self, data: bytes, replace: Replace, zero_binary: bool) -> None:
        self.data = data
        self.pos = 0
        self.out = bytearray()
        self.replace = replace
        self.zero_binary = zero_binary

    # Reading and writing

    def uint(self) -> int:
        value = shift = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def copy_uint(self) -> int:
        start = self.pos
        value = self.uint()
        self.out += self.data[start : self.pos]
        return value

    def write_uint(self, value: int) -> None:
        while value > 0x7F:
            self.out.append(0x80 | (value & 0x7F))
            value >>= 7
        self.out.append(value)

    def raw(self) -> bytes:
        n = self.uint()
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise ValueError("truncated")
        self.pos += n
        return chunk

    def copy_bytes(self) -> None:
        start = self.pos
        self.raw()
        self.out += self.data[start : self.pos]

    def copy_fixed(self, n: int) -> None:
        self.out += self.data[self.pos : self.pos + n]
        self.pos += n

    def write_bytes(self, value: bytes) -> None:
        self.write_uint(len(value))
        self.out += value

    # Content

    def string(self) -> None:
        start = self.pos
        value = self.raw()
        text = value.decode("utf-8", "surrogatepass")
        replaced = self.replace(text)
        if replaced == text:
            self.out += self.data[start : self.pos]
        else:
            self.write_bytes(replaced.encode("utf-8", "surrogatepass"))

    def json_text(self) -> None:
        """A varString holding JSON (or "undefined"): its string values replaced."""
        start = self.pos
        text = self.raw().decode("utf-8", "surrogatepass")
        if text == "undefined" or self.replace is keep:
            self.out += self.data[start : self.pos]
            return
        value = _replace_json(json.loads(text), self.replace)
        self.write_bytes(json.dumps(value, separators=(",", ":"), ensure_ascii=False)
                         .encode("utf-8", "surrogatepass"))

    def binary(self) -> None:
        if not self.zero_binary:
            self.copy_bytes()
            return
        self.write_bytes(bytes(len(self.raw())))

    def any(self) -> None:
        tag = self.data[self.pos]
        self.copy_fixed(1)
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:  # varInt
            self.copy_uint()
        elif tag == 124:  # float32
            self.copy_fixed(4)
        elif tag in (123, 122):  # float64, bigint64
            self.copy_fixed(8)
        elif tag == 119:  # string
            self.string()
        elif tag == 116:  # bytes
            self.binary()
        elif tag == 118:  # object: keys kept, values rewritten
            for _ in range(self.copy_uint()):
                self.copy_bytes()
                self.any()
        elif tag == 117:  # array
            for _ in range(self.copy_uint()):
                self.any()
        else:
            raise ValueError(f"unknown value type {tag}")

    def content(self, ref: int) -> None:
        if ref == STRING:
            self.string()
        elif ref == DELETED:
            self.copy_uint()
        elif ref == JSON:
            for _ in range(self.copy_uint()):
                self.json_text()
        elif ref == BINARY:
            self.binary()
        elif ref == EMBED:
            self.json_text()
        elif ref == FORMAT:
            self.copy_bytes()  # the attribute's name
            self.json_text()
        elif ref == TYPE:
            if self.copy_uint() in (XML_ELEMENT, XML_HOOK):
                self.copy_bytes()  # the element's name
        elif ref == ANY:
            for _ in range(self.copy_uint()):
                self.any()
        elif ref == DOC:
            self.copy_bytes()  # guid
            self.any()
        else:
            raise ValueError(f"unknown content type {ref}")

    # Structure

    def update(self) -> bytes:
        for _ in range(self.copy_uint()):  # groups
            structs = self.copy_uint()
            self.copy_uint()  # client
            self.copy_uint()  # clock
            for _ in range(structs):
                info = self.data[self.pos]
                self.copy_fixed(1)
                ref = info & 0x1F
                if ref in (GC, SKIP):
                    self.copy_uint()  # length
                    continue
                if info & 0x80:  # origin
                    self.copy_uint()
                    self.copy_uint()
                if info & 0x40:  # right origin
                    self.copy_uint()
                    self.copy_uint()
                if not info & 0xC0:  # no origins: the parent is spelled out
                    if self.copy_uint() == 1:
                        self.copy_bytes()  # a root type's name
                    else:
                        self.copy_uint()
                        self.copy_uint()
                    if info & 0x20:
                        self.copy_bytes()  # parent sub (a map key)
                self.content(ref)
        # The delete set: copied as it is.
        self.out += self.data[self.pos :]
        self.pos = len(self.data)
        return bytes(self.out)


def _replace_json(value: Any, replace: Replace) -> Any:
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, list):
        return [_replace_json(v, replace) for v in value]
    if isinstance(value, dict):
        return {k: _replace_json(v, replace) for k, v in value.items()}
    return value


def rewrite(update: bytes, replace: Replace = keep, *, zero_binary: bool = False) -> bytes:
    """The update with every string passed through `replace` (binary content zeroed if
    asked); structure, ids and deletions unchanged."""
    try:
        return _Codec(update, replace, zero_binary).update()
    except IndexError:
        raise ValueError("truncated Yjs update") from None


def erase_content(update: bytes) -> bytes:
    """The update with all its content replaced by placeholders (see the module docstring)."""
    return rewrite(update, placeholder, zero_binary=True)
