"""Server-side awareness relay: the latest state of every client of a document.

An awareness update is varUint(n) then n times (varUint clientID, varUint clock, varString JSON).
A state of "null" means the client left. Awareness is relayed, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from pycrdt import write_var_uint

from server.errors import MalformedMessage
from server.realtime.protocol import Reader

MAX_CLIENTS_PER_UPDATE = 1000
MAX_REMEMBERED_CLOCKS = 10_000


@dataclass(slots=True)
class ClientState:
    clock: int
    state: str  # JSON text; "null" when the client has gone


def decode(payload: bytes) -> list[tuple[int, int, str]]:
    reader = Reader(payload)
    count = reader.var_uint()
    if count > MAX_CLIENTS_PER_UPDATE:
        raise MalformedMessage("awareness update lists too many clients")
    entries = [(reader.var_uint(), reader.var_uint(), reader.var_string()) for _ in range(count)]
    reader.expect_end()
    return entries


def encode(entries: list[tuple[int, int, str]]) -> bytes:
    parts = [write_var_uint(len(entries))]
    for client, clock, state in entries:
        raw = state.encode()
        parts += [write_var_uint(client), write_var_uint(clock), write_var_uint(len(raw)), raw]
    return b"".join(parts)


class AwarenessRelay:
    """Holds the live awareness states of one document on this node."""

    def __init__(self) -> None:
        self.states: dict[int, ClientState] = {}
        # Clocks outlive states, so a stale update for a departed client stays ignored.
        self.clocks: dict[int, int] = {}

    def apply(self, payload: bytes) -> tuple[bytes, list[int]]:
        """Merge an update. Returns the entries that were news, re-encoded, and the ids of
        clients that it made present. Older entries are dropped, as Yjs clients do."""
        fresh: list[tuple[int, int, str]] = []
        for client, clock, state in decode(payload):
            current = self.clocks.get(client, 0)
            leaving = state == "null"
            if not (current < clock or (current == clock and leaving and client in self.states)):
                continue
            self.clocks[client] = clock
            if leaving:
                self.states.pop(client, None)
            else:
                self.states[client] = ClientState(clock, state)
            fresh.append((client, clock, state))
        return (encode(fresh) if fresh else b""), [c for c, _, s in fresh if s != "null"]

    def snapshot(self) -> bytes | None:
        """Every known state, as one update for a newcomer; None when there are none."""
        if not self.states:
            return None
        return encode([(c, s.clock, s.state) for c, s in self.states.items()])

    def remove(self, clients: set[int]) -> bytes | None:
        """Forget clients (their connection closed); the update that tells everyone else."""
        gone = [(c, self.states[c].clock + 1, "null") for c in clients if c in self.states]
        for client, clock, _ in gone:
            del self.states[client]
            self.clocks[client] = clock
        if len(self.clocks) > MAX_REMEMBERED_CLOCKS + len(self.states):
            # Departed clients' clocks only guard against their own stale updates; past a
            # bound, forget them rather than grow with every client id a room has ever seen.
            self.clocks = {c: self.clocks[c] for c in self.states}
        return encode(gone) if gone else None
