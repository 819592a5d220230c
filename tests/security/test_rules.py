"""The pure rules behind access control: roles per pattern, origins, rate buckets."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Map, Text
from starlette.requests import HTTPConnection

from server.auth import origin_allowed, role_for
from server.errors import InvalidUpdate, RateLimited, TooLarge
from server.realtime.limits import ConnectionCounts, ConnectionRate, DocumentSize, TokenBucket
from server.settings import Limits, Settings
from server.write.update_guard import only_text, reencodes, scan
from tests.security import corpus


def test_exact_document_wins_then_the_longest_pattern() -> None:
    grants = {"*": "read", "team-*": "write", "team-secret": "read", "team-a*": "admin"}
    assert role_for(grants, "team-secret") == "read"
    assert role_for(grants, "team-abc") == "admin"
    assert role_for(grants, "team-b") == "write"
    assert role_for(grants, "anything") == "read"
    assert role_for({"team-*": "write"}, "other") is None


def connection(headers: dict[str, str]) -> HTTPConnection:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    return HTTPConnection({"type": "websocket", "headers": raw, "path": "/ws/d",
                           "query_string": b""})


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        (None, (), True),
        ("http://h:8000", (), True),
        ("https://h:8000", (), True),
        ("http://evil:8000", (), False),
        ("null", (), False),
        ("https://app.example", ("https://app.example",), True),
        ("http://h:8000", ("https://app.example",), False),
        ("https://any.example", ("*",), True),
    ],
)
def test_origin_is_judged_against_the_allow_list_or_the_servers_own(
    origin: str | None, allowed: tuple[str, ...], ok: bool
) -> None:
    headers = {"host": "h:8000"} | ({"origin": origin} if origin else {})
    assert origin_allowed(connection(headers), Settings(allowed_origins=allowed)) is ok


def test_token_bucket_allows_a_seconds_burst_then_the_rate() -> None:
    bucket = TokenBucket(10, now=0.0)
    assert all(bucket.take(1, 0.0) for _ in range(10))
    assert not bucket.take(1, 0.0)
    assert bucket.take(1, 0.1)
    assert not bucket.take(1, 0.1)
    big = TokenBucket(100, now=0.0)
    assert big.take(1000, 0.0)  # a full bucket lets one oversized message through
    assert not big.take(1, 1.0)


def test_connection_rate_counts_messages_and_bytes() -> None:
    rate = ConnectionRate(Limits(messages_per_second=5, bytes_per_second=100), now=0.0)
    for _ in range(5):
        rate.check(1, now=0.0)
    with pytest.raises(RateLimited, match="messages"):
        rate.check(1, now=0.0)
    by_bytes = ConnectionRate(Limits(messages_per_second=0, bytes_per_second=100), now=0.0)
    by_bytes.check(60, now=0.0)
    with pytest.raises(RateLimited, match="bytes"):
        by_bytes.check(60, now=0.0)


def test_connection_counts_per_document_and_address() -> None:
    counts = ConnectionCounts(Limits(connections_per_document=2, connections_per_address=3))
    counts.admit("a", "1.1.1.1")
    counts.admit("a", "1.1.1.1")
    with pytest.raises(RateLimited, match="document"):
        counts.admit("a", "2.2.2.2")
    counts.admit("b", "1.1.1.1")
    with pytest.raises(RateLimited, match="address"):
        counts.admit("c", "1.1.1.1")
    counts.leave("a", "1.1.1.1")
    counts.admit("c", "1.1.1.1")
    assert counts.by_document == {"a": 1, "b": 1, "c": 1}


def test_document_size_measures_only_near_the_limit() -> None:
    calls: list[int] = []

    def measure() -> int:
        calls.append(1)
        return 50

    size = DocumentSize()
    size.check(10, 100, measure)
    size.check(10, 100, measure)
    assert len(calls) == 1
    with pytest.raises(TooLarge):
        size.check(40, 100, measure)


def test_only_text_updates_skip_the_reencode_check_and_others_pass_it() -> None:
    doc: Doc = Doc()
    text = doc.get("content", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text.insert(0, "abc")
    del text[0:1]
    state = doc.get_state()
    doc.get("meta", type=Map)["k"] = [1, {"x": None}]
    assert [only_text(u) for u in updates] == [True, True, False]
    assert reencodes(doc, state)


def test_pre_scan_accepts_real_updates_and_refuses_bombs() -> None:
    for update in corpus.trace_updates():
        scan(update)
    for name, bomb in corpus.BOMBS.items():
        with pytest.raises(InvalidUpdate):
            scan(bomb)
            pytest.fail(name)

    dense: Doc = Doc(client_id=3)
    text = dense.get("content", type=Text)
    for i in range(20_000):  # alternating ends: one struct per character, about 140 kB
        text.insert(0 if i % 2 else len(text), "ab"[i % 2])
    big = dense.get_update()
    scan(big, budget_seconds=5.0)
    with pytest.raises(TooLarge, match="too costly"):
        scan(big, budget_seconds=0.0)
