"""A whole Yjs document as JSON: every root type, whatever it holds.

Each root is rendered by what it is (`server/ystructs.root_types` says, from the state):

- text: `{"type": "text", "text": the characters (embeds left out, as Y.Text.toString),
  "delta": [{"insert": str or embed, "attributes"?: {...}}]}`;
- XML fragment (ProseMirror, Tiptap, BlockNote, Lexical): `{"type": "xml", "xml": the XML
  string Yjs prints, "children": [node]}` where an element is `{"tag", "attributes",
  "children"}` and an XML text is `{"delta": [...]}` like a text's;
- map: `{"type": "map", "json": {key: value}}`, array: `{"type": "array", "json": [...]}`,
  nested shared types rendered as Yjs's `toJSON` renders them (text as a string, XML as its
  string, maps and arrays as JSON);
- a root whose every child is deleted says nothing of its type: `{"type": null}`.

`json` is what Yjs's own `ytype.toJSON()` gives for each root, so a Yjs client can be
compared with the server value for value. Numbers that are whole are given as integers, as
JavaScript prints them.
"""

from __future__ import annotations

import math
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from server.ystructs import ARRAY, MAP, TEXT, XML, root_types

Json = Any
SHARED = {TEXT: Text, MAP: Map, ARRAY: Array, XML: XmlFragment}


def typed_roots(doc: Doc[Any], kinds: dict[str, str | None] | None = None
                ) -> dict[str, tuple[str | None, Any]]:
    """Every root of `doc` with its kind and the pycrdt type to read it (None if unknown).

    Roots the doc already holds typed are read as they are; the others are typed from what
    the doc's state says they hold (`kinds`, if the caller knows, wins)."""
    found = kinds if kinds is not None else root_types(doc.get_update())
    out: dict[str, tuple[str | None, Any]] = {}
    for name in sorted(set(doc.keys()) | set(found)):
        kind = found.get(name)
        out[name] = (kind, doc.get(name, type=SHARED[kind]) if kind is not None else None)
    return out


def plain(value: Any) -> Json:
    """A pycrdt value as JSON, the way Yjs's toJSON gives it."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, (XmlFragment, XmlElement, XmlText)):
        return xml_string(value)
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, Map):
        return {k: plain(value[k]) for k in value.keys()}
    if isinstance(value, Array):
        return [plain(v) for v in value]
    return value


def delta(diff: list[tuple[Any, dict[str, Any] | None]]) -> list[Json]:
    """A pycrdt text diff as a Quill-style delta: inserts with their attributes."""
    out: list[Json] = []
    for insert, attrs in diff:
        op: dict[str, Json] = {"insert": insert if isinstance(insert, str) else plain(insert)}
        if attrs:
            op["attributes"] = plain(attrs)
        out.append(op)
    return out


def merged(ops: list[Json]) -> list[Json]:
    """A delta with adjacent string runs of equal attributes joined. Yjs and yrs split runs
    at formatting marks that change nothing; two texts equal in content and formatting give
    the same merged delta whatever their history."""
    out: list[Json] = []
    for op in ops:
        last = out[-1] if out else None
        if (last is not None and isinstance(op["insert"], str)
                and isinstance(last["insert"], str)
                and last.get("attributes") == op.get("attributes")):
            out[-1] = {**last, "insert": last["insert"] + op["insert"]}
        else:
            out.append(op)
    return out


def text_string(diff: list[tuple[Any, dict[str, Any] | None]]) -> str:
    """The characters of a text, embeds left out (Y.Text.toString)."""
    return "".join(insert for insert, _ in diff if isinstance(insert, str))


def _js_string(value: Any) -> str:
    """A JSON value as JavaScript's String() prints it (what Yjs's toString writes)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, list):
        return ",".join("" if v is None else _js_string(v) for v in value)
    return str(value)


def _attr_value(value: Any) -> str:
    return _js_string(plain(value))


def _utf16_units(text: str) -> list[str]:
    raw = text.encode("utf-16-le", "surrogatepass")
    return [raw[i : i + 2].decode("utf-16-le", "surrogatepass") for i in range(0, len(raw), 2)]


def _format_pairs(value: Any) -> list[tuple[str, Any]]:
    """What Yjs's `for (const key in value)` gives for a formatting value: an object's
    entries, a string's or an array's (index, element) pairs, nothing for anything else;
    sorted as Yjs sorts them (by key, as strings)."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = [(str(i), unit) for i, unit in enumerate(_utf16_units(value))]
    elif isinstance(value, list):
        pairs = [(str(i), v) for i, v in enumerate(value)]
    else:
        pairs = []
    return sorted(pairs, key=lambda pair: pair[0].encode("utf-16-be", "surrogatepass"))


def _xml_text_string(node: XmlText) -> str:
    # As Yjs's YXmlText.toString: each formatting attribute becomes an element around its
    # run (sorted by name, attributes by key); an embed is printed by String().
    out = []
    for insert, attrs in node.diff():
        nested = sorted((attrs or {}).items(),
                        key=lambda item: item[0].encode("utf-16-be", "surrogatepass"))
        opening = ""
        for tag, value in nested:
            opening += f"<{tag}" + "".join(
                f' {k}="{_attr_value(v)}"' for k, v in _format_pairs(plain(value))) + ">"
        closing = "".join(f"</{tag}>" for tag, _ in reversed(nested))
        out.append(opening + _js_string(plain(insert)) + closing)
    return "".join(out)


def attributes(node: XmlElement) -> dict[str, Any]:
    """An element's attributes (pycrdt's view iterates as pairs)."""
    pairs: Any = node.attributes  # typed Iterable, iterates as an iterator
    return {key: value for key, value in pairs}


def xml_string(node: XmlFragment | XmlElement | XmlText) -> str:
    """The XML string Yjs prints for a node (attributes sorted by name)."""
    if isinstance(node, XmlText):
        return _xml_text_string(node)
    inner = "".join(xml_string(child) for child in node.children)
    if isinstance(node, XmlFragment):
        return inner
    attrs = sorted(attributes(node).items(),
                   key=lambda item: item[0].encode("utf-16-be", "surrogatepass"))
    opening = (node.tag or "UNDEFINED").lower()  # Yjs prints toLocaleLowerCase()
    return (f"<{opening}" + "".join(f' {k}="{_attr_value(v)}"' for k, v in attrs) + ">"
            + inner + f"</{opening}>")


def xml_tree(node: XmlFragment | XmlElement | XmlText) -> Json:
    """A node as a tree: elements with tag, attributes and children; texts as deltas."""
    if isinstance(node, XmlText):
        return {"delta": delta(node.diff())}
    children = [xml_tree(child) for child in node.children]
    if isinstance(node, XmlFragment):
        return children
    return {"tag": node.tag, "attributes": plain(attributes(node)), "children": children}


def render_root(kind: str | None, shared: Any) -> Json:
    if kind == TEXT:
        diff = shared.diff()
        return {"type": TEXT, "text": text_string(diff), "delta": delta(diff),
                "json": text_string(diff)}
    if kind == XML:
        xml = xml_string(shared)
        return {"type": XML, "xml": xml, "children": xml_tree(shared), "json": xml}
    if kind in (MAP, ARRAY):
        return {"type": kind, "json": plain(shared)}
    return {"type": None, "json": None}


def render(doc: Doc[Any], kinds: dict[str, str | None] | None = None) -> dict[str, Json]:
    """Every root of `doc`, rendered (see the module docstring), by name."""
    return {name: render_root(kind, shared)
            for name, (kind, shared) in typed_roots(doc, kinds).items()}
