"""Restoring every root type of a Yjs document to an earlier state, as one update.

For each root (its type read from the states, server/ystructs.py):

- text: the characters and embeds by small edits (the `edits` spans, as a plain-text restore
  does), then every run whose formatting differs formatted as it was (attributes that were
  not there removed);
- XML fragment: its children compared whole; unchanged ones are kept, and a changed one is
  edited in place when it is still the same kind of node (an element of the same tag: its
  attributes set or removed, its children restored the same way, down to its texts restored
  as texts are): a concurrent edit inside a changed block, where the restore does not touch
  it, survives. Only what changed kind (another tag, an element become a text) or what has
  no counterpart is deleted or copied in;
- map: keys that were not there removed, values that differ set to copies of what they were;
- array: items compared whole, the changed ranges replaced.

The result is checked against the target, root by root, rendered as JSON (server/yrender.py):
if anything still differs (a sub-document, a root that changed type, a shape pycrdt cannot
write) the restore is refused with CannotRestore and nothing is applied.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from server.errors import CannotRestore
from server.yrender import SHARED, merged, plain, render_root, xml_tree
from server.ystructs import ARRAY, MAP, TEXT, XML, root_types

Edits = Callable[[str, str], list[tuple[int, int, str]]]
Diff = list[tuple[Any, dict[str, Any] | None]]

# Private-use characters stand for embeds while texts are compared: one per distinct embed.
_EMBED_BASE = 0xF0000


def _flatten(diff: Diff, embeds: dict[str, str], values: dict[str, Any]) -> str:
    out = []
    for insert, _attrs in diff:
        if isinstance(insert, str):
            out.append(insert)
            continue
        key = json.dumps(plain(insert), sort_keys=True)
        if key not in embeds:
            char = chr(_EMBED_BASE + len(embeds))
            embeds[key] = char
            values[char] = insert
        out.append(embeds[key])
    return "".join(out)


def _units(text: str, embeds: dict[str, Any]) -> int:
    """pycrdt's offset of the end of `text`: UTF-8 bytes, an embed one."""
    return sum(1 if c in embeds else len(c.encode()) for c in text)


def _insert(text: Text | XmlText, offset: int, piece: str, values: dict[str, Any]) -> None:
    run: list[str] = []
    for c in piece:
        if c in values:
            if run:
                text.insert(offset, "".join(run))
                offset += len("".join(run).encode())
                run = []
            text.insert_embed(offset, values[c])
            offset += 1
        else:
            run.append(c)
    if run:
        text.insert(offset, "".join(run))


def _runs(diff: Diff) -> list[tuple[int, dict[str, Any]]]:
    return [(len(i.encode()) if isinstance(i, str) else 1, a or {}) for i, a in diff]


def restore_text(text: Text | XmlText, target: Diff, edits: Edits) -> None:
    """Make `text` hold `target`'s characters, embeds and formatting."""
    embeds: dict[str, str] = {}
    values: dict[str, Any] = {}
    current = _flatten(text.diff(), embeds, values)
    wanted = _flatten(target, embeds, values)
    # From the end, so the offsets of earlier spans stay valid.
    for start, end, replacement in reversed(edits(current, wanted)):
        offset = _units(current[:start], values)
        length = _units(current[start:end], values)
        if length:
            del text[offset : offset + length]
        if replacement:
            _insert(text, offset, replacement, values)
    # The characters match now: format each run whose attributes differ.
    have, want = _runs(text.diff()), _runs(target)
    pos = i = j = 0
    used_i = used_j = 0
    while i < len(have) and j < len(want):
        step = min(have[i][0] - used_i, want[j][0] - used_j)
        a, b = have[i][1], want[j][1]
        if plain(a) != plain(b):
            text.format(pos, pos + step, {**{k: None for k in a if k not in b}, **b})
        pos += step
        used_i += step
        used_j += step
        if used_i == have[i][0]:
            i, used_i = i + 1, 0
        if used_j == want[j][0]:
            j, used_j = j + 1, 0


