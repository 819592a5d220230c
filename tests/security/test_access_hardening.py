"""Smaller holes of issue 11 (item 6), each attacked against a real server.

(a) the document list's `next` cursor named documents the caller may not read;
(b) huge integers in parameters and bodies gave a plain-text 500 (OverflowError);
(c) revocations were forgotten on restart, and never reached a node without connections;
(d) a one-byte PALIMPSEST_SECRET only warned;
(e) a document id ending in a newline (`doc1%0A`) was taken for another document.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import new_postgres_url, new_sqlite_url
from tests.security.conftest import SECRET, close_of, raw, recv_until, token
from tests.support.server_process import ROOT, ServerProcess
from tests.support.services import PostgresServer, free_port

pytestmark = pytest.mark.timeout(180)

HUGE = "99999999999999999999999"
WRITER = token("writer", {"*": "admin"})


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


def assert_json_error(answer: httpx.Response, status: int, code: str | None = None) -> None:
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    error = answer.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder: Path = tmp_path_factory.mktemp("hardened")
    with ServerProcess(new_sqlite_url(folder), env={"PALIMPSEST_SECRET": SECRET}) as process:
        yield process


async def create(http: httpx.AsyncClient, doc_id: str) -> None:
    answer = await http.post("/api/documents", json={"id": doc_id, "title": doc_id},
                             headers=bearer(WRITER))
    assert answer.status_code == 201, answer.text


async def projected(http: httpx.AsyncClient, doc_id: str) -> None:
    answer = await http.get(f"/api/documents/{doc_id}", params={"min_seq": 1},
                            headers=bearer(WRITER))
    assert answer.status_code == 200, answer.text


# (a) Enumeration through the list cursor


def looks_inside(cursor: str) -> str:
    """Whatever a client could read out of a cursor: itself and its base64 decoding."""
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:
        decoded = b""
    return cursor + decoded.decode("latin-1")


async def walk(http: httpx.AsyncClient, reader: str, limit: int) -> tuple[list[str], list[str]]:
    """Every page of the list: (ids in order, cursors given)."""
    ids: list[str] = []
    cursors: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    for _ in range(200):  # bounded: far more pages than documents
        page = await http.get("/api/documents", params=params, headers=bearer(reader))
        assert page.status_code == 200, page.text
        ids += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next"]
        if cursor is None:
            return ids, cursors
        cursors.append(cursor)
        params = {"limit": limit, "cursor": cursor}
    raise AssertionError("the list never ended")


async def test_the_document_list_and_its_cursor_name_only_readable_documents(
    hardened: ServerProcess,
) -> None:
    # Newest first, the list reads: secret-7, secret-6, pub-3, secret-5, secret-4, pub-2, ...
    # so a page of readable documents often ends next to (or on) a secret one.
    order = ["lead-a", "lead-b", "pub-1", "secret-1", "secret-2", "secret-3", "pub-2",
             "secret-4", "secret-5", "pub-3", "secret-6", "secret-7"]
    async with httpx.AsyncClient(base_url=hardened.http_url, timeout=10) as http:
        for doc_id in order:
            await create(http, doc_id)
        for doc_id in order:
            await projected(http, doc_id)
        reader = token("pub-reader", {"pub-*": "read"})
        for limit in (1, 2, 3, 500):
            ids, cursors = await walk(http, reader, limit)
            assert ids == ["pub-3", "pub-2", "pub-1"], (limit, ids)
            for cursor in cursors:
                inside = looks_inside(cursor)
                assert "secret" not in inside and "lead" not in inside, cursor
        # Someone who reads everything pages through everything, each document once.
        everything = token("all", {"*": "read"})
        ids, _ = await walk(http, everything, 2)
        assert len(ids) == len(set(ids)), ids
        assert [i for i in ids if i in order] == order[::-1]
        # A cursor is opaque and authenticated: a forged, tampered or old-style one is a 400.
        _, cursors = await walk(http, reader, 1)
        old_style = base64.urlsafe_b64encode(
            f'[{time.time()}, "secret-9"]'.encode()).decode().rstrip("=")
        tampered = cursors[0][:-2] + ("AA" if not cursors[0].endswith("AA") else "BB")
        for bad in (old_style, tampered, "garbage", "x" * 5000):
            answer = await http.get("/api/documents", params={"cursor": bad},
                                    headers=bearer(reader))
            assert_json_error(answer, 400, "bad_request")


# (b) Huge integers: 400 in JSON, never a 500


BIG = 2**63 - 1  # seqs and counts: 64-bit columns
REV = 2**31 - 1  # revision numbers: a 32-bit column
# (method, path, query, body, the largest value allowed); "N" marks the integer under test.
INTEGER_INPUTS = [
    ("GET", "/api/documents", {"limit": "N"}, None, 500),
    ("GET", "/api/documents/num-1", {"at": "N"}, None, BIG),
    ("GET", "/api/documents/num-1", {"min_seq": "N"}, None, BIG),
    ("GET", "/api/documents/num-1/revisions", {"limit": "N"}, None, 500),
    ("GET", "/api/documents/num-1/revisions", {"min_seq": "N"}, None, BIG),
    ("GET", "/api/documents/num-1/revisions", {"cursor": "N"}, None, REV),
    ("GET", "/api/documents/num-1/versions", {"min_seq": "N"}, None, BIG),
    ("GET", "/api/documents/num-1/diff", {"from": "0", "to": "N"}, None, BIG),
    ("GET", "/api/documents/num-1/diff", {"from": "N", "to": "1"}, None, BIG),
    ("GET", "/api/documents/num-1/events", {"after": "N"}, None, BIG),
    ("GET", "/api/documents/num-1/events", {"limit": "N"}, None, 500),
    ("POST", "/api/documents/num-1/versions", None, {"seq": "N", "name": "v"}, BIG),
    ("POST", "/api/documents/num-1/restore", None, {"seq": "N"}, BIG),
    ("POST", "/api/documents/num-1/restore", None, {"revision": "N"}, REV),
]
IDS = [f"{m} {p.removeprefix('/api/documents')} "
       + next(k for k, v in {**(q or {}), **(b or {})}.items() if v == "N")
       for m, p, q, b, _ in INTEGER_INPUTS]


def with_value(params: dict[str, str] | None, body: dict[str, Any] | None,
               value: int) -> tuple[dict[str, str] | None, dict[str, Any] | None]:
    if params is not None:
        params = {k: (str(value) if v == "N" else v) for k, v in params.items()}
    if body is not None:
        body = {k: (value if v == "N" else v) for k, v in body.items()}
    return params, body


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def numbered(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server on each backend with document num-1 (a few events, one revision)."""
    if request.param == "postgres":
        pg: PostgresServer = request.getfixturevalue("pg_server")
        url = new_postgres_url(pg)
    else:
        url = new_sqlite_url(tmp_path_factory.mktemp("numbers"))
    with ServerProcess(url, env={"PALIMPSEST_SECRET": SECRET}) as process:
        async def seed() -> None:
            async with httpx.AsyncClient(base_url=process.http_url, timeout=10) as http:
                await create(http, "num-1")
                await projected(http, "num-1")
        asyncio.run(seed())
        yield process


