"""`palimpsest serve` under tracemalloc, for finding where a server's memory goes.

    .venv/bin/python bench/traced_serve.py OUT.txt serve --host 127.0.0.1 --port 8123

Each SIGUSR1 appends to OUT.txt the 40 biggest allocation sites (by line, then by file) of what
is live now, with the difference from the previous signal; bench/memory.py --trace sends one
before and one after connecting its clients. The tracing itself costs memory and time: compare
such runs only with each other.
"""

from __future__ import annotations

import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main() -> int:
    out = Path(sys.argv[1])
    tracemalloc.start(1)
    previous: list[tracemalloc.Snapshot] = []

    def dump(_signum: int, _frame: FrameType | None) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        lines = [f"=== snapshot {len(previous) + 1}: "
                 f"{sum(s.size for s in snapshot.statistics('filename')) / 2**20:.1f} MiB traced"]
        for key in ("lineno", "filename"):
            stats = (snapshot.compare_to(previous[-1], key) if previous
                     else snapshot.statistics(key))
            lines.append(f"--- by {key}" + (" (difference from the previous)" if previous
                                             else ""))
            lines += [str(stat) for stat in stats[:40]]
        previous.append(snapshot)
        with out.open("a") as f:
            f.write("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR1, dump)
    from server.cli import main as cli_main

    return int(cli_main(sys.argv[2:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
