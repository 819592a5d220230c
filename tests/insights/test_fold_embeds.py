"""The insight fold keeps its text aligned with Yjs's offsets when a Y.Text holds embeds (an
embed counts one unit, as in the read side's text ops), and long runs without whitespace cost
a bounded walk."""

from __future__ import annotations

from server.read.insight_fold import MAX_WORD, fold_delta
from server.read.textops import EMBED


def test_an_embed_takes_one_unit_so_later_offsets_land_where_yjs_puts_them() -> None:
    content = bytearray(b"ab")
    fold_delta(content, [{"retain": 1}, {"insert": {"image": "x.png"}}])
    # The next edit's offsets count the embed, as Yjs's do: "c" goes after "b".
    fold_delta(content, [{"retain": 3}, {"insert": "c"}])
    assert content == b"a" + EMBED.encode() + b"bc"


def test_words_are_counted_the_same_past_a_run_longer_than_the_walk() -> None:
    content = bytearray(b"s" * (MAX_WORD * 4))
    _, _, words = fold_delta(content, [{"retain": len(content)}, {"insert": "s" * 100}])
    assert words == 0  # still one word
    _, _, words = fold_delta(content, [{"retain": len(content)}, {"insert": " two words"}])
    assert words == 2
