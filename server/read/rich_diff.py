"""What changed in every root type between two renderings of a document (server/yrender.py).

- text: runs of `keep`, `insert`, `delete` by words, each with its attributes, and `format`
  runs where the characters stayed and their attributes changed (`from`, `to`);
- XML: its blocks (top-level elements and texts) matched whole: `keep`, `insert`, `delete`,
  and `change` for a block that stayed the same kind of block (its tag) with its text diffed
  in words (and its attributes before and after);
- map: `{key, op: insert|delete|change, from?, to?}`; array: items matched whole.

Pure: it compares two renderings, so it shows what differs, not who did it (the attributed
text diff of `content` is GET /diff).
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from server.yrender import merged

Json = Any
_WORD = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


def _tokens(delta: list[Json]) -> list[tuple[str, str]]:
    """(token, attributes as JSON) for a delta: words, spaces, signs; an embed is a token."""
    out: list[tuple[str, str]] = []
    for op in merged(delta):
        attrs = json.dumps(op.get("attributes") or {}, sort_keys=True)
        insert = op["insert"]
        if isinstance(insert, str):
            out += [(t, attrs) for t in _WORD.findall(insert)]
        else:
            out.append((json.dumps(insert, sort_keys=True), attrs))
    return out


def _push(out: list[Json], op: str, text: str, attrs: str, extra: Json = None) -> None:
    entry: dict[str, Json] = {"op": op, "text": text}
    if attrs != "{}":
        entry["attributes"] = json.loads(attrs)
    if extra:
        entry.update(extra)
    last = out[-1] if out else None
    if last is not None and {k: v for k, v in last.items() if k != "text"} == \
            {k: v for k, v in entry.items() if k != "text"}:
        last["text"] += text
    else:
        out.append(entry)


def text_diff(before: list[Json], after: list[Json]) -> list[Json]:
    """Word runs kept, inserted, deleted, or formatted differently."""
    a, b = _tokens(before), _tokens(after)
    out: list[Json] = []
    matcher = difflib.SequenceMatcher(None, [t for t, _ in a], [t for t, _ in b],
                                      autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for (token, was), (_, now) in zip(a[i1:i2], b[j1:j2], strict=True):
                if was == now:
                    _push(out, "keep", token, now)
                else:
                    _push(out, "format", token, now,
                          {"from": json.loads(was), "to": json.loads(now)})
            continue
        for token, attrs in a[i1:i2]:
            _push(out, "delete", token, attrs)
        for token, attrs in b[j1:j2]:
            _push(out, "insert", token, attrs)
    return out


def _block_text(node: Json) -> list[Json]:
    """A block's text as one delta (its XML texts in order, nested elements flattened)."""
    if "delta" in node:
        return list(node["delta"])
    out: list[Json] = []
    for child in node.get("children", []):
        out += _block_text(child)
    return out


def xml_diff(before: list[Json], after: list[Json]) -> list[Json]:
    """Blocks kept, inserted, deleted, or changed (same tag) with their text in words."""
    def key(node: Json) -> str:
        return json.dumps(node, sort_keys=True)

    out: list[Json] = []
    matcher = difflib.SequenceMatcher(None, [key(n) for n in before], [key(n) for n in after],
                                      autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out += [{"op": "keep", "block": n.get("tag")} for n in before[i1:i2]]
            continue
        olds, news = before[i1:i2], after[j1:j2]
        while olds and news and olds[0].get("tag") == news[0].get("tag"):
            old, new = olds.pop(0), news.pop(0)
            change: dict[str, Json] = {"op": "change", "block": new.get("tag"),
                                       "text": text_diff(_block_text(old), _block_text(new))}
            if old.get("attributes") != new.get("attributes"):
                change["attributes"] = {"from": old.get("attributes"),
                                        "to": new.get("attributes")}
            out.append(change)
        out += [{"op": "delete", "block": n.get("tag"), "node": n} for n in olds]
        out += [{"op": "insert", "block": n.get("tag"), "node": n} for n in news]
    return out


def map_diff(before: dict[str, Json], after: dict[str, Json]) -> list[Json]:
    out: list[Json] = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            out.append({"key": key, "op": "delete", "from": before[key]})
        elif key not in before:
            out.append({"key": key, "op": "insert", "to": after[key]})
        elif before[key] != after[key]:
            out.append({"key": key, "op": "change", "from": before[key], "to": after[key]})
    return out


def array_diff(before: list[Json], after: list[Json]) -> list[Json]:
    out: list[Json] = []
    keys = [[json.dumps(v, sort_keys=True) for v in side] for side in (before, after)]
    matcher = difflib.SequenceMatcher(None, keys[0], keys[1], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.append({"op": "keep", "count": i2 - i1})
            continue
        if i2 > i1:
            out.append({"op": "delete", "items": before[i1:i2]})
        if j2 > j1:
            out.append({"op": "insert", "items": after[j1:j2]})
    return out


def roots_diff(before: dict[str, Json], after: dict[str, Json]) -> dict[str, Json]:
    """By root name: `{type, changes}` for every root that differs (an absent root is empty)."""
    out: dict[str, Json] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        kind = (new or {}).get("type") or (old or {}).get("type")
        if kind is None or old == new:
            continue
        if kind == "text":
            changes = text_diff((old or {}).get("delta", []), (new or {}).get("delta", []))
        elif kind == "xml":
            changes = xml_diff((old or {}).get("children", []), (new or {}).get("children", []))
        elif kind == "map":
            changes = map_diff((old or {}).get("json") or {}, (new or {}).get("json") or {})
        else:
            changes = array_diff((old or {}).get("json") or [], (new or {}).get("json") or [])
        if kind != "text" or any(c["op"] != "keep" for c in changes):
            out[name] = {"type": kind, "changes": changes}
    return out
