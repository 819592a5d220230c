"""Server-side awareness relay: the latest presence of every client of a document on this node,
and who may change it.

An awareness update is varUint(n) then n times (varUint clientID, varUint clock, varString JSON).
A state of "null" means the client left. Awareness is relayed, never stored.

The rules (docs/protocol.md, "Presence"):

- Ownership. Each client id present here belongs to whoever introduced it: a local connection
  or, for entries that came over the bus, another node. Only its owner may change or remove it;
  an entry for an id another owner holds is dropped (routine: a stock client sends back every
  state it receives). Two exceptions, both for a client that reconnected before the server saw
  its old connection end: the same user may take an id over from their own older connection,
  and an id held by another node is free once that node has not renewed it for STALE_SECONDS
  (stock clients renew every 15 s).
- Clocks. The sender's clock only orders the sender's own entries (each must be newer than its
  last). What is relayed carries this relay's clock for the id: always past the last one relayed
  (so every stock client accepts it, whoever held the id before) and at most CLOCK_STEP past it,
  so no one can push an id's clock to where it cannot grow anymore (past 2**53 - 1 every stock
  client's decoder throws). The sender gets its accepted entries back with its own clocks, as
  the reference server does (a stock client that hears nothing for 30 s reconnects).
- States. A state is null (removal) or a JSON object, as JavaScript's JSON.parse reads it (no
  NaN or Infinity), of at most `state_bytes` bytes; anything else is dropped. A connection
  introduces at most `max_clients` ids (one more closes it: 4429) and the states it holds total
  at most `owner_bytes`.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from pycrdt import write_var_uint

from server.errors import MalformedMessage, RateLimited
from server.realtime.protocol import Reader
from server.settings import Limits

# A stock client sends back every state it receives, a newcomer the whole room's at once: the
# bound is above any room's (connections per document x awareness clients each, with room
# for other nodes'); the frame size limit bounds the work per message anyway.
MAX_CLIENTS_PER_UPDATE = 50_000
# Payloads lately sent to clients, kept decoded: every stock client sends each one back whole.
KNOWN_PAYLOADS = 4096
KNOWN_FROM_ENTRIES = 16  # smaller payloads decode in microseconds: not worth their memory
KNOWN_BYTES = 8 * 1024 * 1024
MAX_REMEMBERED_CLOCKS = 10_000
CLOCK_STEP = 1000  # how far past its last relayed clock one entry may move an id
MAX_CLOCK = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER: lib0 throws past it
STALE_SECONDS = 30.0  # y-protocols' outdatedTimeout: a state not renewed for this long is gone

Owner = int | str  # a local connection's number, or another node's id
Entry = tuple[int, int, str]  # client id, clock, state (JSON text, or "null")


@dataclass(slots=True)
class ClientState:
    clock: int  # the clock relayed for it
    state: str  # JSON text of an object
    size: int  # its UTF-8 size
    owner: Owner
    sent: int  # the owner's own clock for it
    renewed: float  # time.monotonic() of its last accepted entry
    entry: bytes  # (client, clock, state) encoded, as a snapshot lists it


@dataclass(slots=True)
class Departed:
    clock: int  # the clock its removal was relayed with
    owner: Owner
    sent: int


@dataclass(slots=True)
class _Holder:
    """What one owner has introduced and holds."""

    user: str | None
    introduced: set[int] = field(default_factory=set)
    held: set[int] = field(default_factory=set)
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Rules:
    state_bytes: int = 8 * 1024
    owner_bytes: int = 32 * 1024
    max_clients: int = 16

    @classmethod
    def from_limits(cls, limits: Limits) -> Rules:
        return cls(limits.awareness_state_bytes, limits.awareness_bytes,
                   limits.awareness_clients)


@dataclass(slots=True)
class Applied:
    relay: bytes = b""  # the news, with this relay's clocks, for everyone
    news: list[Entry] = field(default_factory=list)  # the relay's entries, decoded
    echo: bytes = b""  # the same entries with the sender's own clocks, for the sender
    refused: list[tuple[int, str]] = field(default_factory=list)  # (client, why) not routine
    ignored: int = 0  # entries dropped as routine: someone else's id, or not newer
    # Some entry changed a state (a new client, a new state, a departure); False when every
    # relayed entry only renews a state its owner already had (stock clients renew every 15 s).
    changed: bool = False


def decode(payload: bytes) -> list[tuple[int, int, str]]:
    reader = Reader(payload)
    count = reader.var_uint()
    if count > MAX_CLIENTS_PER_UPDATE:
        raise MalformedMessage("awareness update lists too many clients")
    entries = [(reader.var_uint(), reader.var_uint(), reader.var_string()) for _ in range(count)]
    reader.expect_end()
    return entries


def encode(entries: list[tuple[int, int, str]]) -> bytes:
    return write_var_uint(len(entries)) + b"".join(_entry(*entry) for entry in entries)


def _entry(client: int, clock: int, state: str) -> bytes:
    raw = state.encode()
    return write_var_uint(client) + write_var_uint(clock) + write_var_uint(len(raw)) + raw


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def state_problem(text: str, limit: int) -> str | None:
    """Why a (non-null) state may not be relayed, or None when it may. JSON.parse in every
    stock client must read it as an object; `limit` bounds its UTF-8 size (0: no bound)."""
    if limit > 0 and (len(text) > limit or len(text.encode()) > limit):
        return f"state over {limit} bytes"
    try:
        value = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return "state is not JSON"
    if not isinstance(value, dict):
        return "state is not a JSON object"
    return None


def _leaving(text: str) -> bool:
    return text == "null" or text.strip() == "null"


class AwarenessRelay:
    """Holds the live awareness states of one document on this node, and their owners."""

    __slots__ = ("_holders", "_known", "_known_bytes", "_snapshot", "_snapshot_fresh",
                 "departed", "rules", "states")

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules or Rules()
        self.states: dict[int, ClientState] = {}
        # Departed clients, newest last: a later claim's clock starts past theirs, and their
        # owner's stale entries stay ignored. Bounded: the oldest are forgotten.
        self.departed: OrderedDict[int, Departed] = OrderedDict()
        self._holders: dict[Owner, _Holder] = {}
        self._snapshot: bytes | None = None
        self._snapshot_fresh = True
        self._known: OrderedDict[bytes, list[Entry]] | None = None  # made for a large room
        self._known_bytes = 0

    def held_by(self, owner: Owner) -> set[int]:
        holder = self._holders.get(owner)
        return set(holder.held) if holder is not None else set()

    def apply(self, owner: Owner, payload: bytes, *, user: str | None = None,
              local: bool = True, now: float | None = None) -> Applied:
        """Merge an update sent by `owner` (a local connection of `user`, or another node when
        `local` is False). Raises MalformedMessage for a payload that does not decode, and
        RateLimited when a local connection introduces more clients than allowed."""
        at = time.monotonic() if now is None else now
        rules = self.rules
        holder = self._holders.get(owner)
        if holder is None:
            holder = self._holders[owner] = _Holder(user)
        news: list[tuple[int, int, str]] = []
        echo: list[tuple[int, int, str]] = []
        applied = Applied()
        known = self._known
        entries = known.get(payload) if known is not None else None
        for client, clock, text in decode(payload) if entries is None else entries:
            leaving = _leaving(text)
            current = self.states.get(client)
            gone: Departed | None = None
            # Who may change the id, and whether the entry is newer, are decided before its
            # state is read: most entries are someone else's (every stock client sends back
            # every state it receives), and those cost no JSON parse.
            if current is not None and current.owner != owner:
                if not self._may_take(current, user, local, at):
                    applied.ignored += 1  # someone else's: a stock client echoes every state
                    continue
            elif current is not None:
                if not (clock > current.sent or (clock == current.sent and leaving)):
                    applied.ignored += 1  # not newer than what its owner sent last
                    continue
            else:
                if leaving:
                    applied.ignored += 1  # nothing here to remove
                    continue
                gone = self.departed.get(client)
                if gone is not None and gone.owner == owner and clock <= gone.sent:
                    applied.ignored += 1  # a stale entry of the owner that removed it
                    continue
            if not leaving:
                problem = state_problem(text, rules.state_bytes)
                if problem is not None:
                    applied.refused.append((client, problem))
                    continue
            if current is not None and current.owner != owner:
                self._drop_from(current.owner, client, current.size)
                last = current.clock
                current = None
            elif current is not None:
                last = current.clock
            else:
                last = gone.clock if gone is not None else 0
            if local and client not in holder.introduced:
                if 0 < rules.max_clients <= len(holder.introduced):
                    raise RateLimited(f"too many awareness clients on this connection "
                                      f"(limit {rules.max_clients})")
            size = 0 if leaving else len(text.encode())
            held_before = current.size if current is not None else 0
            if local and rules.owner_bytes > 0 and (
                    holder.bytes - held_before + size > rules.owner_bytes):
                applied.refused.append(
                    (client, f"this connection's states would pass {rules.owner_bytes} bytes"))
                continue
            relayed = min(max(clock, last + 1), last + CLOCK_STEP)
            if relayed > MAX_CLOCK:
                applied.refused.append((client, "clock exhausted"))
                continue
            if local:
                holder.introduced.add(client)
            if leaving:
                self.states.pop(client, None)
                holder.held.discard(client)
                holder.bytes -= held_before
                self._remember(client, Departed(relayed, owner, clock))
                text = "null"
                applied.changed = True
            else:
                if current is None or current.state != text:
                    applied.changed = True
                self.states[client] = ClientState(relayed, text, size, owner, clock, at,
                                                  _entry(client, relayed, text))
                self.departed.pop(client, None)
                holder.held.add(client)
                holder.bytes += size - held_before
            news.append((client, relayed, text))
            echo.append((client, clock, text))
        if news:
            self._snapshot_fresh = False
            applied.relay = encode(news)
            applied.news = news
            applied.echo = encode(echo)
        return applied

    def _may_take(self, current: ClientState, user: str | None, local: bool, at: float) -> bool:
        """May this sender take over an id someone else holds? Its own user's older connection
        (a reconnect), or a node that stopped renewing it."""
        if isinstance(current.owner, str):
            return at - current.renewed >= STALE_SECONDS
        if not local or user is None:
            return False
        held_by = self._holders.get(current.owner)
        return held_by is not None and held_by.user == user

    def _drop_from(self, owner: Owner, client: int, size: int) -> None:
        holder = self._holders.get(owner)
        if holder is not None and client in holder.held:
            holder.held.discard(client)
            holder.bytes -= size

    def _remember(self, client: int, departed: Departed) -> None:
        self.departed[client] = departed
        self.departed.move_to_end(client)
        while len(self.departed) > MAX_REMEMBERED_CLOCKS:
            self.departed.popitem(last=False)

    def snapshot(self) -> bytes | None:
        """Every known state, as one update for a newcomer; None when there are none. Built
        once per change, however many ask."""
        if not self._snapshot_fresh:
            states = self.states
            self._snapshot = write_var_uint(len(states)) + b"".join(
                s.entry for s in states.values()) if states else None
            self._snapshot_fresh = True
            if self._snapshot is not None:
                self.remember(self._snapshot, [(c, s.clock, s.state) for c, s in states.items()])
        return self._snapshot

    def remember(self, payload: bytes, entries: list[Entry]) -> None:
        """A payload about to be sent to clients, with its entries: every stock client sends
        back each state it receives, so a room of N sends each frame back N times; what comes
        back whole is then looked up, not decoded again (bounded, oldest forgotten first)."""
        if len(entries) < KNOWN_FROM_ENTRIES:
            return
        known = self._known
        if known is None:
            known = self._known = OrderedDict()
        if payload in known:
            known.move_to_end(payload)
            return
        known[payload] = entries
        self._known_bytes += len(payload)
        while len(known) > KNOWN_PAYLOADS or self._known_bytes > KNOWN_BYTES:
            old, _ = known.popitem(last=False)
            self._known_bytes -= len(old)

    def release(self, owner: Owner) -> bytes | None:
        """Forget an owner (its connection closed): its clients leave. Returns the update that
        tells everyone else, or None."""
        holder = self._holders.pop(owner, None)
        if holder is None:
            return None
        gone: list[tuple[int, int, str]] = []
        for client in holder.held:
            current = self.states.pop(client, None)
            if current is None or current.owner != owner:
                continue
            gone.append((client, current.clock + 1, "null"))
            self._remember(client, Departed(current.clock + 1, owner, current.sent))
        if not gone:
            return None
        self._snapshot_fresh = False
        return encode(gone)
