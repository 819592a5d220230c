"""Behind the nginx template (deploy/nginx.conf.template): a browser on the proxy's own origin
is let in, a foreign origin is not, and limits count the client's address, not the proxy's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from tests.cluster.nginx import Nginx
from tests.conftest import new_sqlite_url
from tests.security.conftest import close_of, raw, recv_until
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[ServerProcess, Nginx]]:
    env = {"PALIMPSEST_MAX_CONNECTIONS_PER_ADDRESS": "1"}
    with ServerProcess(new_sqlite_url(tmp_path), env=env) as server:
        proxy = Nginx([server.port]).start()
        try:
            yield server, proxy
        finally:
            proxy.stop()


async def test_own_origin_through_the_proxy_is_allowed_and_a_foreign_one_refused(
    proxied: tuple[ServerProcess, Nginx],
) -> None:
    _server, proxy = proxied
    own = f"http://127.0.0.1:{proxy.port}"
    async with raw(f"{proxy.ws_url}/ws/p1", origin=own) as ws:
        await recv_until(ws, bytes((0, 0)))
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with raw(f"{proxy.ws_url}/ws/p1", origin="http://127.0.0.1:1"):
                pass
        assert refused.value.response.status_code == 403


async def test_per_address_limit_counts_the_forwarded_client(
    proxied: tuple[ServerProcess, Nginx],
) -> None:
    _server, proxy = proxied
    # Two clients behind the proxy, told apart by X-Forwarded-For (the proxy appends its peer,
    # 127.0.0.1, to what it receives; uvicorn trusts the proxy and takes the client's).
    one = {"X-Forwarded-For": "203.0.113.1"}
    two = {"X-Forwarded-For": "203.0.113.2"}
    async with raw(f"{proxy.ws_url}/ws/p2", additional_headers=one) as a, \
            raw(f"{proxy.ws_url}/ws/p2", additional_headers=two) as b:
        await recv_until(a, bytes((0, 0)))
        await recv_until(b, bytes((0, 0)))
        async with raw(f"{proxy.ws_url}/ws/p3", additional_headers=one) as again:
            code, reason = await close_of(again)
        assert code == 4503 and "address" in reason
