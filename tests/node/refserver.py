"""Start the reference in-memory y-websocket server (`@y/websocket-server` 0.1.1) for tests.

    async with reference_server() as url:      # url == "ws://127.0.0.1:PORT/ws"
        async with yclient(url, "doc") as c: ...

The process is `node .../@y/websocket-server/src/server.js` itself (not npx or npm), so the
PID held here is the server's, and it is ended by that PID.
"""


# them itself, and each call needs its own bound, so `asyncio.timeout` around calls won't do)

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER_JS = HERE / "node_modules" / "@y" / "websocket-server" / "src" / "server.js"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


@contextlib.asynccontextmanager
async def reference_server(port: int | None = None) -> AsyncIterator[str]:
    """Run @y/websocket-server on 127.0.0.1; yields the `ws://.../ws` base URL for clients."""
    if not SERVER_JS.is_file():
        raise FileNotFoundError(f"{SERVER_JS} is missing: run `npm ci` in {HERE}")
    port = port or free_port()
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(SERVER_JS),
        env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_for_port(port)
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.returncode is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 3)
