"""The PyPI `pycrdt-websocket` 0.16.5 server, in memory, on uvicorn: a peer to measure against.

    python bench/pycrdt_server.py --host 127.0.0.1 --port P [--no-ws-per-message-deflate]

Rooms are named by the request path (`/ws/DOC`), so a stock `WebsocketProvider(url + '/ws', DOC)`
connects as it does to Palimpsest. Behaviour is the library's, except for these (PITFALLS.md),
which let the benchmark measure the server rather than trip over known issues:

- `auto_clean_rooms=False`: a room's document is otherwise dropped when its last client leaves.
- Room start is serialised: when several clients open a new room at the same instant, 0.16.5's
  `start_room` can start it twice and the later clients hang without sync step 1.
- An update dropped because a room's queue is full is logged (the library drops it silently).

uvicorn runs as `uvicorn.run` would run Palimpsest: uvloop when installed, the default WebSocket
implementation, permessage-deflate on unless `--no-ws-per-message-deflate`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import anyio
import pycrdt.websocket.yroom
import uvicorn
from anyio.streams.memory import MemoryObjectSendStream
from pycrdt import TransactionEvent
from pycrdt.websocket import ASGIServer, WebsocketServer
from pycrdt.websocket.yroom import YRoom

log = logging.getLogger("pycrdt_server")
_dropped = 0


def put_updates_counting(stream: MemoryObjectSendStream[bytes], event: TransactionEvent) -> None:
    """The library's `put_updates`, which drops an update silently when the room's queue (65,536
    updates) is full; this one does the same but says so, for the benchmark's report."""
    global _dropped
    try:
        stream.send_nowait(event.update)
    except anyio.WouldBlock:
        _dropped += 1
        if _dropped == 1 or _dropped % 10_000 == 0:
            log.warning("room update queue full: %d update(s) dropped, never broadcast", _dropped)
    except Exception:  # the library swallows these too (e.g. a closed stream at shutdown)
        pass


pycrdt.websocket.yroom.put_updates = put_updates_counting  # type: ignore[assignment]


class SerialStartWebsocketServer(WebsocketServer):
    """`WebsocketServer` whose rooms are started one at a time (see the module docstring)."""

    _room_start_lock: anyio.Lock | None = None

    async def start_room(self, room: YRoom) -> None:
        if self._room_start_lock is None:
            self._room_start_lock = anyio.Lock()
        async with self._room_start_lock:
            await super().start_room(room)


async def serve(host: str, port: int, deflate: bool) -> None:
    websocket_server = SerialStartWebsocketServer(auto_clean_rooms=False)
    config = uvicorn.Config(
        ASGIServer(websocket_server),
        host=host,
        port=port,
        lifespan="off",
        log_level="warning",
        ws_per_message_deflate=deflate,
        ws_max_size=64 * 1024 * 1024,
    )
    async with websocket_server:
        await uvicorn.Server(config).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1234)
    parser.add_argument(
        "--ws-per-message-deflate", action=argparse.BooleanOptionalAction, default=True
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.ws_per_message_deflate))
    else:
        uvloop.run(serve(args.host, args.port, args.ws_per_message_deflate))


if __name__ == "__main__":
    main()
