"""What the HTTP edge admits before any route runs.

`HttpGuard`, a pure ASGI middleware configured from `Settings`, for HTTP requests and WebSocket
handshakes (docs/protocol.md, "HTTP edge"):

1. the `Host` header must name the server (DNS rebinding): 421 `host_not_allowed`, and a
   refused handshake (HTTP 421) for a WebSocket;
2. a command (any method but GET, HEAD, OPTIONS) whose `Origin` is neither the server's own
   nor in PALIMPSEST_ALLOWED_ORIGINS: 403 `origin_not_allowed` (cross-site request forgery);
   no `Origin` (curl, a server-side client) is judged by its token alone;
3. a command that carries a body (or declares a content type) must declare it as
   `application/json`, which a `no-cors` request cannot send: 415 `unsupported_media_type`;
4. a body past PALIMPSEST_MAX_BODY_BYTES: 413 `too_large`, from `Content-Length` before
   reading anything, or as soon as a chunked body streams past the limit (nothing past the
   limit is ever buffered); a body that has not all arrived within
   PALIMPSEST_HEADER_TIMEOUT_SECONDS of its headers: 408 `request_timeout`;
5. every HTTP response carries `X-Content-Type-Options: nosniff`.

Refusals are `{"error": {"code", "message"}}` and close the connection.

Before it, `header_timeout_protocol` gives uvicorn its h11 protocol with a deadline on request
headers: a connection that has not finished sending a request's headers within
PALIMPSEST_HEADER_TIMEOUT_SECONDS of connecting (or of its previous response) is closed. h11
itself bounds their size (`h11_max_incomplete_event_size`, set in server.cli).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from server.auth import origin_allowed
from server.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
JSON = "application/json"
NOSNIFF = (b"x-content-type-options", b"nosniff")


def _host_name(value: str) -> str | None:
    """The name part of a Host header (`name`, `name:port`, `[v6]`, `[v6]:port`), lower-cased,
    without a trailing dot; None if it is not of that form."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[:end + 1], value[end + 1:]
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if rest and not (rest[0] == ":" and rest[1:].isdigit()):
        return None
    name = name[:-1] if name.endswith(".") else name
    return name or None


