"""Rewriting Yjs updates for erasure: structure kept byte for byte, content replaced by
placeholders of the same length, and what pycrdt does when the original content comes back."""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText, merge_updates

from server.write.update_rewrite import erase_content, placeholder, rewrite
from tests.read.logs import trace_updates
from tests.support.replay import load_trace

SECRET = "Zanzibar-7731"


@functools.cache
def trace_log() -> list[bytes]:
    return trace_updates(load_trace(), 3000)


def rich_updates() -> list[bytes]:
    """Every kind of content a Yjs document can carry, one transaction each."""
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    text = doc.get("content", type=Text)
    text.insert(0, f"héllo {SECRET} 😀 wörld")
    text.format(0, 5, {"bold": True, "link": SECRET})
    doc.get("map", type=Map)["key"] = {"nested": [SECRET, 1, 2.5, None, True], "n": 7}
    array = doc.get("array", type=Array)
    array.append(SECRET.encode())
    array.append([SECRET, {"deep": {"deeper": SECRET}}])
    fragment = doc.get("xml", type=XmlFragment)
    fragment.children.append(XmlElement("p", {"title": SECRET}, [XmlText(SECRET)]))
    del text[0:3]
    del subscription
    return [*updates, doc.get_update()]


def utf16(value: str) -> int:
    return len(value.encode("utf-16-le")) // 2


def test_rewriting_without_replacing_gives_back_the_same_bytes() -> None:
    for update in [*trace_log(), *rich_updates(), merge_updates(*trace_log())]:
        assert rewrite(update) == update


@given(st.text())
def test_a_placeholder_has_the_same_utf16_and_utf8_length(value: str) -> None:
    replaced = placeholder(value)
    assert utf16(replaced) == utf16(value)
    assert len(replaced.encode()) == len(value.encode())


def test_erased_updates_decode_and_replay_to_the_same_structure() -> None:
    originals = [*trace_log(), *rich_updates()]
    erased = [erase_content(u) for u in originals]
    plain: Doc[Any] = Doc()
    rewritten: Doc[Any] = Doc()
    for original, replacement in zip(originals, erased, strict=True):
        plain.apply_update(original)
        rewritten.apply_update(replacement)  # every rewritten update decodes and applies
    assert rewritten.get_state() == plain.get_state()
    before = str(plain.get("content", type=Text))
    after = str(rewritten.get("content", type=Text))
    assert len(after) == len(before) and utf16(after) == utf16(before)
    assert after == placeholder(before)
    assert SECRET.encode() not in b"".join(erased)
    assert SECRET not in str(rewritten.get("map", type=Map).to_py())
    assert SECRET not in str(rewritten.get("array", type=Array).to_py())
    assert SECRET not in str(rewritten.get("xml", type=XmlFragment))


def test_a_later_event_applies_at_the_same_place_after_an_erasure() -> None:
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    text = doc.get("content", type=Text)
    text.insert(0, "keep ")
    text.insert(5, SECRET)
    text.insert(5 + len(SECRET), " tail")
    text.insert(len(str(text)), "!")  # after the erased run
    del text[0:2]  # before it
    del subscription
    erased = [updates[0], erase_content(updates[1]), *updates[2:]]
    replayed: Doc[Any] = Doc()
    for update in erased:
        replayed.apply_update(update)
    assert str(replayed.get("content", type=Text)) == "ep " + placeholder(SECRET) + " tail!"


def test_content_already_known_by_id_is_not_integrated_again() -> None:
    """What a reconnecting client does after an erasure: its sync sends the original items,
    whose ids the server has (with placeholders): pycrdt keeps the placeholders."""
    editor: Doc[Any] = Doc()
    updates: list[bytes] = []
    subscription = editor.observe(lambda event: updates.append(event.update))
    editor.get("content", type=Text).insert(0, f"before {SECRET} after")
    del subscription
    server: Doc[Any] = Doc()
    server.apply_update(erase_content(updates[0]))
    expected = str(server.get("content", type=Text))
    assert SECRET not in expected
    server.apply_update(updates[0])  # the original update, resent
    server.apply_update(editor.get_update())  # the client's whole state
    server.apply_update(editor.get_update(server.get_state()))  # its step 2 answer
    assert str(server.get("content", type=Text)) == expected
    assert SECRET.encode() not in server.get_update()
