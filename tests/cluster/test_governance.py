"""Governance across nodes (PostgreSQL and Redis, no sweep: what reaches the other node, the bus
carried): an erasure on one node drops the other's live copy and its cached texts."""

from __future__ import annotations

import httpx
import pytest

from server.write.update_rewrite import placeholder
from tests.cluster.conftest import StartNodes
from tests.governance.support import closed_with, every_answer, settle
from tests.support.pyclient import YClient
from tests.support.services import RedisServer

pytestmark = [pytest.mark.timeout(180), pytest.mark.postgres, pytest.mark.redis]

PIECES = ["Okapi-", "4410-", "MARMALADE"]
SECRET = "".join(PIECES)


async def test_an_erasure_on_one_node_reaches_the_live_copy_and_cached_texts_of_another(
        start_nodes: StartNodes, cluster_db: str, redis_server: RedisServer) -> None:
    one, two = start_nodes(2, cluster_db, redis_server.url,
                           env={"PALIMPSEST_SNAPSHOT_EVERY": "2"})
    async with httpx.AsyncClient(base_url=one.http_url, timeout=30) as at_one, \
            httpx.AsyncClient(base_url=two.http_url, timeout=30) as at_two:
        await at_one.post("/api/documents", json={"id": "doc", "title": "t"})
        far = YClient(two.ws_url, "doc", name="mallory")
        await far.connect()
        for piece in PIECES:
            far.insert(len(far.value()), piece)
        far.insert(len(far.value()), " end")
        head = (await settle(at_two, "doc", SECRET + " end"))["seq"]
        # Node two reads every seq: its cache now holds snapshot texts with the secret.
        assert any(SECRET in body for body in await every_answer(at_two, "doc"))

        erased = await at_one.post("/api/documents/doc/erase", json={
            "from_seq": 2, "to_seq": 1 + len(PIECES), "reason": "leaked"})
        assert erased.status_code == 200, erased.text
        assert far.ws is not None and await closed_with(far.ws, 15) == 4500
        await far.close()
        audit = erased.json()["seq"]
        assert audit == head + 1
        expected = placeholder(SECRET) + " end"
        assert (await at_two.get(f"/api/documents/doc?min_seq={audit}")).json()["text"] == \
            expected
        for body in await every_answer(at_two, "doc"):
            assert not [p for p in PIECES if p in body], body[:200]
        async with YClient(two.ws_url, "doc", name="newcomer") as newcomer:
            await newcomer.wait_text(expected)
