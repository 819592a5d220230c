"""The pure rules behind slowing a connection down and counting connections per user."""

from __future__ import annotations

import pytest

from server.errors import AtCapacity
from server.realtime.limits import ConnectionCounts, ConnectionRate, TokenBucket
from server.settings import Limits


def test_a_bucket_in_debt_says_how_long_to_wait() -> None:
    bucket = TokenBucket(10, now=0.0)
    assert [bucket.delay(1, 0.0) for _ in range(10)] == [0.0] * 10  # the burst
    assert bucket.delay(1, 0.0) == pytest.approx(0.1)
    assert bucket.delay(1, 0.0) == pytest.approx(0.2)  # debts add up: the rate is kept
    assert bucket.delay(1, 0.3) == pytest.approx(0.0)  # paid back by waiting
    assert TokenBucket(0, now=0.0).delay(10**9, 0.0) == 0.0  # 0: no limit


def test_a_connection_waits_for_the_slower_of_its_two_rates() -> None:
    rate = ConnectionRate(Limits(messages_per_second=100, bytes_per_second=1000), now=0.0)
    assert rate.delay(500, now=0.0) == 0.0
    assert rate.delay(1500, now=0.0) == pytest.approx(1.0)  # bytes: 1000 in debt


def test_one_user_cannot_take_every_slot_of_a_document() -> None:
    counts = ConnectionCounts(Limits(connections_per_document=5, connections_per_user=2,
                                     connections_per_address=100))
    counts.admit("d", "1.1.1.1", "rita")
    counts.admit("d", "1.1.1.1", "rita")
    with pytest.raises(AtCapacity, match="this user") as refused:
        counts.admit("d", "1.1.1.1", "rita")
    assert refused.value.close_code == 4503
    counts.admit("other", "1.1.1.1", "rita")  # per document
    counts.admit("d", "1.1.1.1", "sam")
    counts.admit("d", "1.1.1.1", None)  # an open server has no users
    counts.admit("d", "1.1.1.1", None)
    with pytest.raises(AtCapacity, match="this document"):
        counts.admit("d", "1.1.1.1", "tom")
    counts.leave("d", "1.1.1.1", "rita")
    counts.admit("d", "1.1.1.1", "rita")
