"""The fan-out bus between nodes: infrastructure both sides use (the write side publishes and
catches up, the read side's projector wakes on it, the realtime side relays presence)."""

from server.bus.core import AWARENESS, EVENT, REVOKE, Bus, BusMessage, Handler, LocalBus

__all__ = ["AWARENESS", "EVENT", "REVOKE", "Bus", "BusMessage", "Handler", "LocalBus"]