def _fill(shared: Any, source: Any, edits: Edits) -> None:
    """Copy `source` (a shared type of the target doc) into the empty `shared` just made."""
    if isinstance(source, (Text, XmlText)):
        restore_text(shared, source.diff(), edits)
    elif isinstance(source, (XmlFragment, XmlElement)):
        for child in source.children:
            _append_xml(shared, child, edits)
    elif isinstance(source, Map):
        for key in source.keys():
            _set(shared, key, source[key], edits)
    elif isinstance(source, Array):
        for value in source:
            _array_insert(shared, len(shared), value, edits)


def _prelim(value: Any) -> Any:
    if isinstance(value, Doc):
        raise CannotRestore("a sub-document cannot be restored")
    if isinstance(value, XmlText):
        return XmlText()
    if isinstance(value, XmlElement):
        return XmlElement(value.tag, {k: v for k, v in _pairs(value)})
    if isinstance(value, Text):
        return Text()
    if isinstance(value, Map):
        return Map()
    if isinstance(value, Array):
        return Array()
    return value


def _pairs(element: XmlElement) -> list[tuple[str, Any]]:
    pairs: Any = element.attributes  # iterates as (name, value)
    return list(pairs)


def _set(target: Map[Any], key: str, value: Any, edits: Edits) -> None:
    target[key] = _prelim(value)
    if _prelim(value) is not value:
        _fill(target[key], value, edits)


def _array_insert(target: Array[Any], index: int, value: Any, edits: Edits) -> None:
    prelim = _prelim(value)
    target.insert(index, prelim)
    if prelim is not value:
        _fill(target[index], value, edits)


def _append_xml(parent: XmlFragment | XmlElement, child: Any, edits: Edits,
                index: int | None = None) -> None:
    at = len(parent.children) if index is None else index
    made = parent.children.insert(at, _prelim(child))
    _fill(made if made is not None else parent.children[at], child, edits)


def _signature(value: Any) -> str:
    if isinstance(value, (XmlElement, XmlText)):
        return json.dumps(xml_tree(value), sort_keys=True)
    return json.dumps(plain(value), sort_keys=True)


def _replace_ranges(current: Sequence[Any], target: Sequence[Any],
                    delete: Callable[[int, int], None],
                    insert: Callable[[int, Any], None]) -> None:
    a = [_signature(v) for v in current]
    b = [_signature(v) for v in target]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in reversed(matcher.get_opcodes()):
        if tag == "equal":
            continue
        if i2 > i1:
            delete(i1, i2)
        for k, value in enumerate(target[j1:j2]):
            insert(i1 + k, value)


def _same_kind(current: Any, target: Any) -> bool:
    if isinstance(current, XmlText) and isinstance(target, XmlText):
        return True
    return (isinstance(current, XmlElement) and isinstance(target, XmlElement)
            and current.tag == target.tag)


def restore_xml_node(current: Any, target: Any, edits: Edits) -> None:
    """Make `current` equal `target` (of the same kind) by editing it, never replacing it."""
    if isinstance(current, XmlText) and isinstance(target, XmlText):
        restore_text(current, target.diff(), edits)
        return
    assert isinstance(current, XmlElement) and isinstance(target, XmlElement)
    have, want = dict(_pairs(current)), dict(_pairs(target))
    for key in [k for k in have if k not in want]:
        del current.attributes[key]
    for key, value in want.items():
        if key not in have or plain(have[key]) != plain(value):
            current.attributes[key] = value
    restore_xml_children(current, target, edits)


