"""Every Yjs root type: read from an update's structure, rendered, restored (pure, pycrdt)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from server.errors import CannotRestore
from server.read.rich_diff import text_diff, xml_diff
from server.root_watch import RootWatch
from server.write.restore import plan_restore
from server.yrender import render
from server.ystructs import root_types


def _rich(rng: random.Random) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    text = doc.get("content", type=Text)
    quill = doc.get("quill", type=Text)
    pm = doc.get("prosemirror", type=XmlFragment)
    meta = doc.get("meta", type=Map)
    items = doc.get("items", type=Array)
    text.insert(0, "plain 😀 text")
    quill.insert(0, "bold and plain", {"bold": True})
    quill.insert_embed(4, {"image": "a.png"})
    for i in range(3):
        block = pm.children.append(XmlElement("paragraph" if i else "heading",
                                              {"level": 2} if not i else {}))
        words = block.children.append(XmlText())
        words.insert(0, f"block {i} " + "x" * rng.randint(0, 5), {"strong": {}} if i else None)
    meta["title"] = "T"
    meta["json"] = {"z": 1, "a": [1, 2, {"q": None}]}
    meta["nested"] = Map({"k": "v"})
    items.extend([1, "two", {"three": 3}])
    return doc


def _mutate(doc: Doc[Any], rng: random.Random) -> None:
    quill = doc.get("quill", type=Text)
    quill.format(0, 3, {"italic": True, "bold": None})
    quill.insert_embed(0, {"formula": "e=mc^2"})
    quill.insert(len(quill), " more", {"link": "https://x"})
    del doc.get("content", type=Text)[0:6]
    pm = doc.get("prosemirror", type=XmlFragment)
    del pm.children[rng.randrange(len(pm.children))]
    pm.children.append(XmlElement("blockquote", {"cite": "y"}))
    first = pm.children[0]
    assert isinstance(first, XmlElement)
    first.attributes["level"] = 3
    meta = doc.get("meta", type=Map)
    meta["title"] = "changed"
    del meta["json"]
    meta["new"] = [1, 2]
    items = doc.get("items", type=Array)
    del items[0]
    items.append("four")
    doc.get("later", type=Map)["x"] = 1


def test_root_types_are_read_from_the_state() -> None:
    doc = _rich(random.Random(1))
    assert root_types(doc.get_update()) == {
        "content": "text", "quill": "text", "prosemirror": "xml", "meta": "map", "items": "array"}


def test_rendering_gives_text_delta_xml_trees_maps_and_arrays() -> None:
    doc: Doc[Any] = Doc()
    doc.apply_update(_rich(random.Random(1)).get_update())  # untyped roots, as a server has
    roots = render(doc)
    assert roots["content"] == {"type": "text", "text": "plain 😀 text",
                                "delta": [{"insert": "plain 😀 text"}], "json": "plain 😀 text"}
    assert roots["quill"]["text"] == "bold and plain"
    assert {"insert": {"image": "a.png"}, "attributes": {"bold": True}} in roots["quill"]["delta"]
    assert roots["prosemirror"]["children"][0]["tag"] == "heading"
    assert roots["prosemirror"]["children"][0]["attributes"] == {"level": 2}
    assert roots["prosemirror"]["xml"].startswith('<heading level="2">block 0 ')
    assert roots["meta"]["json"]["json"] == {"z": 1, "a": [1, 2, {"q": None}]}
    assert roots["meta"]["json"]["nested"] == {"k": "v"}
    assert roots["items"] == {"type": "array", "json": [1, "two", {"three": 3}]}


@pytest.mark.parametrize("seed", range(8))
def test_restore_makes_every_root_type_what_it_was(seed: int) -> None:
    rng = random.Random(seed)
    doc = _rich(rng)
    then = doc.get_update()
    expected = render(_loaded(then))
    _mutate(doc, rng)
    assert render(_loaded(doc.get_update())) != expected
    update = plan_restore(doc.get_update(), then)
    assert update is not None
    doc.apply_update(update)
    restored = render(_loaded(doc.get_update()))
    assert {k: v for k, v in restored.items() if k != "later"} == expected
    assert restored["later"] == {"type": "map", "json": {}}  # created after: emptied


def test_restoring_xml_edits_changed_blocks_in_place_so_concurrent_edits_in_them_survive(
        ) -> None:
    doc: Doc[Any] = Doc()
    pm = doc.get("prosemirror", type=XmlFragment)
    for i, words in enumerate(["alpha one", "beta two", "gamma three"]):
        block = pm.children.append(XmlElement("heading" if i == 0 else "paragraph",
                                              {"level": 1} if i == 0 else {}))
        block.children.append(XmlText()).insert(0, words)
    then = doc.get_update()
    first, third = pm.children[0], pm.children[2]
    assert isinstance(first, XmlElement) and isinstance(third, XmlElement)
    first.attributes["level"] = 2
    words = third.children[0]
    assert isinstance(words, XmlText)
    words.format(0, 5, {"strong": {}})
    words.insert(len(str(words)), " typed")
    # Another client, in sync so far, keeps typing at the end of that block while the
    # restore is planned.
    other: Doc[Any] = Doc()
    other.apply_update(doc.get_update())
    before = other.get_state()
    theirs = other.get("prosemirror", type=XmlFragment).children[2].children[0]
    theirs.insert(len(str(theirs)), " concurrent")
    concurrent = other.get_update(before)
    update = plan_restore(doc.get_update(), then)
    assert update is not None
    doc.apply_update(update)
    doc.apply_update(concurrent)
    other.apply_update(update)
    assert render(_loaded(doc.get_update())) == render(_loaded(other.get_update()))
    blocks = render(_loaded(doc.get_update()))["prosemirror"]["children"]
    assert blocks[0] == {"tag": "heading", "attributes": {"level": 1},
                         "children": [{"delta": [{"insert": "alpha one"}]}]}
    assert blocks[2]["children"] == [{"delta": [{"insert": "gamma three concurrent"}]}]
    assert pm.children[2] == third  # the same element, edited: never deleted and copied


def test_restoring_an_equal_document_plans_nothing() -> None:
    doc = _rich(random.Random(3))
    assert plan_restore(doc.get_update(), doc.get_update()) is None


def test_a_root_that_changed_type_cannot_be_restored() -> None:
    then: Doc[Any] = Doc()
    then.get("x", type=Text).insert(0, "text")
    now: Doc[Any] = Doc()
    now.get("x", type=Map)["k"] = 1
    with pytest.raises(CannotRestore):
        plan_restore(now.get_update(), then.get_update())


def test_revisions_count_changes_in_every_root_type() -> None:
    source: Doc[Any] = Doc()
    doc: Doc[Any] = Doc()
    watch = RootWatch(doc)

    def sync() -> tuple[int, int]:
        doc.apply_update(source.get_update(doc.get_state()))
        watch.after_apply()
        return watch.take()

    fragment = source.get("pm", type=XmlFragment)
    block = fragment.children.append(XmlElement("p"))
    block.children.append(XmlText("hey"))
    assert sync() == (4, 0)  # an element and three characters
    meta = source.get("m", type=Map)
    meta["k"] = 1
    assert sync() == (1, 0)
    meta["k"] = 2
    assert sync() == (1, 1)
    words = block.children[0]
    assert isinstance(words, XmlText)
    words.format(0, 2, {"bold": True})
    assert sync() == (2, 0)


def _loaded(update: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    return doc


def test_a_formatted_text_diff_shows_formatting_changes_as_such() -> None:
    changes = text_diff([{"insert": "hello brave world"}],
                        [{"insert": "hello ", "attributes": {"bold": True}},
                         {"insert": "new world"}])
    assert changes == [
        {"op": "format", "text": "hello ", "attributes": {"bold": True}, "from": {},
         "to": {"bold": True}},
        {"op": "delete", "text": "brave"},
        {"op": "insert", "text": "new"},
        {"op": "keep", "text": " world"},
    ]


def test_an_xml_diff_names_the_blocks_that_changed_with_their_words() -> None:
    def block(tag: str, text: str) -> dict[str, Any]:
        return {"tag": tag, "attributes": {}, "children": [{"delta": [{"insert": text}]}]}

    changes = xml_diff([block("p", "one two"), block("h", "T")],
                       [block("p", "one three"), block("h", "T"), block("p", "new")])
    assert changes[0] == {"op": "change", "block": "p", "text": [
        {"op": "keep", "text": "one "}, {"op": "delete", "text": "two"},
        {"op": "insert", "text": "three"}]}
    assert changes[1] == {"op": "keep", "block": "h"}
    assert changes[2]["op"] == "insert" and changes[2]["block"] == "p"
