"""What the scale benchmarks share (bench/observers.py, join_storm.py, memory.py): servers
started fresh per case, interleaved over rounds, each case's figures beside the reference's
from the same round, the machine's load noted with every figure, raw rows saved as JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.servers import REFERENCE, RunningServer, ServerFactory  # noqa: E402

Row = dict[str, Any]
RESULTS = REPO / "bench" / "results"

# Every benchmark client connects from 127.0.0.1: the per-address cap (meant for one abusive
# host) would refuse the load generator itself, so it is lifted; per-document caps stay.
ONE_ADDRESS_ENV = {"PALIMPSEST_MAX_CONNECTIONS_PER_ADDRESS": "100000"}


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def run_rounds(
    name: str,
    servers: list[str],
    rounds: int,
    case: Callable[[RunningServer, int], Row],
    *,
    factory: ServerFactory,
    env: dict[str, str] | None = None,
    prepare: Callable[[RunningServer], None] | None = None,
) -> list[Row]:
    """Run `case` on each server, fresh, `rounds` times (servers interleaved within a round)."""
    rows: list[Row] = []
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{stamp}-{name}.json"
    for rnd in range(rounds):
        for server_name in servers:
            print(f"... {name} on {server_name} (round {rnd + 1}/{rounds})", file=sys.stderr,
                  flush=True)
            row: Row = {"server": server_name, "round": rnd, "load_before": load_average()}
            try:
                server = factory.start(server_name, {**ONE_ADDRESS_ENV, **(env or {})})
            except Exception as e:  # a server that cannot start is a result, not a crash
                row.update(ok=False, error=f"server did not start: {e}")
                rows.append(row)
                continue
            try:
                if prepare is not None:
                    prepare(server)
                row.update(case(server, rnd))
                if server.proc.poll() is not None:
                    row.update(ok=False, error=f"server exited with {server.proc.returncode}")
            except Exception as e:
                row.update(ok=False, error=f"{type(e).__name__}: {e}")
            finally:
                server.stop()
            row["load_after"] = load_average()
            rows.append(row)
            out.write_text(json.dumps(rows, indent=1))
            shown = {k: v for k, v in row.items() if not isinstance(v, list | dict)}
            print(f"    {shown}", file=sys.stderr, flush=True)
    print(f"raw results: {out.relative_to(REPO)}", file=sys.stderr)
    return rows


def table(rows: list[Row], servers: list[str], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table: one line per round and server, then the median over rounds, each
    figure with its ratio to the reference's in the same round. columns: (key, label, format)."""
    head = ["server", "round", *(label for _, label, _ in columns), "load (1/5 min)", "ok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_round: dict[int, dict[str, Row]] = {}
    for row in rows:
        by_round.setdefault(row["round"], {})[row["server"]] = row
    ratios: dict[str, dict[str, list[float]]] = {}
    for rnd in sorted(by_round):
        ref = by_round[rnd].get(REFERENCE, {})
        for name in servers:
            row = by_round[rnd].get(name)
            if row is None:
                continue
            cells = [name, str(rnd + 1)]
            for key, _, fmt in columns:
                value, base = row.get(key), ref.get(key)
                cell = "-" if value is None else format(value, fmt)
                if name != REFERENCE and isinstance(value, int | float) and isinstance(
                        base, int | float) and base:
                    cell += f" ({value / base:.2f}x)"
                    ratios.setdefault(name, {}).setdefault(key, []).append(value / base)
                cells.append(cell)
            cells += [f"{row.get('load_before', '?')} -> {row.get('load_after', '?')}",
                      "yes" if row.get("ok") else f"NO: {str(row.get('error', ''))[:80]}"]
            lines.append("| " + " | ".join(cells) + " |")
    for name, by_key in ratios.items():
        cells = [name, "median ratio"]
        for key, _, _ in columns:
            values = by_key.get(key)
            cells.append(f"{statistics.median(values):.2f}x" if values else "")
        lines.append("| " + " | ".join([*cells, "", ""]) + " |")
    return "\n".join(lines)