@pytest.mark.parametrize(("method", "path", "params", "body", "largest"), INTEGER_INPUTS,
                         ids=IDS)
def test_every_integer_input_past_its_bound_is_a_400_in_json(
    numbered: ServerProcess, method: str, path: str, params: dict[str, str] | None,
    body: dict[str, Any] | None, largest: int,
) -> None:
    for value in (int(HUGE), 2**63, largest + 1, -1):
        query, payload = with_value(params, body, value)
        answer = httpx.request(method, numbered.http_url + path, params=query, json=payload,
                               headers=bearer(WRITER), timeout=10)
        assert_json_error(answer, 400, "bad_request")
    if body is not None:  # the body's own JSON: a huge literal, and floats
        for literal in (HUGE, "1e400", "1.5"):
            text = "{" + ", ".join(
                f'"{k}": ' + (literal if v == "N" else f'"{v}"') for k, v in body.items()) + "}"
            answer = httpx.request(method, numbered.http_url + path, content=text,
                                   headers={**bearer(WRITER),
                                            "Content-Type": "application/json"}, timeout=10)
            assert_json_error(answer, 400, "bad_request")


@pytest.mark.parametrize(("method", "path", "params", "body", "largest"), INTEGER_INPUTS,
                         ids=IDS)
def test_the_largest_integers_allowed_are_answered_in_json_on_every_backend(
    numbered: ServerProcess, method: str, path: str, params: dict[str, str] | None,
    body: dict[str, Any] | None, largest: int,
) -> None:
    """Right at the bound the value reaches the database: a 2xx or a 4xx, each in JSON,
    never a 500 nor a 503 (a 32-bit column given a 64-bit value fails on PostgreSQL)."""
    query, payload = with_value(params, body, largest)
    answer = httpx.request(method, numbered.http_url + path, params=query, json=payload,
                           headers=bearer(WRITER), timeout=10)
    assert answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json"), answer.text


