"""The path of one keystroke through the server, read off a profiler: which of the project's
files it runs through and which calls cross from one package to another.

    .venv/bin/python bench/keystroke_path.py [--calls]

Starts the app in this process on the embedded default (a temporary SQLite file), connects a
writer and a peer with durable acks, and profiles from the writer's update frame until the peer
has the keystroke and the writer its ack (the projector's pass included, as in role all).
A package is server/<side>/ (write, read, realtime, http, bus), storage/, or a root module.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from pycrdt import Doc, Text, TransactionEvent
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.app import create_app  # noqa: E402
from server.realtime import protocol  # noqa: E402
from server.settings import Settings  # noqa: E402


def package(filename: str) -> str | None:
    path = Path(filename)
    if not path.is_relative_to(ROOT):
        return None
    parts = path.relative_to(ROOT).parts
    if parts[0] == "storage":
        return "storage"
    if parts[0] != "server":
        return None
    return f"server/{parts[1]}" if len(parts) > 2 else f"server/{Path(parts[1]).stem}"


class PathRecorder:
    def __init__(self) -> None:
        self.files: Counter[str] = Counter()
        self.edges: Counter[tuple[str, str]] = Counter()  # caller -> callee, across packages

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        callee = frame.f_code.co_filename
        callee_package = package(callee)
        if callee_package is None:
            return
        self.files[str(Path(callee).relative_to(ROOT))] += 1
        caller = frame.f_back
        # Walk out of library frames (asyncio, starlette) to the project frame that led here.
        while caller is not None and package(caller.f_code.co_filename) is None:
            caller = caller.f_back
        if caller is None:
            return
        caller_package = package(caller.f_code.co_filename)
        if caller_package != callee_package and caller_package is not None:
            name = f"{caller_package}:{caller.f_code.co_name} -> " \
                   f"{callee_package}:{frame.f_code.co_name}"
            self.edges[(name, "")] += 1


async def receive_until(ws: ClientConnection, wanted: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
        if isinstance(frame, bytes) and frame.startswith(wanted):
            return
    raise TimeoutError(f"no frame starting {wanted!r}")


async def main(show_calls: bool) -> None:
    folder = tempfile.mkdtemp(prefix="keystroke-")
    settings = Settings(database_url=f"sqlite+aiosqlite:///{folder}/k.sqlite3")
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           ws="websockets-sansio" if _has_sansio() else "auto"))
    task = asyncio.create_task(server.serve())
    for _ in range(1000):  # bounded: 10 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"ws://127.0.0.1:{port}/ws/keystroke?ack=1"
    doc: Doc[Any] = Doc()
    text = doc.get("content", type=Text)
    updates: list[bytes] = []

    def keep(event: TransactionEvent) -> None:
        updates.append(event.update)

    doc.observe(keep)
    async with connect(url) as writer, connect(url) as peer:
        for ws in (writer, peer):
            await receive_until(ws, bytes((0, 0)), 5)  # the server's sync step 1
        text += "warm"  # a first keystroke loads and warms everything
        await writer.send(protocol.sync_update(updates.pop()))
        await receive_until(peer, bytes((0, 2)), 5)
        await receive_until(writer, bytes((100,)), 5)
        await asyncio.sleep(0.3)  # let the projector's pass for the warm-up finish

        recorder = PathRecorder()
        text += "!"
        frame = protocol.sync_update(updates.pop())
        sys.setprofile(recorder)
        try:
            await writer.send(frame)
            await receive_until(peer, bytes((0, 2)), 5)
            await receive_until(writer, bytes((100,)), 5)
            await asyncio.sleep(0.3)  # the projector's pass for this keystroke
        finally:
            sys.setprofile(None)
    server.should_exit = True
    await task

    crossings = Counter(name for (name, _) in recorder.edges)
    packages = sorted({p for name in crossings for p in _packages(name)})
    print(f"files touched: {len(recorder.files)}")
    print(f"cross-package call edges (distinct caller -> callee functions): {len(crossings)}")
    print(f"package pairs: {len({_pair(n) for n in crossings})}; packages: {', '.join(packages)}")
    print("files: " + ", ".join(sorted(recorder.files)))
    if show_calls:
        for name, count in sorted(crossings.items()):
            print(f"  {count:4d}  {name}")


def _packages(name: str) -> list[str]:
    return [side.split(":")[0].strip() for side in name.split("->")]


def _pair(name: str) -> tuple[str, ...]:
    return tuple(_packages(name))


def _has_sansio() -> bool:
    try:
        import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", action="store_true", help="list every crossing call")
    asyncio.run(main(parser.parse_args().calls))
