"""Markdown tables from the benchmark's result rows, with ratios against the reference server.

With several rounds per case, each table row is the median round (by ops/s for the replay, by
p99 for the fan-out), shown whole, so every figure in a row comes from one real measurement;
the `runs` column gives the spread (min-max) of the ranking metric.
"""

from __future__ import annotations

from typing import Any

VARIANT_TITLE = {
    "offer": "clients offer permessage-deflate (as browsers do)",
    "off": "clients do not offer permessage-deflate",
}

Row = dict[str, Any]


def _ratio(v: Any, ref: Any) -> str:
    if v is None or ref in (None, 0):
        return "n/a"
    return f"{v / ref:.2f}x"


def _deflate(row: Row) -> str:
    ext = row.get("extensions")
    if ext is None:
        return "n/a"
    return "yes" if "permessage-deflate" in ext else "no"


def _noise(row: Row) -> str:
    """Average number of CPUs busy with other people's work during the measurement."""
    wall = row.get("wall_s") or 0
    return f"{row.get('other_cpu_s', 0) / wall:.2f}" if wall else "n/a"


def _cpu_us(row: Row) -> float:
    """Server-side CPU per patch (the server process, plus Postgres where there is one)."""
    return float((row["server_cpu_s"] + row.get("db_cpu_s", 0.0)) / row["patches"] * 1e6)


def _err(row: Row) -> str:
    return str(row.get("error", "failed")).replace("|", "/").replace("\n", " ")[:140]


