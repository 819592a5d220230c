"""Cross-node fan-out latency beside same-node latency, and throughput on one and two nodes.

    .venv/bin/python bench/cluster_latency.py [--docs 2] [--rate 20] [--node-role all|write]

Starts its own PostgreSQL, Redis and two `palimpsest serve` nodes on loopback (stopped by PID).

Latency: each of --docs documents has one writer on node 1 that appends an 8-character chunk at
the end every 1/rate seconds, and readers on node 1 (same node) and on node 2 (cross node,
through Redis). Each chunk is timed from the writer's send to the moment it is in a reader's
doc, on this process's clock, so both kinds are measured in the same run under the same load.
The first second of every document is warm-up and not counted.

Throughput: --writers writers, each on its own document, each keeping --window updates in
flight and counting the server's durable acks (`?ack=1`, sent after the commit), all on node 1,
then spread over both nodes, alternating --repeat times. Updates committed per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import websockets  # noqa: E402
from pycrdt import Doc, Text, TransactionEvent  # noqa: E402
from websockets.asyncio.client import ClientConnection  # noqa: E402

from bench.servers import cpu_seconds, machine_busy_seconds, wait_for_quiet  # noqa: E402
from server.realtime.protocol import Reader as FrameReader  # noqa: E402
from server.realtime.protocol import sync_step1, sync_update  # noqa: E402
from storage.migrate import migrate  # noqa: E402
from tests.support.server_process import ServerProcess  # noqa: E402
from tests.support.services import PostgresServer, RedisServer  # noqa: E402

CHUNK = 8


def read_var_uint(data: bytes, at: int) -> tuple[int, int]:
    reader = FrameReader(data, at)
    return reader.var_uint(), reader.pos


async def connect(url: str) -> ClientConnection:
    # No permessage-deflate: measure the server, not zlib (see docs/benchmarks.md).
    return await websockets.connect(url, max_size=None, compression=None, open_timeout=30)


class Reader:
    """Listens on one document; times every chunk from its send to its arrival here."""

    def __init__(self, url: str, sent: list[float]) -> None:
        self.url = url
        self.sent = sent
        self.doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.latencies: list[float] = []
        self.seen = 0
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ws = await connect(self.url)
        await self.ws.send(sync_step1(self.doc.get_state()))
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self.ws:
                if not isinstance(frame, bytes) or frame[:1] != b"\x00" or frame[1:2] == b"\x00":
                    continue
                length, at = read_var_uint(frame, 2)
                self.doc.apply_update(frame[at : at + length])
                now = time.perf_counter()
                arrived = len(self.text) // CHUNK
                for k in range(self.seen, arrived):
                    self.latencies.append(now - self.sent[k])
                self.seen = max(self.seen, arrived)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


async def drain(ws: ClientConnection, on_frame: Any = None) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for frame in ws:
            if on_frame is not None and isinstance(frame, bytes):
                on_frame(frame)


class Writer:
    """Appends chunks to one document from its own pycrdt doc, as a client would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.updates: list[bytes] = []
        self.doc.observe(self._on_update)
        self.sent: list[float] = []
        self.acked = 0
        self.ack_event = asyncio.Event()
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None

    def _on_update(self, event: TransactionEvent) -> None:
        self.updates.append(event.update)

    def _on_frame(self, frame: bytes) -> None:
        if frame[:1] == b"\x64":  # Palimpsest's durable ack: first N writes committed
            self.acked, _ = read_var_uint(frame, 1)
            self.ack_event.set()

    async def start(self) -> None:
        self.ws = await connect(self.url)
        self.task = asyncio.create_task(drain(self.ws, self._on_frame))

    async def append(self) -> None:
        assert self.ws is not None
        self.text += f"{len(self.sent) % 10**7:07d}|"
        update = self.updates.pop()
        self.sent.append(time.perf_counter())
        await self.ws.send(sync_update(update))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    if not ms:
        return {"count": 0}
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"count": len(ms), "p50": round(q[49], 2), "p90": round(q[89], 2),
            "p99": round(q[98], 2), "max": round(ms[-1], 2)}