# (c) Revocations survive a restart, and reach nodes that never heard of them


async def revoke(http: httpx.AsyncClient, base: str, doc: str, user: str) -> float:
    done = await http.post(f"{base}/api/documents/{doc}/revoke", json={"user": user},
                           headers=bearer(token("root", {doc: "admin"})))
    assert done.status_code == 200, done.text
    return float(done.json()["revoked_at"])


async def refused(server: ServerProcess, doc: str, old: str) -> None:
    """The old token is refused on the WebSocket (4403) and the API (403)."""
    async with raw(f"{server.ws_url}/ws/{doc}?token={old}") as ws:
        code, reason = await close_of(ws)
        assert (code, "revoked" in reason) == (4403, True), (code, reason)
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"{server.http_url}/api/documents/{doc}", headers=bearer(old))
    assert_json_error(answer, 403, "forbidden")


async def test_a_revoked_users_old_token_stays_refused_after_a_restart(
    database_url: str,
) -> None:
    url = database_url  # SQLite and PostgreSQL (tests/conftest.py)
    doc = "rev-restart"
    first_token = token("bob", {doc: "write"})
    with ServerProcess(url, env={"PALIMPSEST_SECRET": SECRET}) as server:
        async with httpx.AsyncClient(timeout=10) as http:
            created = await http.post(f"{server.http_url}/api/documents",
                                      json={"id": doc}, headers=bearer(WRITER))
            assert created.status_code == 201, created.text
            async with raw(f"{server.ws_url}/ws/{doc}?token={first_token}") as ws:
                await recv_until(ws, bytes((0, 0)))  # it works before the revocation
            first = await revoke(http, server.http_url, doc, "bob")
            await asyncio.sleep(0.01)  # tokens carry milliseconds: mint strictly after
            between = token("bob", {doc: "write"})
            assert time.time() > first
            second = await revoke(http, server.http_url, doc, "bob")  # revoked again: later
            assert second > first
        server.restart()
        await refused(server, doc, first_token)
        await refused(server, doc, between)  # the later revocation is the one kept
        fresh = token("bob", {doc: "write"})  # access can still be given back
        async with raw(f"{server.ws_url}/ws/{doc}?token={fresh}") as ws:
            await recv_until(ws, bytes((0, 0)))


async def test_a_revocation_reaches_a_read_node_with_no_connection_to_the_document(
    tmp_path: Path,
) -> None:
    """The bus only reaches nodes with connections to the document; a `--role read` node
    serving the API learns of the revocation from the table within its refresh period."""
    url = new_sqlite_url(tmp_path)
    doc = "rev-elsewhere"
    old = token("bob", {doc: "read"})
    env = {"PALIMPSEST_SECRET": SECRET, "PALIMPSEST_REVOCATION_REFRESH_SECONDS": "0.2"}
    with ServerProcess(url, env=env) as writer, \
            ServerProcess(url, env=env, role="read") as reader:
        async with httpx.AsyncClient(timeout=10) as http:
            created = await http.post(f"{writer.http_url}/api/documents", json={"id": doc},
                                      headers=bearer(WRITER))
            assert created.status_code == 201, created.text
            before = await http.get(f"{reader.http_url}/api/documents/{doc}",
                                    headers=bearer(old))
            assert before.status_code == 200, before.text
            await revoke(http, writer.http_url, doc, "bob")
            async with asyncio.timeout(10):
                while True:  # bounded by the timeout; the refresh period is 0.2 s
                    answer = await http.get(f"{reader.http_url}/api/documents/{doc}",
                                            headers=bearer(old))
                    if answer.status_code == 403:
                        break
                    assert answer.status_code == 200, answer.text
                    await asyncio.sleep(0.05)
            assert_json_error(answer, 403, "forbidden")


