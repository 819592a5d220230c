"""The fan-out port: what the writer hands committed events to. The realtime side implements it.

The write side decides and appends; showing the result to people is someone else's job. After
each commit the writer calls this port, in seq order: events this node appended (`publish`:
to local clients but their sender, then to the other nodes), events another node appended that
the live document has now applied (`show`), and which senders' writes are settled
(`acknowledge`). Senders are named by an `Origin` the edge chose: plain numbers, opaque here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from server.errors import PalimpsestError
from storage.records import EventRecord


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent a command, in the edge's own numbering: `client` (a connection, say) and which
    of its writes this is, counted from 1 (for durable acknowledgements)."""

    client: int
    message: int = 0


@dataclass(frozen=True, slots=True)
class Committed:
    record: EventRecord
    origin: Origin | None  # None for commands with no live sender (the HTTP API)
    # The Y.Text deltas applying it to the live document gave, when the fan-out wants them
    # (`wants_text_deltas`: read-side followers in this process) and the document applied the batch
    # in log order; otherwise None.
    text_deltas: list[Any] | None = None


class FanOut(Protocol):
    async def publish(self, doc_id: str, events: Sequence[Committed]) -> None:
        """Events this node just committed: show each to the local clients of the document
        except its sender, then announce it to the other nodes."""
        ...

    def show(self, doc_id: str, events: Sequence[EventRecord]) -> None:
        """Events another node committed, now in this node's live document: show them to the
        local clients."""
        ...

    def acknowledge(self, doc_id: str, origins: Sequence[Origin], head_seq: int) -> None:
        """These senders' writes are settled (stored, or no-ops) up to the document's head."""
        ...

    def reject(self, doc_id: str, origin: Origin, error: PalimpsestError) -> None:
        """This sender's command was refused: nothing of it was stored."""
        ...

    def accepts(self, origin: Origin) -> bool:
        """False once a sender has been refused or has gone: its later commands are dropped,
        since nothing after a refused message may apply."""
        ...

    def reset(self, doc_id: str, error: PalimpsestError) -> None:
        """The live document was dropped (its state could not be trusted or stored): its
        clients must reconnect and resend."""
        ...


class Tee:
    """A fan-out that first hands what this node committed to `listener` (the projector and
    the insight follower of the same process, through the composition root), then to
    `inner`. It asks the writers for each event's text deltas, so the listener need not apply
    the event again to find them."""

    wants_text_deltas = True

    def __init__(self, inner: FanOut,
                 listener: Callable[[str, Sequence[Committed]], None]) -> None:
        self.inner = inner
        self.listener = listener

    async def publish(self, doc_id: str, events: Sequence[Committed]) -> None:
        self.listener(doc_id, events)
        await self.inner.publish(doc_id, events)

    def show(self, doc_id: str, events: Sequence[EventRecord]) -> None:
        self.inner.show(doc_id, events)

    def acknowledge(self, doc_id: str, origins: Sequence[Origin], head_seq: int) -> None:
        self.inner.acknowledge(doc_id, origins, head_seq)

    def reject(self, doc_id: str, origin: Origin, error: PalimpsestError) -> None:
        self.inner.reject(doc_id, origin, error)

    def accepts(self, origin: Origin) -> bool:
        return self.inner.accepts(origin)

    def reset(self, doc_id: str, error: PalimpsestError) -> None:
        self.inner.reset(doc_id, error)
