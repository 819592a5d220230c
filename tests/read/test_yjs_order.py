"""What yrs does unlike Yjs, and how the server keeps to Yjs: clock gaps held back, JSON
objects' key order kept (pure, pycrdt)."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map, Text

from server.ydoc import PendingUpdates
from server.ykeyorder import KeyOrders, merge_keeping_order
from server.ystructs import split_ready


def _edits() -> tuple[bytes, bytes, bytes]:
    """A client's first edit, its offline edit (the gap), and its next one."""
    source: Doc[Any] = Doc()
    text = source.get("t", type=Text)
    text.insert(0, "hello")
    first = source.get_update()
    before_gap = source.get_state()
    text.insert(5, " world")
    after_gap = source.get_state()
    gap = source.get_update(before_gap)
    text.insert(1, "Q")  # its origins are in `first`, its clock past the gap
    return first, gap, source.get_update(after_gap)


def test_a_struct_past_a_gap_in_its_clients_clocks_waits_as_in_yjs() -> None:
    first, gap, later = _edits()
    doc: Doc[Any] = Doc()
    pending = PendingUpdates()
    pending.apply(doc, first)
    assert split_ready(later, doc.get_state())[0] is None  # all of it held
    assert pending.apply(doc, later) is True
    assert str(doc.get("t", type=Text)) == "hello"  # Yjs shows no Q yet; yrs alone would
    assert pending.apply(doc, gap) is False
    assert str(doc.get("t", type=Text)) == "hQello world"
    assert not pending


def test_deletions_in_an_update_whose_structs_wait_apply_at_once_as_in_yjs() -> None:
    # One client's update holding a struct past a gap in its clocks (held) and the deletion
    # of a character the server has (applied now: Yjs holds structs, not known deletions).
    # Client ids fixed so that the update takes split_ready's one-client fast path.
    source: Doc[Any] = Doc(client_id=5)
    source.get("t", type=Text).insert(0, "hello")
    first = source.get_update()
    writer: Doc[Any] = Doc(client_id=7)
    writer.apply_update(first)
    text = writer.get("t", type=Text)
    text.insert(0, "R")  # never sent: the gap
    sent = writer.get_state()
    text.insert(1, "!")
    del text[6]  # the "o" of "hello"
    update = writer.get_update(sent)
    assert update[:1] == b"\x01" and b"\x0a" not in update
    doc: Doc[Any] = Doc()
    pending = PendingUpdates()
    pending.apply(doc, first)
    ready, held = split_ready(update, doc.get_state())
    assert ready is not None and held is not None
    assert pending.apply(doc, update) is True
    assert str(doc.get("t", type=Text)) == "hell"  # the "o" gone, the "!" waits
    pending.apply(doc, writer.get_update(doc.get_state()))
    assert str(doc.get("t", type=Text)) == str(text) == "R!hell"


def test_a_deletion_that_arrives_before_its_item_is_stored_snapshotted_and_applied() -> None:
    # A reconnecting client's backspace reaches the server before the offline edit it erases.
    writer: Doc[Any] = Doc(client_id=7)
    text = writer.get("t", type=Text)
    text.insert(0, "hello")
    typed = writer.get_update()
    before = writer.get_state()
    del text[4]
    backspace = writer.get_update(before)
    doc: Doc[Any] = Doc()
    pending = PendingUpdates()
    assert pending.apply(doc, backspace) is True  # nothing shows yet, but it must be stored
    again: Doc[Any] = Doc()
    reloaded = PendingUpdates()
    reloaded.apply(again, pending.snapshot_state(doc))  # yrs alone encodes no deletion here
    for d, p in ((doc, pending), (again, reloaded)):
        p.apply(d, typed)
        assert str(d.get("t", type=Text)) == "hell"
        assert not p


def test_held_structs_are_in_the_snapshot_and_come_back_held() -> None:
    first, _gap, later = _edits()
    doc: Doc[Any] = Doc()
    pending = PendingUpdates()
    pending.apply(doc, first)
    pending.apply(doc, later)
    again: Doc[Any] = Doc()
    reloaded = PendingUpdates()
    reloaded.apply(again, pending.snapshot_state(doc))
    assert str(again.get("t", type=Text)) == "hello" and reloaded


def test_json_objects_keep_their_writers_key_order_through_yrs() -> None:
    source: Doc[Any] = Doc()
    meta = source.get("m", type=Map)
    meta["k"] = {key: i for i, key in enumerate("zyxwvutsrq")}
    meta["n"] = {"q": {"z": 1, "a": [{"y": 1, "b": 2}]}, "p": 2}
    written = source.get_update()
    orders = KeyOrders()
    orders.learn(written)
    server: Doc[Any] = Doc()
    server.apply_update(written)
    assert orders.restore(server.get_update()) == written


def test_merging_keeps_key_order() -> None:
    source: Doc[Any] = Doc()
    meta = source.get("m", type=Map)
    meta["a"] = {key: i for i, key in enumerate("zyxwvutsrq")}
    one = source.get_update()
    state = source.get_state()
    meta["b"] = {"zz": 1, "aa": 2, "mm": 3}
    two = source.get_update(state)
    written = KeyOrders()  # the orders as written (pycrdt itself writes yrs's order)
    written.learn(one)
    written.learn(two)
    merged = KeyOrders()
    merged.learn(merge_keeping_order(one, two))
    assert merged.orders == written.orders
