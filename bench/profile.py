"""Sample a Python server with py-spy while a measurement runs, and summarise where time went.

    with profiled(pid, out_path) as prof: ...     # py-spy record --format raw, by PID
    print(summarise(out_path))                     # top functions, self and inclusive

py-spy (`pip install py-spy`) is optional: without it, nothing is recorded. It samples without
pausing the server (`--nonblocking`, 100 Hz, every running thread, so time in SQLite shows
too) and runs on the client CPU, so the figures of a profiled run move little; still, compare
profiled runs only with each other.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

PY_SPY = shutil.which("py-spy") or str(Path(__file__).resolve().parent.parent / ".venv/bin/py-spy")


def available() -> bool:
    return Path(PY_SPY).is_file() and os.access(PY_SPY, os.X_OK)


@contextlib.contextmanager
def profiled(
    pid: int, out: Path, preexec: Callable[[], None] | None = None
) -> Iterator[Path | None]:
    """Record `pid` with py-spy into `out` (collapsed stacks) for the duration of the block."""
    if not available():
        yield None
        return
    proc = subprocess.Popen(
        [PY_SPY, "record", "-p", str(pid), "--format", "raw", "-o", str(out),
         "--rate", "100", "--nonblocking"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=preexec,
    )  # fmt: skip
    try:
        yield out
    finally:
        # SIGINT makes py-spy write its output; it is ended by its own PID.
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    parts = file.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{name} ({short})"


def summarise(path: Path, top: int = 25) -> str:
    """Top functions by self samples and by inclusive samples, as a Markdown-ready text."""
    self_counts: collections.Counter[str] = collections.Counter()
    incl_counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for f in set(frames):
            incl_counts[f] += count
    if total == 0:
        return "(no samples)"
    lines = [f"{total} samples of running threads", "", "self:"]
    lines += [f"  {c / total:6.1%}  {f}" for f, c in self_counts.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {c / total:6.1%}  {f}" for f, c in incl_counts.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(f"== {arg}")
        print(summarise(Path(arg), top=int(os.environ.get("TOP", "30"))))
