"""The awareness relay: newest state wins, departures are announced, memory stays bounded, and
only an id's owner changes it (the real-server attacks are in tests/security/test_presence.py)."""

from __future__ import annotations

import pytest

from server.errors import RateLimited
from server.realtime import awareness
from server.realtime.awareness import CLOCK_STEP, AwarenessRelay, Rules


def test_newer_states_replace_older_and_stale_ones_are_dropped() -> None:
    relay = AwarenessRelay()
    fresh = relay.apply(1, awareness.encode([(1, 2, '{"a":1}')])).relay
    assert awareness.decode(fresh) == [(1, 2, '{"a":1}')] and relay.held_by(1) == {1}
    assert relay.apply(1, awareness.encode([(1, 1, '{"a":0}')])).relay == b""  # older clock
    relay.apply(1, awareness.encode([(1, 3, '{"a":2}')]))
    assert awareness.decode(relay.snapshot() or b"") == [(1, 3, '{"a":2}')]


def test_removing_a_connections_clients_announces_them_gone() -> None:
    relay = AwarenessRelay()
    relay.apply("a", awareness.encode([(1, 1, "{}")]))
    relay.apply("b", awareness.encode([(2, 5, "{}")]))
    gone = relay.release("b")
    assert gone is not None and awareness.decode(gone) == [(2, 6, "null")]
    assert awareness.decode(relay.snapshot() or b"") == [(1, 1, "{}")]
    # The departed client's stale update does not bring it back.
    assert relay.apply("b", awareness.encode([(2, 5, "{}")])).relay == b""


def test_clocks_of_departed_clients_do_not_grow_without_bound() -> None:
    relay = AwarenessRelay()
    for client in range(awareness.MAX_REMEMBERED_CLOCKS + 50):
        relay.apply(client, awareness.encode([(client, 1, "{}")]))
        relay.release(client)
    assert len(relay.departed) <= awareness.MAX_REMEMBERED_CLOCKS + 1
    assert relay.states == {}


def test_only_the_owner_changes_or_removes_an_id() -> None:
    relay = AwarenessRelay()
    relay.apply(1, awareness.encode([(7, 1, '{"user":{"name":"Victim"}}')]), user="victim")
    forged = relay.apply(2, awareness.encode([(7, 99, '{"user":{"name":"Victim (I resign)"}}'),
                                              (7, 100, "null")]), user="mallory")
    assert forged.relay == b"" and forged.ignored == 2
    assert awareness.decode(relay.snapshot() or b"") == [(7, 1, '{"user":{"name":"Victim"}}')]
    # Its own user's newer connection takes it over (a reconnect the server has not noticed).
    taken = relay.apply(3, awareness.encode([(7, 1, '{"user":{"name":"Victim"}}')]),
                        user="victim")
    assert awareness.decode(taken.relay) == [(7, 2, '{"user":{"name":"Victim"}}')]
    assert relay.release(1) is None and relay.held_by(3) == {7}


def test_relayed_clocks_always_grow_by_a_bounded_step() -> None:
    relay = AwarenessRelay()
    first = relay.apply(1, awareness.encode([(7, 2**63, "{}")]))
    assert awareness.decode(first.relay) == [(7, CLOCK_STEP, "{}")]
    assert awareness.decode(first.echo) == [(7, 2**63, "{}")]  # the sender's own clock back
    gone = relay.release(1)
    assert gone is not None and awareness.decode(gone) == [(7, CLOCK_STEP + 1, "null")]
    # The next holder's low clock is relayed past the last one: every stock client accepts it.
    back = relay.apply(2, awareness.encode([(7, 3, '{"back":1}')]))
    assert awareness.decode(back.relay) == [(7, CLOCK_STEP + 2, '{"back":1}')]


@pytest.mark.parametrize("state", ["not json", "[1, 2]", '"a string"', "42", "true",
                                   '{"a": NaN}', '{"a": Infinity}', "[" * 5000 + "]" * 5000,
                                   '{"name": "' + "x" * 9000 + '"}'])
def test_anything_but_an_object_of_bounded_size_is_refused(state: str) -> None:
    relay = AwarenessRelay(Rules(state_bytes=8192))
    applied = relay.apply(1, awareness.encode([(7, 1, state), (8, 1, '{"ok":true}')]))
    assert [c for c, _ in applied.refused] == [7]
    assert [c for c, _, _ in awareness.decode(applied.relay)] == [8]


def test_a_connection_is_bounded_in_clients_and_in_bytes() -> None:
    relay = AwarenessRelay(Rules(state_bytes=100, owner_bytes=250, max_clients=3))
    state = '{"n":"' + "x" * 90 + '"}'  # 98 bytes
    applied = relay.apply(1, awareness.encode([(c, 1, state) for c in (1, 2, 3)]))
    assert [c for c, _, _ in awareness.decode(applied.relay)] == [1, 2]
    assert applied.refused == [(3, "this connection's states would pass 250 bytes")]
    with pytest.raises(RateLimited, match="awareness clients"):
        relay.apply(1, awareness.encode([(4, 1, "{}"), (5, 1, "{}")]))


def test_an_id_of_another_node_is_free_once_it_stops_renewing() -> None:
    relay = AwarenessRelay()
    relay.apply("node-b", awareness.encode([(7, 5, "{}")]), local=False, now=0.0)
    assert relay.apply(1, awareness.encode([(7, 9, "{}")]), now=10.0).relay == b""
    assert relay.apply(1, awareness.encode([(7, 9, "{}")]), now=31.0).relay != b""
