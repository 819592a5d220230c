"""The HTTP edge (server/http/guard.py and the uvicorn settings in server/cli.py): each attack of
issue 11 replayed against a real `palimpsest serve` on 127.0.0.1, and what it gets now.

Memory is the server's peak RSS over the attack: /proc/PID/clear_refs resets the high-water
mark to the current RSS, VmHWM afterwards is the peak reached. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from server.http.guard import HostPolicy
from server.settings import Settings
from tests.conftest import new_sqlite_url
from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.timeout(120)

HEADER_TIMEOUT = 2.0  # PALIMPSEST_HEADER_TIMEOUT_SECONDS of the server under test
BODY_LIMIT = 64 * 1024  # the default PALIMPSEST_MAX_BODY_BYTES
MAX_GROWTH_KIB = 4 * 1024  # what an attack may add to the server's peak RSS
T = TypeVar("T")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An open server (no secret: the default), with a short header deadline."""
    url = new_sqlite_url(tmp_path_factory.mktemp("edge"))
    env = {"PALIMPSEST_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT)}
    with ServerProcess(url, env=env) as process:
        yield process


def pid_of(server: ServerProcess) -> int:
    assert server.process is not None
    return server.process.pid


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def peak_growth_kib(pid: int, attack: Callable[[], T]) -> tuple[T, int]:
    """Run `attack`; its result and how many KiB the server's peak RSS rose above the RSS
    it had before."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _kib(pid, "VmRSS")
    result = attack()
    return result, _kib(pid, "VmHWM") - before


def connect(server: ServerProcess, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def head(server: ServerProcess, request_line: str, *headers: str,
         host: str | None = None) -> bytes:
    lines = [request_line, f"Host: {host or f'127.0.0.1:{server.port}'}", *headers, "", ""]
    return "\r\n".join(lines).encode()


def read_until_closed(sock: socket.socket, within: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed);
    fails if it is still open after `within` seconds."""
    data = b""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the server kept the connection open; got {data[:100]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return data
        except TimeoutError:
            continue
        if not chunk:
            return data
        data += chunk


def read_head(sock: socket.socket, within: float = 10) -> bytes:
    """The status line and headers of one response (and whatever came with them)."""
    data = b""
    deadline = time.monotonic() + within
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One whole response on a kept-alive connection (Content-Length bodies only)."""
    data = read_head(sock)
    headers, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    for _ in range(100):
        if len(body) >= length:
            break
        body += sock.recv(65536)
    return int(headers.split()[1]), body


def wait_closed(socks: list[socket.socket], within: float) -> list[float]:
    """When (seconds from now) the server closed each of `socks`, waiting at most `within`."""
    start = time.monotonic()
    closed: list[float] = []
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while len(closed) < len(socks) and time.monotonic() - start < within:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if not data:
                    selector.unregister(sock)
                    closed.append(time.monotonic() - start)
    return closed


def assert_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert answer.json()["error"]["message"]
    assert answer.headers["x-content-type-options"] == "nosniff"


# Headers: size and time


def test_a_megabyte_of_headers_is_refused_and_costs_no_memory(edge: ServerProcess) -> None:
    assert httpx.get(f"{edge.http_url}/healthz", timeout=10).status_code == 200  # warm up
    pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(1000))  # ~1 MB

    def flood() -> list[tuple[int, bytes]]:
        outcomes = []
        for _ in range(5):
            with connect(edge) as sock:
                sock.sendall(head(edge, "GET /healthz HTTP/1.1")[:-2])  # headers go on
                sent = 0
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    for start in range(0, len(pad), 16384):
                        sent += sock.send(pad[start:start + 16384])
                    sock.sendall(b"\r\n")
                outcomes.append((sent, read_until_closed(sock)))
        return outcomes

    outcomes, growth = peak_growth_kib(pid_of(edge), flood)
    print(f"\n1 MB of headers x5: bytes sent before the server closed "
          f"{[sent for sent, _ in outcomes]}, answers {[a[:12] for _, a in outcomes]}, "
          f"peak RSS +{growth} KiB")
    for _sent, answer in outcomes:
        # 400 (uvicorn's answer to h11's "receive buffer too long"), or just closed.
        assert answer == b"" or answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 431 ")), answer
    assert growth < MAX_GROWTH_KIB
    assert httpx.get(f"{edge.http_url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("sent", [
    b"",  # connected, then silence
    b"GET /heal",  # half a request line
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",  # headers that never end
])
def test_a_connection_that_stops_before_its_headers_end_is_closed_in_time(
    edge: ServerProcess, sent: bytes,
) -> None:
    with connect(edge) as sock:
        sock.sendall(sent)
        start = time.monotonic()
        assert read_until_closed(sock, within=HEADER_TIMEOUT + 5) == b""
        elapsed = time.monotonic() - start
    print(f"\n{sent[:20]!r}...: closed after {elapsed:.2f} s (bound {HEADER_TIMEOUT} s)")
    assert HEADER_TIMEOUT - 0.5 <= elapsed <= HEADER_TIMEOUT + 2


def test_the_deadline_starts_again_after_each_response_on_a_kept_alive_connection(
    edge: ServerProcess,
) -> None:
    """uvicorn's own keep-alive timer stops at the first byte; the header deadline does not."""
    with connect(edge) as sock:
        for _ in range(3):  # a slow but honest client: each request in time, kept alive
            time.sleep(HEADER_TIMEOUT / 4)
            sock.sendall(head(edge, "GET /healthz HTTP/1.1"))
            status, _ = read_response(sock)
            assert status == 200
        sock.sendall(b"GET /heal")
        start = time.monotonic()
        assert read_until_closed(sock, within=HEADER_TIMEOUT + 5) == b""
        assert time.monotonic() - start <= HEADER_TIMEOUT + 2


def test_300_half_open_connections_are_all_closed_and_others_are_served_meanwhile(
    edge: ServerProcess,
) -> None:
    socks: list[socket.socket] = []
    try:
        start = time.monotonic()
        for _ in range(300):
            sock = connect(edge)
            socks.append(sock)
            sock.sendall(b"GET /heal")
        opened = time.monotonic() - start
        served = httpx.get(f"{edge.http_url}/healthz", timeout=5)
        assert served.status_code == 200
        assert time.monotonic() - start < opened + HEADER_TIMEOUT  # while they were all open
        closed = wait_closed(socks, within=opened + HEADER_TIMEOUT + 10)
    finally:
        for sock in socks:
            sock.close()
    print(f"\n300 half-open: opened in {opened:.2f} s, all closed {max(closed or [0]):.2f} s "
          f"after the last was opened (bound {HEADER_TIMEOUT} s)")
    assert len(closed) == 300
    assert max(closed) <= HEADER_TIMEOUT + 2
    assert httpx.get(f"{edge.http_url}/healthz", timeout=5).status_code == 200


# Bodies


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_50_mb_body_is_refused_at_the_limit_without_being_buffered(
    edge: ServerProcess, framing: str,
) -> None:
    total = 50 * 1024 * 1024
    chunk = b"a" * 65536
    if framing == "chunked":
        declared = "Transfer-Encoding: chunked"
        piece = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    else:
        declared = f"Content-Length: {total}"
        piece = chunk
    request = head(edge, "POST /api/documents HTTP/1.1", "Content-Type: application/json",
                   declared)

    def attack() -> tuple[int, bytes, float, int]:
        with connect(edge) as sock:
            sock.sendall(request)
            start = time.monotonic()
            sent = 0
            if framing == "content-length":  # answered before a byte of the body is sent
                with selectors.DefaultSelector() as answered:
                    answered.register(sock, selectors.EVENT_READ)
                    assert answered.select(timeout=2)
            with selectors.DefaultSelector() as selector:
                selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
                # Stream the body until the server answers.
                while sent < total and time.monotonic() - start < 10:
                    events = selector.select(timeout=5)
                    if any(mask & selectors.EVENT_READ for _, mask in events):
                        break
                    if events:
                        sent += sock.send(piece)
            answer = read_until_closed(sock)  # the answer, then the server closes
            elapsed = time.monotonic() - start
            # The server has stopped reading: the rest of the body cannot be sent.
            more = 0
            sock.settimeout(5)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for _ in range(total // len(piece)):
                    more += sock.send(piece)
            return sent, answer, elapsed, more

    (sent, answer, elapsed, more), growth = peak_growth_kib(pid_of(edge), attack)
    print(f"\n50 MB {framing}: 413 after {elapsed * 1000:.0f} ms, {sent} bytes sent before "
          f"it, {more} after, peak RSS +{growth} KiB")
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"too_large"' in answer and b"x-content-type-options: nosniff" in answer
    assert elapsed < 3
    if framing == "content-length":
        assert sent == 0
    assert sent + more < total // 4
    assert growth < MAX_GROWTH_KIB
    assert httpx.get(f"{edge.http_url}/healthz", timeout=5).status_code == 200


def test_a_body_that_stops_arriving_is_answered_408_in_time(edge: ServerProcess) -> None:
    with connect(edge) as sock:
        sock.sendall(head(edge, "POST /api/documents HTTP/1.1", "Content-Length: 100",
                          "Content-Type: application/json") + b'{"title": "')
        start = time.monotonic()
        answer = read_until_closed(sock, within=HEADER_TIMEOUT + 5)
        elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"request_timeout"' in answer, answer
    assert HEADER_TIMEOUT - 0.5 <= elapsed <= HEADER_TIMEOUT + 2


def test_revoke_and_every_command_have_the_same_body_cap(edge: ServerProcess) -> None:
    big = b'{"user": "' + b"u" * BODY_LIMIT + b'"}'
    json_type = {"Content-Type": "application/json"}
    for path in ("/api/documents", "/api/documents/capped/revoke",
                 "/api/documents/capped/restore", "/api/documents/capped/versions"):
        assert_error(httpx.post(edge.http_url + path, content=big, headers=json_type,
                                timeout=10), 413, "too_large")
    assert_error(httpx.patch(edge.http_url + "/api/documents/capped", content=big,
                             headers=json_type, timeout=10), 413, "too_large")


# Cross-origin commands and DNS rebinding


async def test_a_cross_origin_no_cors_command_changes_nothing(edge: ServerProcess) -> None:
    doc = "csrf-target"
    async with httpx.AsyncClient(base_url=edge.http_url, timeout=10) as http:
        assert (await http.post("/api/documents", json={"id": doc, "title": "Mine"})
                ).status_code == 201
        async with YClient(edge.ws_url, doc) as client:
            client.insert(0, "keep me")
            for _ in range(500):  # until the read side has the edit (10 s at most)
                before = (await http.get(f"/api/documents/{doc}")).json()
                if before["text"] == "keep me":
                    break
                await asyncio.sleep(0.02)
        # What `fetch(url, {method: 'POST', mode: 'no-cors', body})` from another page sends.
        evil = {"Origin": "http://evil.example", "Content-Type": "text/plain;charset=UTF-8"}
        forged = [
            ("POST", f"/api/documents/{doc}/restore", '{"seq":0}'),
            ("POST", "/api/documents", '{"id":"planted"}'),
            ("POST", f"/api/documents/{doc}/versions", '{"seq":1,"name":"evil"}'),
            ("POST", f"/api/documents/{doc}/revoke", '{"user":"anonymous"}'),
            ("PATCH", f"/api/documents/{doc}", '{"title":"pwned"}'),
        ]
        for method, path, body in forged:
            answer = await http.request(method, path, content=body, headers=evil)
            assert_error(answer, 403, "origin_not_allowed")
            # Even a JSON content type from another origin (which would need a preflight).
            answer = await http.request(method, path, content=body,
                                        headers={**evil, "Content-Type": "application/json"})
            assert_error(answer, 403, "origin_not_allowed")
            # A client that sends no Origin still cannot send a simple (non-JSON) body.
            answer = await http.request(method, path, content=body,
                                        headers={"Content-Type": "text/plain"})
            assert_error(answer, 415, "unsupported_media_type")
        # An empty form post from another origin: no body, still refused.
        answer = await http.post("/api/documents", headers={"Origin": "null"})
        assert_error(answer, 403, "origin_not_allowed")
        assert (await http.get(f"/api/documents/{doc}")).json() == before
        assert before["text"] == "keep me" and before["title"] == "Mine"
        assert (await http.get(f"/api/documents/{doc}/versions")).json()["items"] == []
        assert (await http.get("/api/documents/planted")).status_code == 404


def test_same_origin_json_commands_still_work(edge: ServerProcess) -> None:
    own = {"Origin": edge.http_url, "Content-Type": "application/json"}
    created = httpx.post(f"{edge.http_url}/api/documents", content='{"title": "ok"}',
                         headers=own, timeout=10)
    assert created.status_code == 201, created.text
    assert created.headers["x-content-type-options"] == "nosniff"
    renamed = httpx.patch(f"{edge.http_url}/api/documents/{created.json()['id']}",
                          json={"title": "still ok"}, timeout=10)  # no Origin: curl-like
    assert renamed.status_code == 200 and renamed.json()["title"] == "still ok"
    for answer in (httpx.get(f"{edge.http_url}/healthz", timeout=10),
                   httpx.get(f"{edge.http_url}/api/documents", timeout=10),
                   httpx.get(f"{edge.http_url}/api/nothing", timeout=10),
                   httpx.delete(f"{edge.http_url}/api/documents/x", timeout=10)):
        assert answer.headers["x-content-type-options"] == "nosniff"


def handshake_status(server: ServerProcess, host: str) -> int:
    request = head(server, "GET /ws/rebind HTTP/1.1", "Upgrade: websocket",
                   "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                   "Sec-WebSocket-Version: 13", host=host)
    with connect(server) as sock:
        sock.sendall(request)
        return int(read_head(sock).split()[1])


@pytest.mark.parametrize("auth", ["open", "secret"])
def test_a_foreign_host_is_refused_for_http_and_the_websocket_handshake(
    request: pytest.FixtureRequest, auth: str,
) -> None:
    server: ServerProcess = request.getfixturevalue("edge" if auth == "open" else "secure_server")
    evil = f"evil.example:{server.port}"
    for path in ("/healthz", "/api/documents", "/api/documents/x", "/", "/metrics"):
        assert_error(httpx.get(server.http_url + path, headers={"Host": evil}, timeout=10),
                     421, "host_not_allowed")
    assert_error(httpx.post(server.http_url + "/api/documents", json={"id": "rebound"},
                            headers={"Host": evil}, timeout=10), 421, "host_not_allowed")
    assert handshake_status(server, evil) == 421
    assert handshake_status(server, "evil.example") == 421
    # The server's own names still work (with a secret, the handshake is accepted and then
    # closed with 4401: still a 101).
    for own in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "[::1]"):
        assert handshake_status(server, own) == 101
        answer = httpx.get(server.http_url + "/healthz", headers={"Host": own}, timeout=10)
        assert answer.status_code == 200


def test_which_hosts_name_the_server() -> None:
    default = HostPolicy(Settings(host="127.0.0.1"))
    for host in ("127.0.0.1", "127.0.0.1:8000", "localhost:1", "LOCALHOST.", "[::1]:80"):
        assert default.allows(host), host
    for host in (None, "", "evil.example", "evil.example:8000", "127.0.0.1.evil.example",
                 "localhost:80:80", "localhost:x", "[::1", "10.0.0.1", "127.0.0.2"):
        assert not default.allows(host), host
    named = HostPolicy(Settings(host="docs.lan", allowed_hosts=("Docs.Example.com",
                                                                "edge.example:8443", "::2")))
    for host in ("docs.lan:8000", "docs.example.com", "docs.example.com:443",
                 "edge.example:8443", "[::2]:8000", "localhost"):
        assert named.allows(host), host
    for host in ("edge.example", "edge.example:8444", "example.com"):
        assert not named.allows(host), host
    everywhere = HostPolicy(Settings(host="0.0.0.0"))
    assert everywhere.allows("192.0.2.7:8000") and everywhere.allows("[2001:db8::1]")
    assert not everywhere.allows("rebind.evil.example:8000")
    assert HostPolicy(Settings(allowed_hosts=("*",))).allows("anything.example")

