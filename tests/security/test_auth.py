"""Tokens: who may connect, as whom, and with what role; origins; revocation."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest
import websockets
from pycrdt import Doc, Text, write_var_uint

from server.realtime import protocol
from server.tokens import mint, verify
from tests.conftest import new_sqlite_url
from tests.node.yclient import yclient
from tests.security.conftest import (
    SECRET,
    close_of,
    logged_events,
    raw,
    recv_until,
    token,
)
from tests.support.pyclient import YClient
from tests.support.server_process import ROOT, ServerProcess

pytestmark = pytest.mark.timeout(120)


def update_inserting(text: str) -> bytes:
    doc: Doc = Doc()
    doc.get("content", type=Text).insert(0, text)
    return doc.get_update()


def test_token_create_prints_a_token_alone_on_stdout() -> None:
    env = {**os.environ, "PALIMPSEST_SECRET": SECRET}
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "token", "create", "--user", "ann", "--doc",
         "notes-*", "--role", "write", "--ttl", "60"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert out.count("\n") == 1
    claims = verify(out.strip(), SECRET)
    assert (claims.user_id, claims.docs) == ("ann", {"notes-*": "write"})
    assert 55 < claims.expires_at - claims.issued_at <= 60


def test_token_create_without_a_secret_fails_loudly() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PALIMPSEST_SECRET"}
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "token", "create", "--user", "ann", "--doc", "d",
         "--role", "read", "--ttl", "60"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0 and done.stdout == ""
    assert "PALIMPSEST_SECRET" in done.stderr


@pytest.mark.parametrize(
    ("query", "code", "reason"),
    [
        ("", 4401, "missing token"),
        ("?token=not-a-jwt", 4401, "invalid token"),
        ("?token=" + mint("another-secret-0123456789-0123456789", "ann", {"*": "write"}, 60),
         4401, "invalid token"),
        ("?token=" + mint(SECRET, "ann", {"d1": "write"}, 60, now=0), 4401, "token expired"),
        # Minted at collection time: a TTL that outlives the whole suite, so only the
        # document can be what the token does not grant.
        ("?token=" + mint(SECRET, "ann", {"other": "admin", "d1x*": "admin"}, 7200),
         4403, "does not grant"),
    ],
    ids=["no-token", "malformed", "forged", "expired", "wrong-document"],
)
async def test_websocket_without_a_valid_token_for_the_document_is_closed_with_a_reason(
    secure_server: ServerProcess, query: str, code: int, reason: str
) -> None:
    async with raw(f"{secure_server.ws_url}/ws/d1{query}") as ws:
        got_code, got_reason = await close_of(ws)
    assert got_code == code
    assert reason in got_reason


async def test_stock_client_with_a_token_param_syncs_and_its_user_is_the_actor(
    secure_server: ServerProcess,
) -> None:
    url = f"{secure_server.ws_url}/ws"
    writer_token = token("user-42", {"shared-*": "write"}, display_name="Ann")
    async with yclient(url, "shared-a", {"token": writer_token, "name": "mallory"}) as c:
        await c.wait_synced()
        await c.insert(0, "hello")
        async with YClient(secure_server.ws_url, "shared-a", token=writer_token) as other:
            await other.wait_text("hello")
    events = await logged_events(secure_server.database_url, "shared-a")
    assert events and {e.actor for e in events} == {"user-42"}


async def test_read_only_connection_syncs_and_sees_edits_but_never_changes_the_document(
    secure_server: ServerProcess,
) -> None:
    url = f"{secure_server.ws_url}/ws"
    doc = "ro-1"
    writer_token = token("writer", {doc: "write"})
    reader_token = token("reader", {doc: "read"})
    async with YClient(secure_server.ws_url, doc, token=writer_token) as writer:
        writer.insert(0, "base")
        async with yclient(url, doc, {"token": reader_token}) as reader:
            await reader.wait_synced()
            await reader.wait_text("base")
            writer.insert(4, " live")
            await reader.wait_text("base live")
            # The stock reader edits locally: its update is refused and goes nowhere.
            await reader.insert(0, "EVIL ")
            writer.insert(0, ">")
            await reader.wait_text("EVIL >base live")
            await writer.wait_text(">base live")
            assert not [e for e in reader.events if e.get("event") == "connection-close"]
    await asyncio.sleep(0)  # the writer's last update is acknowledged before it disconnects
    async with YClient(secure_server.ws_url, doc, token=reader_token) as fresh:
        await fresh.wait_text(">base live")
    events = await logged_events(secure_server.database_url, doc)
    assert {e.actor for e in events} == {"writer"}


async def test_read_only_update_is_answered_with_permission_denied(
    secure_server: ServerProcess,
) -> None:
    doc = "ro-2"
    # A reader cannot create a document (4404): a writer's connection creates it, empty.
    async with raw(f"{secure_server.ws_url}/ws/{doc}?token={token('w', {doc: 'write'})}") as w:
        await recv_until(w, bytes((0, 0)))
    async with raw(f"{secure_server.ws_url}/ws/{doc}?token={token('r', {doc: 'read'})}") as ws:
        await recv_until(ws, bytes((0, 0)))  # the server's sync step 1
        ws_update = protocol.sync_update(update_inserting("nope"))
        await ws.send(ws_update)
        denied = await recv_until(ws, bytes((protocol.MESSAGE_AUTH,)))
        assert denied[:2] == bytes((2, 0)) and b"read-only" in denied
        # An empty step 2 (what a reader's client sends) changes nothing: no answer, no close.
        await ws.send(protocol.sync_step2(b"\x00\x00"))
        await ws.send(bytes((protocol.MESSAGE_QUERY_AWARENESS,)))
        await ws.send(protocol.sync_step1(b"\x00"))
        reply = await recv_until(ws, bytes((0, 1)))
        assert reply == protocol.sync_step2(b"\x00\x00")
    assert await logged_events(secure_server.database_url, doc) == []


async def test_foreign_origin_is_refused_at_the_handshake(secure_server: ServerProcess) -> None:
    good = token("ann", {"o-1": "write"})
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with raw(f"{secure_server.ws_url}/ws/o-1?token={good}",
                       origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    # Its own origin (the Host it was reached at) is fine, and so is no Origin at all.
    own = f"http://127.0.0.1:{secure_server.port}"
    async with raw(f"{secure_server.ws_url}/ws/o-1?token={good}", origin=own) as ws:
        await recv_until(ws, bytes((0, 0)))
    async with raw(f"{secure_server.ws_url}/ws/o-1?token={good}") as ws:
        await recv_until(ws, bytes((0, 0)))


async def test_connection_is_closed_when_its_token_expires(secure_server: ServerProcess) -> None:
    short = token("ann", {"exp-1": "write"}, ttl=1.5)
    async with raw(f"{secure_server.ws_url}/ws/exp-1?token={short}") as ws:
        await recv_until(ws, bytes((0, 0)))
        assert await close_of(ws, within=10) == (4403, "token expired")


async def test_admin_revocation_closes_the_users_connections_and_refuses_their_old_tokens(
    secure_server: ServerProcess,
) -> None:
    doc = "rev-1"
    victim = token("bob", {doc: "write"})
    bystander = token("cat", {doc: "write"})
    api = f"{secure_server.http_url}/api/documents/{doc}/revoke"
    async with httpx.AsyncClient(timeout=10) as http, \
            raw(f"{secure_server.ws_url}/ws/{doc}?token={victim}") as bob, \
            raw(f"{secure_server.ws_url}/ws/{doc}?token={bystander}") as cat:
        await recv_until(bob, bytes((0, 0)))
        await recv_until(cat, bytes((0, 0)))
        no_token = await http.post(api, json={"user": "bob"})
        assert no_token.status_code == 401
        assert no_token.json()["error"]["code"] == "unauthorised"
        writer_only = await http.post(api, json={"user": "bob"},
                                      headers={"Authorization": f"Bearer {bystander}"})
        assert writer_only.status_code == 403
        assert writer_only.json()["error"]["code"] == "forbidden"
        admin = token("root", {"rev-*": "admin"})
        done = await http.post(api, json={"user": "bob"},
                               headers={"Authorization": f"Bearer {admin}"})
        assert done.status_code == 200 and done.json()["closed"] == 1
        assert await close_of(bob) == (4403, "access revoked")
        await cat.send(protocol.sync_step1(b"\x00"))
        await recv_until(cat, bytes((0, 1)))  # the bystander is untouched
    async with raw(f"{secure_server.ws_url}/ws/{doc}?token={victim}") as again:
        code, reason = await close_of(again)
        assert code == 4403 and "revoked" in reason
    # A token minted after the revocation works: access can be given back.
    async with raw(f"{secure_server.ws_url}/ws/{doc}?token={token('bob', {doc: 'read'})}") as ok:
        await recv_until(ok, bytes((0, 0)))


def test_tampered_token_is_refused() -> None:
    good = token("ann", {"*": "read"})
    claims = jwt.decode(good, options={"verify_signature": False})
    claims["docs"] = {"*": "admin"}
    forged = jwt.encode(claims, "a-guessed-secret-0123456789-0123456789", algorithm="HS256")
    with pytest.raises(Exception, match="invalid token"):
        verify(forged, SECRET)


async def test_without_a_secret_the_actor_is_the_name_given(tmp_path: Path) -> None:
    url = new_sqlite_url(tmp_path)
    with ServerProcess(url) as server:
        async with YClient(server.ws_url, "anon-1", name="Zoe") as zoe, \
                YClient(server.ws_url, "anon-1") as other:
            zoe.insert(0, "x")
            await other.wait_text("x")  # broadcast only after the commit
        events = await logged_events(url, "anon-1")
    assert [e.actor for e in events] == ["Zoe"]


def test_open_server_refuses_a_public_address() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PALIMPSEST_SECRET"}
    env.pop("PALIMPSEST_ALLOW_PUBLIC", None)
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "PALIMPSEST_SECRET" in done.stderr


async def test_api_needs_a_bearer_token_with_the_right_role(
    secure_server: ServerProcess,
) -> None:
    doc = "api-1"
    base = f"{secure_server.http_url}/api/documents"

    def bearer(t: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {t}"}

    writer = token("w", {"api-*": "write"})
    reader = token("r", {doc: "read"})
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(base, json={"id": doc, "title": "t"}, headers=bearer(writer))
        assert created.status_code == 201, created.text
        for headers, status in [({}, 401), (bearer("junk"), 401),
                                (bearer(token("x", {"other": "admin"})), 403),
                                (bearer(reader), 200)]:
            answer = await http.get(f"{base}/{doc}", headers=headers)
            assert answer.status_code == status, answer.text
            if status != 200:
                assert set(answer.json()["error"]) == {"code", "message"}
        renamed = await http.patch(f"{base}/{doc}", json={"title": "u"}, headers=bearer(reader))
        assert renamed.status_code == 403
        async with asyncio.timeout(10):  # the list is a read model: projected, not instant
            while True:
                listed = await http.get(base, headers=bearer(reader))
                ids = [item["id"] for item in listed.json()["items"]]
                assert set(ids) <= {doc}, ids  # never a document the token does not grant
                if ids:
                    break
                await asyncio.sleep(0.05)


def presence(client: int, clock: int, name: str) -> bytes:
    state = json.dumps({"user": {"name": name}}).encode()
    return protocol.awareness(write_var_uint(1) + write_var_uint(client) + write_var_uint(clock)
                              + write_var_uint(len(state)) + state)


async def test_read_only_connection_sees_and_shares_presence(
    secure_server: ServerProcess,
) -> None:
    doc = "ro-presence"
    url = f"{secure_server.ws_url}/ws/{doc}"
    async with raw(f"{url}?token={token('w', {doc: 'write'})}") as writer:
        await recv_until(writer, bytes((0, 0)))  # the writer's connection created the document
        async with raw(f"{url}?token={token('r', {doc: 'read'})}") as reader:
            await recv_until(reader, bytes((0, 0)))
            await writer.send(presence(11, 1, "Writer"))
            assert b"Writer" in await recv_until(reader, bytes((protocol.MESSAGE_AWARENESS,)))
            await reader.send(presence(22, 1, "Reader"))
            # The writer first gets its own presence back (as from the reference server).
            while b"Writer" in (frame := await recv_until(writer, bytes((1,)))):
                pass
            assert b"Reader" in frame


async def test_read_only_step2_is_silent_when_it_deletes_nothing_new(
    secure_server: ServerProcess,
) -> None:
    doc = "ro-deletes"
    url = f"{secure_server.ws_url}/ws/{doc}"
    source: Doc = Doc(client_id=77)
    text = source.get("content", type=Text)
    text.insert(0, "abcdef")
    del text[1:3]
    async with raw(f"{url}?ack=1&token={token('w', {doc: 'write'})}") as writer:
        await writer.send(protocol.sync_update(source.get_update()))
        await recv_until(writer, bytes((protocol.MESSAGE_ACK,)))
    async with raw(f"{url}?token={token('r', {doc: 'read'})}") as reader:
        await recv_until(reader, bytes((0, 0)))
        # What a stock reader sends after syncing: nothing new, the same deletions.
        await reader.send(protocol.sync_step2(source.get_update(source.get_state())))
        await reader.send(protocol.sync_step1(b"\x00"))
        async with asyncio.timeout(10):
            while True:
                frame = await reader.recv()
                assert isinstance(frame, bytes) and frame[:1] != bytes((protocol.MESSAGE_AUTH,))
                if frame[:2] == bytes((0, 1)):
                    break  # our step 1 answered, and nothing refused before it
        # Deleting what is not deleted yet is a write.
        state = source.get_state()
        del text[0:1]
        await reader.send(protocol.sync_step2(source.get_update(state)))
        denied = await recv_until(reader, bytes((protocol.MESSAGE_AUTH,)))
        assert denied[:2] == bytes((2, 0))
    async with YClient(secure_server.ws_url, doc, token=token("r", {doc: "read"})) as fresh:
        await fresh.wait_text("adef")
