"""The pure parts of the read side: text ops, revision grouping, the attributed diff, and
restore planning. Random cases are checked against plain string replays."""

from __future__ import annotations

import itertools
import random

import pytest
from pycrdt import Doc, Text

from server.read.diff import INSERT, Change, attributed_diff, word_changes
from server.read.revisions import EDIT, RESTORE, GroupingRules, Revision, extend
from server.read.textops import Op, apply_delta, apply_ops, counts, revert_ops
from server.worddiff import tokens, word_diff
from server.write.restore import edits, plan_restore

RULES = GroupingRules(idle_gap=60.0, max_chars=100, max_events=10)


def random_ops(rng: random.Random, text: str, alphabet: str = "abcé😀 ") -> tuple[list[Op], str]:
    """Random single-event ops on `text` (byte offsets), and the text after them."""
    ops: list[Op] = []
    for _ in range(rng.randint(1, 3)):
        if text and rng.random() < 0.4:
            start = rng.randint(0, len(text) - 1)
            end = min(len(text), start + rng.randint(1, 4))
            ops.append((len(text[:start].encode()), text[start:end], ""))
            text = text[:start] + text[end:]
        else:
            at = rng.randint(0, len(text))
            inserted = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5)))
            ops.append((len(text[:at].encode()), "", inserted))
            text = text[:at] + inserted + text[at:]
    return ops, text


def test_apply_delta_reports_what_it_deleted_and_inserted() -> None:
    content = bytearray("héllo world".encode())
    ops = apply_delta(content, [{"retain": 1}, {"delete": 2}, {"insert": "e"},
                                {"retain": 6}, {"insert": "!"}])
    assert content.decode() == "hello wo!rld"
    assert ops == [(1, "é", "e"), (8, "", "!")]
    assert counts(ops) == (2, 1)


def test_ops_replay_forward_and_back() -> None:
    rng = random.Random(5)
    texts = [""]
    history: list[list[Op]] = []
    for _ in range(300):
        ops, after = random_ops(rng, texts[-1])
        history.append(ops)
        texts.append(after)
    content = bytearray()
    for i, ops in enumerate(history):
        apply_ops(content, ops)
        assert content.decode() == texts[i + 1]
    for i in range(len(history) - 1, -1, -1):
        revert_ops(content, history[i])
        assert content.decode() == texts[i]


def _rev(**kw: object) -> Revision:
    base: dict[str, object] = dict(number=1, from_seq=1, to_seq=1, authors=("ann",),
                                   started_at=0.0, ended_at=0.0, inserted=1, deleted=0,
                                   events=1, kind=EDIT)
    base.update(kw)
    return Revision(**base)  # type: ignore[arg-type]


def _next(last: Revision | None, actor: str = "ann", time: float = 1.0, kind: str = EDIT,
          inserted: int = 1) -> Revision:
    return extend(last, seq=(last.to_seq + 1 if last else 1), actor=actor, time=time,
                  kind=kind, inserted=inserted, deleted=0, rules=RULES)


def test_a_revision_grows_while_one_author_keeps_typing() -> None:
    grown = _next(_rev())
    assert (grown.number, grown.from_seq, grown.to_seq, grown.events, grown.inserted) == (
        1, 1, 2, 2, 2)


def test_two_authors_typing_together_share_one_revision() -> None:
    first = _next(None)
    joint = _next(_next(first, actor="bob", time=2.0), time=3.0, inserted=2)
    assert (joint.number, joint.authors, joint.events, joint.inserted) == (
        1, ("ann", "bob"), 3, 4)
    assert joint.shares == (("ann", 2, 3, 0), ("bob", 1, 1, 0))


def test_a_revision_closes_when_something_else_happened_in_the_log_between() -> None:
    # A named version (or a rename) took seq 2: the edit at seq 3 starts a new revision.
    later = extend(_rev(), seq=3, actor="ann", time=1.0, kind=EDIT, inserted=1, deleted=0,
                   rules=RULES)
    assert (later.number, later.from_seq) == (2, 3)


def test_a_revision_closes_after_an_idle_gap() -> None:
    assert _next(_rev(), time=59.0).number == 1
    assert _next(_rev(), time=61.0).number == 2


def test_a_revision_closes_past_its_size() -> None:
    assert _next(_rev(inserted=99)).number == 1
    assert _next(_rev(inserted=100)).number == 2
    assert _next(_rev(events=10)).number == 2


