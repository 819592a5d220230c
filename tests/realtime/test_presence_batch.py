"""Presence batching: renewals wait in their own lane, changes wait a window that grows with the
room, and what clients send back whole is looked up, not decoded (server/realtime/presence_batch.py,
awareness.py). The many-client behaviour is measured by bench/observers.py."""

from __future__ import annotations

import asyncio

import pytest

from server.realtime import awareness
from server.realtime.awareness import AwarenessRelay
from server.realtime.presence_batch import PER_CONNECTION_SECONDS, Part, PresenceBatch, merge

Sent = list[list[tuple[Part, object | None]]]


class Recorder:
    """Collects what a batch sends, and wakes whoever waits for the n-th frame."""

    def __init__(self) -> None:
        self.sent: Sent = []
        self.changed = asyncio.Event()

    def __call__(self, items: list[tuple[Part, object | None]]) -> None:
        self.sent.append(items)
        self.changed.set()

    async def until(self, frames: int) -> None:
        async with asyncio.timeout(5):
            while len(self.sent) < frames:
                self.changed.clear()
                await self.changed.wait()


def _payload(client: int, clock: int, state: str = "{}") -> tuple[bytes, list[awareness.Entry]]:
    entries = [(client, clock, state)]
    return awareness.encode(entries), entries


async def test_a_renewal_waits_and_rides_along_with_the_next_change_before_it() -> None:
    sent: Sent = []
    batch = PresenceBatch(sent.append, window=0.05, renewal_seconds=30)
    batch.add(*_payload(1, 2), "a", renewal=True)
    await asyncio.sleep(0.1)
    assert sent == []  # a renewal is not urgent: clients keep a state 30 s
    batch.add(*_payload(2, 1), "b")  # a change, after a quiet window: at once
    assert len(sent) == 1
    frame = [sender for _, sender in sent[0]]
    assert frame == ["a", "b"]  # the older renewal first
    assert awareness.decode(merge([part for part, _ in sent[0]])) == [(1, 2, "{}"), (2, 1, "{}")]
    batch.close()


async def test_renewals_alone_go_out_after_their_own_window() -> None:
    record = Recorder()
    batch = PresenceBatch(record, renewal_seconds=0.05)
    batch.add(*_payload(1, 2), None, renewal=True)
    batch.add(*_payload(2, 2), None, renewal=True)
    await record.until(1)
    assert [len(items) for items in record.sent] == [2]
    batch.close()


async def test_the_window_for_changes_grows_with_the_room() -> None:
    record = Recorder()
    sent = record.sent
    size = 10
    batch = PresenceBatch(record, lambda: size, window=0.05)
    assert batch.window() == 0.05
    size = 1000
    assert batch.window() == pytest.approx(1000 * PER_CONNECTION_SECONDS)
    batch.add(*_payload(1, 1), None)  # the first goes at once
    batch.add(*_payload(2, 1), None)  # the next waits for the window
    assert len(sent) == 1
    await asyncio.sleep(0.05)
    assert len(sent) == 1  # still within the 250 ms window of a room of 1,000
    await record.until(2)
    batch.close()


def test_a_payload_sent_out_and_sent_back_whole_is_not_decoded_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    relay = AwarenessRelay()
    for owner in range(1, 21):  # a room of 20: a snapshot worth remembering
        relay.apply(owner, awareness.encode([(owner, 1, '{"a":1}')]))
    snapshot = relay.snapshot()
    assert snapshot is not None

    def no_decoding(payload: bytes) -> list[awareness.Entry]:
        raise AssertionError("decoded again")

    monkeypatch.setattr(awareness, "decode", no_decoding)
    echoed = relay.apply(21, snapshot)  # a newcomer sends the room's presence back
    assert echoed.relay == b"" and echoed.ignored == 20


def test_a_renewal_is_told_apart_from_a_change() -> None:
    relay = AwarenessRelay()
    assert relay.apply(1, awareness.encode([(7, 1, '{"a":1}')])).changed
    renewed = relay.apply(1, awareness.encode([(7, 2, '{"a":1}')]))
    assert renewed.relay and not renewed.changed
    assert relay.apply(1, awareness.encode([(7, 3, '{"a":2}')])).changed
    assert relay.apply(1, awareness.encode([(7, 4, "null")])).changed