# (d) Short secrets


def palimpsest(args: list[str], secret: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PALIMPSEST_SECRET": secret, "DATABASE_URL": new_sqlite_url(folder)}
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("secret", ["x", "s" * 31, "é" * 15])
def test_a_secret_under_32_bytes_is_refused_by_serve_and_token_create(
    secret: str, tmp_path: Path,
) -> None:
    served = palimpsest(["serve", "--port", str(free_port())], secret, tmp_path)
    assert served.returncode == 2, served
    assert "at least 32" in served.stderr and "refusing to start" in served.stderr
    minted = palimpsest(["token", "create", "--user", "u", "--doc", "d", "--role", "read",
                         "--ttl", "60"], secret, tmp_path)
    assert minted.returncode == 2 and minted.stdout == "", minted
    assert "at least 32" in minted.stderr


def test_a_secret_of_32_bytes_mints_tokens(tmp_path: Path) -> None:
    minted = palimpsest(["token", "create", "--user", "u", "--doc", "d", "--role", "read",
                         "--ttl", "60"], "k" * 32, tmp_path)
    assert minted.returncode == 0, minted.stderr
    assert minted.stdout.count(".") == 2


# (e) Document ids are matched whole


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/documents/doc1%0A", None),
    ("GET", "/api/documents/doc1%0A/revisions", None),
    ("GET", "/api/documents/doc1%0A/versions", None),
    ("GET", "/api/documents/doc1%0A/diff?from=0&to=0", None),
    ("GET", "/api/documents/doc1%0A/events", None),
    ("PATCH", "/api/documents/doc1%0A", {"title": "t"}),
    ("POST", "/api/documents/doc1%0A/versions", {"seq": 0, "name": "v"}),
    ("POST", "/api/documents/doc1%0A/restore", {"seq": 0}),
    ("POST", "/api/documents/doc1%0A/revoke", {"user": "bob"}),
    ("POST", "/api/documents", {"id": "doc1\n"}),
])
def test_a_document_id_ending_in_a_newline_is_refused_over_http(
    hardened: ServerProcess, method: str, path: str, body: dict[str, Any] | None,
) -> None:
    answer = httpx.request(method, hardened.http_url + path, json=body,
                           headers=bearer(token("w", {"doc1*": "admin"})), timeout=10)
    assert_json_error(answer, 400, "bad_request")


async def test_a_document_id_ending_in_a_newline_is_refused_over_the_websocket(
    hardened: ServerProcess,
) -> None:
    """Starlette's `$` let "/ws/doc1%0A" match as document "doc1" (it synced). Now the id is
    seen whole and refused with a 4400 close that says why. Never a sync."""
    grant = token("w", {"doc1*": "write"})
    async with httpx.AsyncClient(base_url=hardened.http_url, timeout=10) as http:
        await create(http, "doc1")
        for path in ("doc1%0A", "doc1%0a", "%0A", "doc1%0A%0A"):
            async with raw(f"{hardened.ws_url}/ws/{path}?token={grant}") as ws:
                assert await close_of(ws) == (4400, "invalid document id"), path
        # The real doc1 is still there, under its own name only.
        async with raw(f"{hardened.ws_url}/ws/doc1?token={grant}") as ws:
            await recv_until(ws, bytes((0, 0)))
        answer = await http.get("/api/documents/doc1%0A", headers=bearer(WRITER))
        assert_json_error(answer, 400, "bad_request")
