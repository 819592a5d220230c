"""Drive a stock Yjs client (tests/node/yclient.mjs, a y-websocket WebsocketProvider) from asyncio.

    async with yclient("ws://127.0.0.1:8000/ws", "doc-1") as c:
        await c.wait_synced()
        await c.insert(0, "hello")
        await c.wait_text("hello")

Every call is bounded by a timeout; `close()` ends the Node process by its PID whatever state it
is in. Provider events (`status`, `connection-close`, `synced`) are kept in `events`, in order.
Needs `npm ci` in tests/node (see `NODE_MODULES`).
"""


# them itself, and each call needs its own bound, so `asyncio.timeout` around calls won't do)

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "yclient.mjs"
NODE_MODULES = HERE / "node_modules"

Patch = tuple[int, int, str]


class YClientError(Exception):
    """The client answered a command with `ok: false`, or never answered it in time."""


class YClient:
    """One Node process holding one WebsocketProvider and one Y.Doc (text: `content`)."""

    def __init__(self, proc: asyncio.subprocess.Process, default_timeout: float) -> None:
        self._proc = proc
        self._default_timeout = default_timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._event_added = asyncio.Event()
        self._stderr_tail: list[str] = []
        self._reader = asyncio.create_task(self._read_stdout())
        self._err_reader = asyncio.create_task(self._read_stderr())
        self._closed = False

    @property
    def pid(self) -> int:
        """The Node process's PID."""
        return self._proc.pid

    @classmethod
    async def start(
        cls,
        url: str,
        doc: str,
        params: Mapping[str, str] | None = None,
        *,
        deflate: bool = True,
        node: str = "node",
        default_timeout: float = 10.0,
    ) -> YClient:
        """Start a client for `doc` on `url` (e.g. `ws://127.0.0.1:PORT/ws`).

        `params` become the provider's query parameters (e.g. `{"token": ...}`);
        `deflate=False` makes the client offer no permessage-deflate.
        """
        if not NODE_MODULES.is_dir():
            raise YClientError(f"{NODE_MODULES} is missing: run `npm ci` in {HERE}")
        args = [str(SCRIPT), "--url", url, "--doc", doc]
        for key, value in (params or {}).items():
            args += ["--param", f"{key}={value}"]
        if not deflate:
            args.append("--no-deflate")
        proc = await asyncio.create_subprocess_exec(
            node,
            *args,
            cwd=str(HERE),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,  # a `text` answer carries the whole document
        )
        return cls(proc, default_timeout)

    async def __aenter__(self) -> YClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- commands -------------------------------------------------------------------------

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until the provider has received the server's sync step 2."""
        t = self._timeout(timeout)
        await self.request({"op": "wait_synced", "timeout": t}, t + 5)

    async def insert(self, pos: int, text: str) -> int:
        """Insert `text` at `pos` in one transaction; returns the new length."""
        return int((await self.request({"op": "insert", "pos": pos, "text": text}))["length"])

    async def delete(self, pos: int, length: int = 1) -> int:
        """Delete `length` characters at `pos` in one transaction; returns the new length."""
        return int((await self.request({"op": "delete", "pos": pos, "len": length}))["length"])

    async def text(self) -> str:
        """The client's current text."""
        return str((await self.request({"op": "text"}))["text"])

    async def wait_text(self, text: str, timeout: float | None = None) -> None:
        """Wait until the client's text equals `text`; YClientError (with the text) if not."""
        t = self._timeout(timeout)
        await self.request({"op": "wait_text", "text": text, "timeout": t}, t + 5)

    async def apply_patches(
        self, patches: Sequence[Patch | Sequence[Any]], timeout: float | None = None
    ) -> int:
        """Apply `[pos, delete_count, insert_text]` patches, each its own transaction/update."""
        reply = await self.request(
            {"op": "apply_patches", "patches": [list(p) for p in patches]}, timeout
        )
        return int(reply["applied"])

    async def info(self) -> dict[str, Any]:
        """`synced`, `connected`, negotiated `extensions`, `clientID`, `length`."""
        return await self.request({"op": "info"})

    async def wait_event(
        self, event: str, timeout: float | None = None, **match: Any
    ) -> dict[str, Any]:
        """Wait for an event (e.g. `connection-close`) with the given fields, seen or future."""
        deadline = asyncio.get_running_loop().time() + self._timeout(timeout)
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if ev.get("event") == event and all(ev.get(k) == v for k, v in match.items()):
                    return ev
            seen = len(self.events)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise YClientError(f"no {event} event {match or ''} within the timeout")
            self._event_added.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event_added.wait(), left)

    async def request(
        self, command: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        if self._closed:
            raise YClientError("client is closed")
        cid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write((json.dumps({"id": cid, **command}) + "\n").encode())
            await self._proc.stdin.drain()
            reply = await asyncio.wait_for(fut, self._timeout(timeout))
        except TimeoutError:
            raise YClientError(f"no answer to {command.get('op')} in time") from None
        except (BrokenPipeError, ConnectionResetError) as e:
            raise YClientError(f"client process is gone: {self._stderr()}") from e
        finally:
            self._pending.pop(cid, None)
        if not reply.get("ok"):
            raise YClientError(str(reply.get("error")))
        return reply

    async def close(self) -> None:
        """Close the provider, then end the process by its PID (SIGTERM, then SIGKILL)."""
        if self._closed:
            return
        with contextlib.suppress(YClientError, OSError):
            await self.request({"op": "close"}, timeout=2)
        self._closed = True
        await self._end_process()

    # -- internals ------------------------------------------------------------------------

    def _timeout(self, timeout: float | None) -> float:
        return self._default_timeout if timeout is None else timeout

    def _stderr(self) -> str:
        return "".join(self._stderr_tail)[-2000:]

    async def _end_process(self) -> None:
        proc = self._proc
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        for sig, grace in ((None, 1.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            if proc.returncode is not None:
                break
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
        for task in (self._reader, self._err_reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(YClientError("client closed"))

    async def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        async for raw in self._proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                self._stderr_tail.append(f"(stdout, not JSON) {raw!r}\n")
                continue
            if "event" in msg:
                self.events.append(msg)
                self._event_added.set()
                continue
            fut = self._pending.get(msg.get("id"))
            if fut is not None and not fut.done():
                fut.set_result(msg)
        # The process ended: nobody will answer what is still pending.
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(YClientError(f"client process ended: {self._stderr()}"))

    async def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        async for raw in self._proc.stderr:
            self._stderr_tail.append(raw.decode(errors="replace"))
            del self._stderr_tail[:-50]


@contextlib.asynccontextmanager
async def yclient(
    url: str, doc: str, params: Mapping[str, str] | None = None, **kwargs: Any
) -> AsyncIterator[YClient]:
    """`async with yclient(url, doc) as c:` starts a client and always ends its process."""
    client = await YClient.start(url, doc, params, **kwargs)
    try:
        yield client
    finally:
        await client.close()
