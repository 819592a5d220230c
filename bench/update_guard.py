"""Decode time of hostile Yjs updates, with and without the pre-scan (server.write.update_guard).

    .venv/bin/python bench/update_guard.py

For each bomb: the pre-scan's time and verdict, and (in a child process, since some crash it)
what pycrdt alone does with it: `get_state` (what validation calls) and `apply_update`. Then the
pre-scan's cost on real edits and on the largest updates the default limit lets in.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycrdt import Doc, Text, get_state

from server.errors import InvalidUpdate
from server.write.update_guard import scan
from tests.security.corpus import BOMBS, nested_any, trace_updates

CHILD = """
import sys, time
from pycrdt import Doc, Text, get_state
u = sys.stdin.buffer.read()
t = time.perf_counter()
try:
    get_state(u)
    d = Doc(); d.get("content", type=Text); d.apply_update(u); d.get_update()
    r = "accepted"
except BaseException as e:
    r = type(e).__name__
print(f"{(time.perf_counter() - t) * 1000:.1f} ms {r}")
"""


def unguarded(update: bytes) -> str:
    done = subprocess.run([sys.executable, "-c", CHILD], input=update, capture_output=True,
                          timeout=120)
    if done.returncode < 0:
        return f"process killed by signal {-done.returncode} (server would die)"
    return done.stdout.decode().strip() or f"exit {done.returncode}"


def guarded(update: bytes) -> str:
    start = time.perf_counter()
    try:
        scan(update)
        verdict = "passes"
    except InvalidUpdate as exc:
        verdict = f"refused ({exc.message.removeprefix('malformed Yjs update: ')[:40]})"
    return f"{(time.perf_counter() - start) * 1000:.2f} ms {verdict}"


def per_call(fn: object, items: list[bytes], repeat: int = 5) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return best / len(items) * 1e6


def main() -> None:
    print("| bomb | bytes | pycrdt alone | pre-scan |\n|---|---|---|---|")
    cases = {**BOMBS, "nested 20000 deep": nested_any(20_000)}
    for name, bomb in cases.items():
        print(f"| {name} | {len(bomb)} | {unguarded(bomb)} | {guarded(bomb)} |")
    edits = list(trace_updates(3000)[:-1])
    print(f"\nreal edits ({len(edits)} updates, mean {sum(map(len, edits)) / len(edits):.0f} B):"
          f" pre-scan {per_call(scan, edits):.2f} us/update,"
          f" get_state {per_call(get_state, edits):.2f} us/update")
    # The densest legal update the default 4 MiB limit admits: one-character items.
    doc: Doc = Doc(client_id=1)
    text = doc.get("content", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(150_000):
        text.insert(0 if i % 2 else len(text), "ab"[i % 2])
    big = doc.get_update()
    start = time.perf_counter()
    scan(big)
    scanned = time.perf_counter() - start
    try:
        scan(big, 0.5)
        budget = "passes the default 500 ms budget"
    except Exception as exc:
        budget = f"refused under the default budget: {exc}"
    start = time.perf_counter()
    get_state(big)
    decoded = time.perf_counter() - start
    print(f"dense full state ({len(big)} B, 150,000 items): pre-scan {scanned * 1000:.1f} ms,"
          f" get_state {decoded * 1000:.1f} ms; {budget}")
    print("\n(run: .venv/bin/python bench/update_guard.py)")


if __name__ == "__main__":
    main()
