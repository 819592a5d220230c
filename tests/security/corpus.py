"""Known-bad Yjs updates: mutations of real trace updates, and the bombs measured by hand.

Real updates come from replaying the first transactions of an editing trace
(tests/data/editing-traces) through a pycrdt document, one update per transaction, as
an editor would send them. Each mutation is deterministic (seeded), so a failure reproduces.
"""

from __future__ import annotations

import gzip
import json
import random
from functools import cache

from pycrdt import Doc, Text, write_var_uint

from tests.conftest import TRACES

TRACE = TRACES / "friendsforever_flat.json.gz"
HUGE = write_var_uint(2**40)


@cache
def trace_updates(transactions: int = 300) -> tuple[bytes, ...]:
    """One update per transaction of the trace's first `transactions`, then the full state."""
    trace = json.loads(gzip.decompress(TRACE.read_bytes()))
    doc: Doc = Doc(client_id=424242)
    text = doc.get("content", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for txn in trace["txns"][:transactions]:
        with doc.transaction():
            for pos, deleted, inserted in txn["patches"]:
                if deleted:
                    del text[pos : pos + deleted]
                if inserted:
                    text.insert(pos, inserted)
    return (*updates, doc.get_update())


def truncated(update: bytes, rnd: random.Random) -> bytes:
    return update[: rnd.randrange(len(update))]


def bit_flipped(update: bytes, rnd: random.Random, flips: int = 1) -> bytes:
    data = bytearray(update)
    for _ in range(flips):
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
    return bytes(data)


def oversized_count(update: bytes, rnd: random.Random) -> bytes:
    """A declared count or length replaced by 2**40 (the run-length bomb class)."""
    at = rnd.choice([0, 1, len(update) - 1, rnd.randrange(len(update))])
    return update[:at] + HUGE + update[at + 1 :]


def nested_any(depth: int) -> bytes:
    """An Any value nested `depth` arrays deep; yrs recurses per level (50,000 crash it)."""
    return (write_var_uint(1) + write_var_uint(1) + write_var_uint(5) + write_var_uint(0)
            + bytes((8, 1, 7)) + b"content" + write_var_uint(1)
            + bytes((117, 1)) * depth + bytes((126, 0)))


def skip_overflow(runs: int) -> bytes:
    """Skip runs of 2**20 between one-character items: past 4,096 runs the clock passes
    2**32, and yrs panics inside integration."""
    item = bytes((4, 1, 7)) + b"content" + bytes((1,)) + b"x"
    body = (bytes((10,)) + write_var_uint(2**20) + item) * runs
    return (write_var_uint(1) + write_var_uint(2 * runs) + write_var_uint(9) + write_var_uint(0)
            + body + b"\x00")


BOMBS: dict[str, bytes] = {
    "nested 60000 deep": nested_any(60_000),
    "skip runs past 2**32": skip_overflow(5000),
    "clock starts past 2**32": (write_var_uint(1) + write_var_uint(1) + write_var_uint(5)
                                + write_var_uint(2**33) + bytes((4, 1, 7)) + b"content"
                                + bytes((1,)) + b"h" + b"\x00"),
    "2**40 groups": HUGE + b"\x00",
    "2**40 structs": b"\x01" + HUGE + b"\x05\x00\x00",
    "2**40 delete-set clients": b"\x00" + HUGE,
    "deleted range past 2**32": b"\x00\x01\x05\x01\x00" + write_var_uint(2**33),
}


def mutations(count: int, seed: int = 6) -> list[tuple[str, bytes]]:
    """`count` mutated real updates: truncated, bit-flipped and oversized-count variants."""
    rnd = random.Random(seed)
    updates = trace_updates()
    out: list[tuple[str, bytes]] = []
    kinds = [("truncated", truncated), ("bit-flipped", bit_flipped),
             ("oversized-count", oversized_count)]
    for i in range(count):
        name, mutate = kinds[i % len(kinds)]
        index = rnd.randrange(len(updates))
        out.append((f"{name} #{index}", mutate(updates[index], rnd)))
    return out
