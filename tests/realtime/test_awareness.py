"""The awareness relay: newest state wins, departures are announced, memory stays bounded."""

from __future__ import annotations

from server.realtime import awareness
from server.realtime.awareness import AwarenessRelay


def test_newer_states_replace_older_and_stale_ones_are_dropped() -> None:
    relay = AwarenessRelay()
    fresh, present = relay.apply(awareness.encode([(1, 2, '{"a":1}')]))
    assert awareness.decode(fresh) == [(1, 2, '{"a":1}')] and present == [1]
    assert relay.apply(awareness.encode([(1, 1, '{"a":0}')]))[0] == b""  # older clock
    relay.apply(awareness.encode([(1, 3, '{"a":2}')]))
    assert awareness.decode(relay.snapshot() or b"") == [(1, 3, '{"a":2}')]


def test_removing_a_connections_clients_announces_them_gone() -> None:
    relay = AwarenessRelay()
    relay.apply(awareness.encode([(1, 1, "{}"), (2, 5, "{}")]))
    gone = relay.remove({2, 99})
    assert gone is not None and awareness.decode(gone) == [(2, 6, "null")]
    assert awareness.decode(relay.snapshot() or b"") == [(1, 1, "{}")]
    # The departed client's stale update does not bring it back.
    assert relay.apply(awareness.encode([(2, 5, "{}")]))[0] == b""


def test_clocks_of_departed_clients_do_not_grow_without_bound() -> None:
    relay = AwarenessRelay()
    for client in range(awareness.MAX_REMEMBERED_CLOCKS + 50):
        relay.apply(awareness.encode([(client, 1, "{}")]))
        relay.remove({client})
    assert len(relay.clocks) <= awareness.MAX_REMEMBERED_CLOCKS + 1
    assert relay.states == {}