async def measure_latency(nodes: list[ServerProcess], docs: int, rate: float, seconds: float,
                          readers_per_node: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    writers: list[Writer] = []
    same: list[Reader] = []
    cross: list[Reader] = []
    for d in range(docs):
        doc_id = f"lat-{run}-{d}"
        writer = Writer(f"{nodes[0].ws_url}/ws/{doc_id}")
        await writer.start()
        writers.append(writer)
        for _ in range(readers_per_node):
            same.append(Reader(f"{nodes[0].ws_url}/ws/{doc_id}", writer.sent))
            cross.append(Reader(f"{nodes[1].ws_url}/ws/{doc_id}", writer.sent))
    for reader in same + cross:
        await reader.start()
    await asyncio.sleep(1.0)  # every room open and subscribed on both nodes

    async def pace(writer: Writer, offset: float) -> None:
        start = time.perf_counter() + offset
        for k in range(int(seconds * rate)):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await writer.append()

    await asyncio.gather(*(pace(w, i / (rate * docs)) for i, w in enumerate(writers)))
    total = int(seconds * rate)
    deadline = time.perf_counter() + 30
    while any(r.seen < total for r in same + cross) and time.perf_counter() < deadline:  # noqa: ASYNC110 - a bounded poll over many readers
        await asyncio.sleep(0.05)
    missing = sum(total - r.seen for r in same + cross)
    warmup = int(rate)  # the first second of each document
    for reader in same + cross:
        del reader.latencies[:warmup]
    result = {
        "same_node": percentiles([x for r in same for x in r.latencies]),
        "cross_node": percentiles([x for r in cross for x in r.latencies]),
        "missing_at_end": missing,
    }
    for client in [*writers, *same, *cross]:
        await client.close()
    return result


async def measure_throughput(nodes: list[ServerProcess], writers_total: int, window: int,
                             seconds: float) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    writers = [Writer(f"{nodes[i % len(nodes)].ws_url}/ws/tp-{run}-{i}?ack=1")
               for i in range(writers_total)]
    for writer in writers:
        await writer.start()
    stop_at = time.perf_counter() + seconds

    async def run_writer(writer: Writer) -> None:
        while time.perf_counter() < stop_at:
            while len(writer.sent) - writer.acked >= window:
                writer.ack_event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(writer.ack_event.wait(), 5)
                if time.perf_counter() >= stop_at:
                    return
            await writer.append()

    started = time.perf_counter()
    acked_before = sum(w.acked for w in writers)
    await asyncio.gather(*(run_writer(w) for w in writers))
    elapsed = time.perf_counter() - started
    committed = sum(w.acked for w in writers) - acked_before
    for writer in writers:
        await writer.close()
    return {"nodes": len(nodes), "writers": writers_total, "window": window,
            "seconds": round(elapsed, 2), "committed": committed,
            "updates_per_second": round(committed / elapsed, 1)}


def markdown(results: dict[str, Any]) -> str:
    lat = results["latency"]
    lines = [
        "| fan-out | updates timed | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (("same node (writer and reader on node 1)", "same_node"),
                      ("cross node (writer on node 1, reader on node 2)", "cross_node")):
        row = lat[key]
        lines.append(f"| {name} | {row['count']} | {row['p50']} | {row['p90']} | {row['p99']} "
                     f"| {row['max']} |")
    gap = round(lat["cross_node"]["p99"] - lat["same_node"]["p99"], 2)
    lines += ["", f"cross-node p99 - same-node p99 = {gap} ms (the bar: at most 5 ms)", "",
              "| throughput | writers | window | updates committed/s (median) | each run |",
              "|---|---|---|---|---|"]
    for row in results["throughput"]:
        lines.append(f"| {row['nodes']} node(s) | {row['writers']} | {row['window']} "
                     f"| {row['updates_per_second']} | {', '.join(map(str, row['runs']))} |")
    return "\n".join(lines)


async def quiet(max_wait: float) -> dict[str, float]:
    """Wait (bounded) for the shared machine's other load to drop; report what it was."""
    waited, load = await asyncio.to_thread(wait_for_quiet, 0.5, max_wait)
    return {"waited_s": round(waited, 1), "other_load_cpus": round(load, 2)}


def cpu_by_part(parts: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each part (a Postgres part includes its backends)."""
    out = {}
    for name, pids in parts.items():
        procs = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                procs += [proc, *proc.children(recursive=True)]
        out[name] = cpu_seconds([p.pid for p in procs])
    return out


async def bench(args: argparse.Namespace, nodes: list[ServerProcess],
                parts: dict[str, list[int]]) -> dict[str, Any]:
    machine: dict[str, Any] = {"before_latency": await quiet(args.max_quiet_wait)}
    busy0, t0, cpu0 = machine_busy_seconds(), time.monotonic(), cpu_by_part(parts)
    latency = await measure_latency(nodes, args.docs, args.rate, args.seconds, args.readers)
    elapsed = time.monotonic() - t0
    cpu1 = cpu_by_part(parts)
    machine["busy_cpus_during_latency"] = round((machine_busy_seconds() - busy0) / elapsed, 2)
    # What our own processes used of it, in CPUs: the rest was the machine's other load.
    machine["our_cpus_during_latency"] = {name: round((cpu1[name] - cpu0[name]) / elapsed, 3)
                                          for name in parts}
    # One node and two alternate, --repeat times each: the machine's noise hits both alike.
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    machine["before_throughput"] = await quiet(args.max_quiet_wait)
    for _ in range(args.repeat):
        for group in (nodes[:1], nodes):
            runs[len(group)].append(
                await measure_throughput(group, args.writers, args.window, args.tp_seconds))
    throughput = []
    for rows in runs.values():
        rates = [row["updates_per_second"] for row in rows]
        shape = {k: rows[0][k] for k in ("nodes", "writers", "window")}
        throughput.append(shape | {"updates_per_second": statistics.median(rates),
                                   "runs": rates})
    return {"latency": latency, "throughput": throughput, "machine": machine}


def _pid(process: Any) -> int:
    assert process is not None
    return int(process.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20.0, help="updates/s per document")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--readers", type=int, default=2, help="readers per node per document")
    parser.add_argument("--writers", type=int, default=8, help="throughput writers")
    parser.add_argument("--window", type=int, default=16, help="updates in flight per writer")
    parser.add_argument("--tp-seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per node count")
    parser.add_argument("--max-quiet-wait", type=float, default=60.0,
                        help="seconds to wait for the machine to quieten before each phase")
    parser.add_argument("--node-role", choices=["all", "write"], default="all",
                        help="the nodes' --role; with 'write' a projector process runs apart")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    pg = PostgresServer()
    redis = RedisServer()
    nodes: list[ServerProcess] = []
    extra: list[ServerProcess] = []
    try:
        pg.start()
        redis.start()
        url = pg.create_database("bench")
        asyncio.run(migrate(url))
        env = {"PALIMPSEST_REDIS_PREFIX": "bench", "PALIMPSEST_ROOM_GRACE_SECONDS": "30"}
        nodes = [ServerProcess(url, redis_url=redis.url, env=env, role=args.node_role)
                 for _ in range(2)]
        # With --node-role write, the projector runs as its own third process.
        extra = ([ServerProcess(url, redis_url=redis.url, env=env, role="projector")]
                 if args.node_role == "write" else [])
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda node: node.start(60), nodes + extra))
        parts = {"node 1": [_pid(nodes[0].process)], "node 2": [_pid(nodes[1].process)],
                 "redis": [_pid(redis.process)], "postgres": [_pid(pg.process)],
                 "bench clients": [os.getpid()]}
        results = asyncio.run(bench(args, nodes, parts))
    finally:
        for node in nodes + extra:
            node.stop()
        redis.stop()
        pg.destroy()
    results["args"] = vars(args) | {"json": str(args.json) if args.json else None}
    print(json.dumps(results, indent=2))
    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