def restore_xml_children(current: XmlFragment | XmlElement,
                         target: XmlFragment | XmlElement, edits: Edits) -> None:
    """Make `current`'s children equal `target`'s: equal ones kept, changed ones paired in
    order within each changed range and edited in place when of the same kind, the rest
    deleted or copied in."""
    have, want = list(current.children), list(target.children)
    matcher = difflib.SequenceMatcher(None, [_signature(v) for v in have],
                                      [_signature(v) for v in want], autojunk=False)
    # From the end, so the indexes of earlier ranges stay valid.
    for tag, i1, i2, j1, j2 in reversed(matcher.get_opcodes()):
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1)
        if i2 - i1 > paired:
            del current.children[i1 + paired : i2]
        for k in range(paired, j2 - j1):
            _append_xml(current, want[j1 + k], edits, i1 + k)
        for k in reversed(range(paired)):
            if _same_kind(have[i1 + k], want[j1 + k]):
                restore_xml_node(have[i1 + k], want[j1 + k], edits)
            else:
                del current.children[i1 + k]
                _append_xml(current, want[j1 + k], edits, i1 + k)


def restore_root(kind: str, current: Any, target: Any, edits: Edits) -> None:
    if kind == TEXT:
        restore_text(current, target.diff(), edits)
    elif kind == MAP:
        for key in [k for k in current.keys() if k not in target]:
            del current[key]
        for key in target.keys():
            value = target[key]
            if key not in current or _signature(current[key]) != _signature(value):
                _set(current, key, value, edits)
    elif kind == ARRAY:
        def delete(i: int, j: int) -> None:
            del current[i:j]
        _replace_ranges(list(current), list(target), delete,
                        lambda i, v: _array_insert(current, i, v, edits))
    elif kind == XML:
        restore_xml_children(current, target, edits)


def _comparable(rendered: Any) -> Any:
    """A rendering with every delta merged (see yrender.merged), nested ones included."""
    if isinstance(rendered, dict):
        # An XML string splits where its runs split: the tree says the same, merged.
        return {k: merged(v) if k == "delta" else _comparable(v) for k, v in rendered.items()
                if not (rendered.get("type") == XML and k in ("xml", "json"))}
    if isinstance(rendered, list):
        return [_comparable(v) for v in rendered]
    return rendered


def plan_whole_restore(state: bytes, target: bytes, edits: Edits) -> bytes | None:
    """The update making the doc of `state` equal to the doc of `target` in every root;
    None when it already is. CannotRestore if some root cannot be made equal."""
    scratch: Doc[Any] = Doc()
    scratch.apply_update(state)
    wanted: Doc[Any] = Doc()
    wanted.apply_update(target)
    kinds_now, kinds_then = root_types(state), root_types(target)
    kinds_now.setdefault("content", TEXT)  # the plain-text root: typed even when empty
    before = scratch.get_state()
    checks: list[tuple[str, str, Any, Any]] = []
    try:
        with scratch.transaction():
            for name in sorted(set(kinds_now) | set(kinds_then)):
                now, then = kinds_now.get(name), kinds_then.get(name)
                if now is not None and then is not None and now != then:
                    raise CannotRestore(f"the root type {name!r} held a {then} then and "
                                        f"holds a {now} now: a root cannot change its type")
                kind = now or then
                if kind is None:
                    continue  # nothing but deleted content on either side
                current = scratch.get(name, type=SHARED[kind])
                previous = wanted.get(name, type=SHARED[kind])
                restore_root(kind, current, previous, edits)
                checks.append((name, kind, current, previous))
        for name, kind, current, previous in checks:
            if _comparable(render_root(kind, current)) != _comparable(render_root(kind, previous)):
                raise CannotRestore(f"the {kind} {name!r} cannot be restored exactly; nothing "
                                    "was changed")
    except CannotRestore:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # a pycrdt panic or a shape it cannot write
        raise CannotRestore(f"this document holds content that cannot be restored "
                            f"({type(exc).__name__}); nothing was changed") from None
    update = scratch.get_update(before)
    # An update with no structs and no deletions: the document already is what it was.
    return None if update == b"\x00\x00" else update