def _bracketed(host: str) -> str:
    """A host as it appears in a Host header: IPv6 literals in brackets."""
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which Host headers name this server.

    By default the loopback names, any port, and the address it is bound to; bound to every
    address (0.0.0.0 or ::), also any IP literal: DNS rebinding needs a name, since a browser
    only sends an address as Host when it loaded the page from that very address.
    PALIMPSEST_ALLOWED_HOSTS adds names (`name`, any port, or `name:port`); `*` turns the
    check off, for a deployment behind a proxy that checks Host itself.
    """

    def __init__(self, settings: Settings) -> None:
        configured = [h.strip().lower() for h in settings.allowed_hosts if h.strip()]
        self.any = "*" in configured
        bound = _bracketed(settings.host)
        self.names = {*LOOPBACK_NAMES, bound}
        self.exact: set[str] = set()  # host:port entries
        for entry in configured:
            name = _host_name(entry)
            if name is None:  # a bare IPv6 address
                self.names.add(_bracketed(entry))
            elif name == entry.rstrip("."):
                self.names.add(name)
            else:
                self.exact.add(entry)
        self.any_ip = bound in ("0.0.0.0", "[::]")

    def allows(self, host: str | None) -> bool:
        if self.any:
            return True
        if host is None:
            return False
        name = _host_name(host)
        if name is None:
            return False
        return (name in self.names or host.strip().lower() in self.exact
                or (self.any_ip and _is_ip_literal(name)))


def _same_origin(conn: HTTPConnection) -> bool:
    origin = conn.headers.get("origin", "").strip().rstrip("/").lower()
    parts = urlsplit(origin)
    host = conn.headers.get("host", "").strip().lower()
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";")[0].strip().lower() == JSON


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """Answer with `{"error": ...}` and close the connection, the app never runs."""
    body = _error(code, message)
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})  # uvicorn answers HTTP 403
            return
        headers = [(b"content-type", JSON.encode()), NOSNIFF]
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode()),
               NOSNIFF, (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_bounded(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it passes `limit` bytes (or the client
    leaves); never holds more than `limit` bytes plus one chunk."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the connection's events."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_nosniff(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(name.lower() == NOSNIFF[0] for name, _ in headers):
                headers.append(NOSNIFF)
            message = {**message, "headers": headers}
        await send(message)

    return sending


class HttpGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.hosts = HostPolicy(settings)
        self.max_body = settings.max_body_bytes
        self.body_timeout = settings.header_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if await self.refused_host(scope, send):
            return
        conn = HTTPConnection(scope)
        if scope["type"] == "websocket":  # the endpoint checks a handshake's Origin
            await self.app(scope, receive, send)
            return
        send = _with_nosniff(send)
        refusal = self._refusal(conn)
        if refusal is not None:
            await _refuse(scope, send, *refusal)
            return
        if self._has_body(conn.headers):
            try:
                async with asyncio.timeout(self.body_timeout):
                    body = await _read_bounded(receive, self.max_body)
            except TimeoutError:
                await _refuse(scope, send, 408, "request_timeout",
                              f"the request body did not arrive within {self.body_timeout} s")
                return
            if body is None:
                await _refuse(scope, send, 413, "too_large",
                              f"the request body is over {self.max_body} bytes")
                return
            receive = _replaying(body, receive)
        await self.app(scope, receive, send)

    async def refused_host(self, scope: Scope, send: Send) -> bool:
        """Check 1 (the Host header); True when the request was refused (answered here). For
        an app served beside this middleware rather than through it (server.app)."""
        hosts = HTTPConnection(scope).headers.getlist("host")
        if len(hosts) != 1 or not self.hosts.allows(hosts[0]):
            shown = hosts[0][:100] if hosts else "(none)"
            await _refuse(scope, send, 421, "host_not_allowed",
                          f"this server does not answer to the host {shown!r}; "
                          "see PALIMPSEST_ALLOWED_HOSTS")
            return True
        return False

    def _refusal(self, conn: HTTPConnection) -> tuple[int, str, str] | None:
        headers = conn.headers
        length = headers.get("content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.max_body):
            return 413, "too_large", f"the request body is over {self.max_body} bytes"
        if conn.scope["method"] in SAFE_METHODS:
            return None
        if "origin" in headers and not (_same_origin(conn)
                                        or origin_allowed(conn, self.settings)):
            return (403, "origin_not_allowed",
                    "commands from another origin are refused; see PALIMPSEST_ALLOWED_ORIGINS")
        content_type = headers.get("content-type")
        if (content_type is not None or self._has_body(headers)) and not _is_json(content_type):
            return (415, "unsupported_media_type",
                    "a command's body must be sent as Content-Type: application/json")
        return None

    @staticmethod
    def _has_body(headers: Headers) -> bool:
        length = headers.get("content-length", "0").strip()
        return "transfer-encoding" in headers or not length.isdigit() or int(length) > 0


class HeaderDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete
    within `header_timeout` seconds of connecting or of the previous response.

    uvicorn has no such bound: its keep-alive timer stops at the first byte received, so a
    client sending half a request line holds the connection for ever. The deadline is checked
    when it fires: a running request (its headers complete) or an upgraded connection (now a
    WebSocket's) is left alone, and the deadline starts again after each response.
    """

    header_timeout: float = 5.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_deadline()

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(self.header_timeout, self._on_deadline)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # its headers arrived: the request is being answered
        self.transport.close()


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """The protocol class to give uvicorn (`http=`), with its deadline set."""
    attributes: dict[str, object] = {"header_timeout": seconds}
    protocol: type[H11Protocol] = type("HeaderDeadlineH11Protocol",
                                       (HeaderDeadlineH11Protocol,), attributes)
    return protocol