def test_a_restore_is_a_revision_of_its_own() -> None:
    restored = extend(_rev(), seq=2, actor="bob", time=1.0, kind=RESTORE, inserted=1,
                      deleted=0, rules=RULES, restored_from=1)
    assert (restored.number, restored.kind, restored.restored_from) == (2, RESTORE, 1)
    assert _next(restored).number == 3
    assert _next(restored).number == 3


def test_the_first_revision_is_number_one() -> None:
    first = _next(None, actor="cy", time=5.0)
    assert (first.number, first.authors, first.started_at) == (1, ("cy",), 5.0)


@pytest.mark.parametrize("seed", range(20))
def test_diff_runs_rebuild_both_texts_and_name_their_authors(seed: int) -> None:
    rng = random.Random(seed)
    base = "".join(rng.choice("xyz é") for _ in range(rng.randint(0, 30)))
    text = base
    events: list[tuple[str, list[Op]]] = []
    for _ in range(rng.randint(0, 40)):
        actor = rng.choice(["ann", "bob"])
        ops, text = random_ops(rng, text)
        events.append((actor, ops))
    changes = attributed_diff(base, events)
    assert "".join(c.text for c in changes if c.op != "insert") == base
    assert "".join(c.text for c in changes if c.op != "delete") == text
    for c in changes:
        assert c.text
        assert (c.author is None) == (c.op == "keep")
    for a, b in itertools.pairwise(changes):
        assert (a.op, a.author) != (b.op, b.author), "adjacent runs should merge"


def test_diff_attributes_each_run_to_who_made_it() -> None:
    base = "the cat sat"
    events = [
        ("ann", [(4, "cat", "dog")]),
        ("bob", [(11, "", " down")]),
        ("cy", [(0, "the ", "")]),
        ("ann", [(7, " down", "")]),  # ann removes bob's words: they vanish from the diff
    ]
    runs = [(c.op, c.text, c.author) for c in attributed_diff(base, events)]
    assert runs == [
        ("delete", "the ", "cy"),
        ("delete", "cat", "ann"),
        ("insert", "dog", "ann"),
        ("keep", " sat", None),
    ]


@pytest.mark.parametrize("seed", range(10))
def test_restore_plan_turns_the_text_into_the_target(seed: int) -> None:
    rng = random.Random(seed)
    doc: Doc = Doc()
    text = doc.get("content", type=Text)
    text.insert(0, "".join(rng.choice("ab é😀\n") for _ in range(rng.randint(0, 60))))
    current = str(text)
    target = "".join(rng.choice("ab é😀\n") for _ in range(rng.randint(0, 60)))
    then: Doc = Doc()
    then.get("content", type=Text).insert(0, target)
    update = plan_restore(doc.get_update(), then.get_update())
    if current == target:
        assert update is None
        return
    assert update is not None
    doc.apply_update(update)
    assert str(text) == target


def test_restore_edits_keep_common_prefix_and_suffix() -> None:
    assert edits("hello brave world", "hello world") == [(6, 12, "")]
    assert edits("same", "same") == []


def test_a_word_diff_changes_whole_words_and_spells_both_texts() -> None:
    old, new = "Why cities need infrastructure", "Shade cities in need more infrastructure"
    diffs = word_diff(old, new)
    assert "".join(t for op, t in diffs if op != 1) == old
    assert "".join(t for op, t in diffs if op != -1) == new
    changed = [t for op, t in diffs if op != 0]
    assert all(w in tokens(old) + tokens(new) or " " in w for w in changed)
    assert (-1, "Why") in diffs and (1, "Shade") in diffs


def test_word_changes_carry_each_authors_part() -> None:
    runs = attributed_diff("", [("ann", [[0, "", "abc "]]), ("bob", [[4, "", "def"]])])
    assert word_changes("", "abc def", runs) == [Change(INSERT, "abc ", "ann"),
                                                   Change(INSERT, "def", "bob")]
    # Without a replay (a long range) the words are the same, without authors.
    assert [c.author for c in word_changes("", "abc def", None)] == [None]


def test_restore_spans_replace_whole_words() -> None:
    current = "Shade cities in need more infrastructure"
    target = "Why cities need infrastructure"
    spans_ = edits(current, target)
    rebuilt = current
    for start, end, replacement in reversed(spans_):
        rebuilt = rebuilt[:start] + replacement + rebuilt[end:]
    assert rebuilt == target
    for start, end, _ in spans_:  # every span starts and ends at a word's edge
        assert start == 0 or not (current[start - 1].isalnum() and current[start].isalnum())
        assert end == len(current) or not (current[end - 1].isalnum() and current[end].isalnum())
    assert (0, 5, "Why") in spans_  # not "W" kept and "hy" typed into "Shade"