def median_row(rows: list[Row], key: str, fmt: str) -> tuple[Row | None, str]:
    """The median successful row by `key`, and a `runs` cell: `n ok (min-max)`."""
    ok = sorted((r for r in rows if r.get("ok") and r.get(key) is not None), key=lambda r: r[key])
    if not ok:
        return None, f"0/{len(rows)}"
    mid = ok[(len(ok) - 1) // 2]
    cell = f"{len(ok)}/{len(rows)}"
    if len(ok) > 1:
        cell += f" ({format(ok[0][key], fmt)}-{format(ok[-1][key], fmt)})"
    return mid, cell


def one_line(row: Row) -> str:
    """A progress line for stderr."""
    if not row.get("ok"):
        return f"FAILED: {_err(row)}"
    if row["scenario"].startswith("replay"):
        return (f"{row['ops_per_s']:,.0f} ops/s, {row['elapsed_s']:.1f} s, "
                f"server CPU {row['server_cpu_s']:.1f} s, peak RSS "
                f"{row['server_peak_rss_mib']:.0f} MiB, client ELU "
                f"{row['client_event_loop_utilization']:.2f}, "
                f"others' CPUs {_noise(row)}")  # fmt: skip
    return (f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
            f"{row['deliveries']}/{row['deliveries_expected']} deliveries, "
            f"peak RSS {row['server_peak_rss_mib']:.0f} MiB, "
            f"others' CPUs {_noise(row)}")  # fmt: skip


def _replay_table(rows: list[Row], servers: list[str], reference: str) -> list[str]:
    out = [
        "| server | K | ops/s | vs ref | converged in s | server CPU µs/op | vs ref "
        "| server peak RSS MiB | vs ref | client ELU | others' CPUs | deflate | runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    scenarios = [s for s in dict.fromkeys(r["scenario"] for r in rows) if s.startswith("replay")]
    for sc in scenarios:
        refs = [r for r in rows if r["scenario"] == sc and r["server"] == reference]
        ref, _ = median_row(refs, "ops_per_s", ",.0f")
        k = sc.removeprefix("replay-k")
        for name in servers:
            group = [r for r in rows if r["scenario"] == sc and r["server"] == name]
            if not group:
                continue
            r, runs = median_row(group, "ops_per_s", ",.0f")
            if r is None:
                out.append(
                    f"| {name} | {k} | FAILED: {_err(group[-1])} | | | | | | | | | | {runs} |"
                )
                continue
            cpu_cell = f"{_cpu_us(r):,.0f}"
            if "db_cpu_s" in r:
                cpu_cell += f" (incl. {r['db_cpu_s'] / r['patches'] * 1e6:,.0f} db)"
            out.append(
                f"| {name} | {k} | {r['ops_per_s']:,.0f} "
                f"| {_ratio(r['ops_per_s'], ref and ref['ops_per_s'])} "
                f"| {r['elapsed_s']:.1f} | {cpu_cell} | {_ratio(_cpu_us(r), ref and _cpu_us(ref))} "
                f"| {r['server_peak_rss_mib']:.0f} "
                f"| {_ratio(r['server_peak_rss_mib'], ref and ref['server_peak_rss_mib'])} "
                f"| {r['client_event_loop_utilization']:.2f} | {_noise(r)} | {_deflate(r)} "
                f"| {runs} |"
            )
    return out


def _fanout_table(rows: list[Row], servers: list[str], reference: str) -> list[str]:
    f0 = next((r for r in rows if r.get("ok")), rows[0])
    out = [
        f"{f0.get('writers')} writers x {f0.get('rate')} updates/s each, {f0.get('readers')} "
        f"readers, {f0.get('seconds')} s; latency over every (update, reader) delivery\n",
        "| server | p50 ms | vs ref | p99 ms | vs ref | max ms | deliveries | server CPU s "
        "| server peak RSS MiB | client ELU | others' CPUs | deflate | runs (p99) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ref, _ = median_row([r for r in rows if r["server"] == reference], "p99_ms", ".1f")
    for name in servers:
        group = [r for r in rows if r["server"] == name]
        if not group:
            continue
        r, runs = median_row(group, "p99_ms", ".1f")
        if r is None:
            last = group[-1]
            if last.get("p50_ms") is not None:
                got = f"{last['deliveries']:,}/{last['deliveries_expected']:,}"
                out.append(f"| {name} | FAILED ({got} delivered, p99 {last['p99_ms']:.0f} ms): "
                           f"{_err(last)} | | | | | | | | | | | {runs} |")  # fmt: skip
            else:
                out.append(f"| {name} | FAILED: {_err(last)} | | | | | | | | | | | {runs} |")
            continue
        out.append(
            f"| {name} | {r['p50_ms']:.1f} | {_ratio(r['p50_ms'], ref and ref['p50_ms'])} "
            f"| {r['p99_ms']:.1f} | {_ratio(r['p99_ms'], ref and ref['p99_ms'])} "
            f"| {r['max_ms']:.0f} | {r['deliveries']:,}/{r['deliveries_expected']:,} "
            f"| {r['server_cpu_s']:.1f} | {r['server_peak_rss_mib']:.0f} "
            f"| {r['client_event_loop_utilization']:.2f} | {_noise(r)} | {_deflate(r)} | {runs} |"
        )
    return out


def markdown(meta: dict[str, Any], results: list[Row], servers: list[str], reference: str) -> str:
    """One replay table and one fan-out table per deflate variant."""
    v = meta.get("versions", {})
    out = [
        f"Run {meta.get('started')}, Palimpsest {v.get('palimpsest_commit')}, trace patches: "
        f"{meta.get('patches')}, pinning: {meta.get('pinning')}"
    ]
    for variant in dict.fromkeys(r["deflate"] for r in results):
        rows = [r for r in results if r["deflate"] == variant]
        if any(r["scenario"].startswith("replay") for r in rows):
            out.append(f"\n### Trace replay: {VARIANT_TITLE[variant]}\n")
            out += _replay_table(rows, servers, reference)
        fan = [r for r in rows if r["scenario"] == "fanout"]
        if fan:
            out.append(f"\n### Fan-out latency: {VARIANT_TITLE[variant]}\n")
            out += _fanout_table(fan, servers, reference)
    out.append(
        "\nvs ref: ratio to @y/websocket-server in this run (ops/s: higher is better; CPU, "
        "latency and RSS: lower is better). server CPU µs/op: CPU time of the server process "
        "(and of Postgres, where used) over the whole measurement, per patch. client ELU: "
        "event-loop utilisation of the one Node process holding every client (near 1.00: the "
        "client side was the bottleneck). others' CPUs: "
        "CPUs busy with work outside the benchmark, on average (the machine is shared)."
    )
    return "\n".join(out)
