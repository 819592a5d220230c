"""Every error path of the HTTP API answers a 4xx/5xx with {"error": {"code", "message"}}."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.http.openapi import schema
from storage.event_store import EventStore
from storage.records import NewEvent
from tests.conftest import new_sqlite_url
from tests.read.logs import opened
from tests.support.pyclient import YClient
from tests.support.server_process import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("api")
    env = {"PALIMPSEST_READ_WAIT_SECONDS": "1", "PALIMPSEST_CLIENT_DIST": str(folder / "none")}
    with ServerProcess(new_sqlite_url(folder), env=env) as process:
        asyncio.run(_seed(process))
        yield process


async def _seed(process: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=process.http_url) as http:
        created = await http.post("/api/documents", json={"id": "doc", "title": "T"})
        assert created.status_code == 201
        async with YClient(process.ws_url, "doc", name="ann", ack="1") as client:
            client.insert(0, "hello")
            for _ in range(500):
                answer = await http.get("/api/documents/doc", params={"min_seq": 1})
                if answer.json()["seq"] >= 2:
                    break
                await asyncio.sleep(0.01)


def call(server: ServerProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, server.http_url + path, timeout=10, **kw)


def assert_error(answer: httpx.Response, status: int, code: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code


@pytest.mark.parametrize("path", [
    "/api/documents/nope", "/api/documents/nope/revisions", "/api/documents/nope/versions",
    "/api/documents/nope/diff?from=0&to=0", "/api/documents/nope/events",
    "/api/documents/nope?at=1", "/api/documents/nope?at_time=2026-01-01T00:00:00Z",
])
def test_unknown_documents_are_404(server: ServerProcess, path: str) -> None:
    assert_error(call(server, "GET", path), 404, "not_found")


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PATCH", "/api/documents/nope", {"title": "x"}),
    ("POST", "/api/documents/nope/versions", {"seq": 0, "name": "x"}),
    ("POST", "/api/documents/nope/restore", {"seq": 0}),
    ("DELETE", "/api/documents/nope", {}),
    ("POST", "/api/documents/nope/undelete", {}),
    ("POST", "/api/documents/nope/erase", {"from_seq": 1, "to_seq": 1, "reason": "r"}),
    ("PUT", "/api/documents/nope/retention", {"keep_days": 1}),
])
def test_commands_on_unknown_documents_are_404(server: ServerProcess, method: str, path: str,
                                               body: dict[str, Any]) -> None:
    assert_error(call(server, method, path, json=body), 404, "not_found")


@pytest.mark.parametrize("path", [
    "/api/documents/doc?at=99", "/api/documents/doc?min_seq=99",
    "/api/documents/doc/diff?from=0&to=99", "/api/documents/doc/revisions?min_seq=99",
])
def test_seqs_past_the_head_are_404(server: ServerProcess, path: str) -> None:
    assert_error(call(server, "GET", path), 404, "not_found")


@pytest.mark.parametrize("path", [
    "/api/documents/doc?at=-1", "/api/documents/doc?at=x", "/api/documents/doc?min_seq=x",
    "/api/documents/doc?at=1&at_time=2026-01-01T00:00:00Z",
    "/api/documents/doc?at_time=yesterday",
    "/api/documents/doc/diff?from=1", "/api/documents/doc/diff?to=1",
    "/api/documents/doc/diff?from=2&to=1", "/api/documents/doc/diff?from=-1&to=1",
    "/api/documents?limit=0", "/api/documents?limit=100000", "/api/documents?limit=x",
    "/api/documents?cursor=garbage", "/api/documents/doc/revisions?cursor=garbage",
    "/api/documents/doc/events?after=-1", "/api/documents/doc/events?after=x",
])
def test_bad_parameters_are_400(server: ServerProcess, path: str) -> None:
    assert_error(call(server, "GET", path), 400, "bad_request")


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/documents", b"not json"),
    ("POST", "/api/documents", b"[1, 2]"),
    ("POST", "/api/documents", b'{"title": 5}'),
    ("POST", "/api/documents", b'{"title": "x", "id": "bad id!"}'),
    ("POST", "/api/documents", b'{"title": "x", "id": 7}'),
    ("POST", "/api/documents", ('{"title": "' + "x" * 300 + '"}').encode()),
    ("PATCH", "/api/documents/doc", b"{}"),
    ("PATCH", "/api/documents/doc", b'{"title": null}'),
    ("POST", "/api/documents/doc/versions", b'{"seq": 1}'),
    ("POST", "/api/documents/doc/versions", b'{"seq": 1, "name": "  "}'),
    ("POST", "/api/documents/doc/versions", b'{"seq": -1, "name": "v"}'),
    ("POST", "/api/documents/doc/versions", b'{"seq": "1", "name": "v"}'),
    ("POST", "/api/documents/doc/restore", b"{}"),
    ("POST", "/api/documents/doc/restore", b'{"seq": true}'),
    ("POST", "/api/documents/doc/restore", b'{"seq": -3}'),
    ("POST", "/api/documents/doc/erase", b'{"from_seq": 1, "to_seq": 1}'),
    ("POST", "/api/documents/doc/erase", b'{"from_seq": 1, "to_seq": 1, "reason": " "}'),
    ("POST", "/api/documents/doc/erase", b'{"from_seq": 2, "to_seq": 1, "reason": "r"}'),
    ("POST", "/api/documents/doc/erase", b'{"from_seq": 0, "to_seq": 1, "reason": "r"}'),
    ("POST", "/api/documents/doc/erase", b'{"from_seq": 1, "to_seq": 99, "reason": "r"}'),
    ("POST", "/api/documents/doc/erase", b'{"actor": "", "reason": "r"}'),
    ("POST", "/api/documents/doc/erase",
     b'{"actor": "ann", "from_seq": 1, "to_seq": 1, "reason": "r"}'),
    ("PUT", "/api/documents/doc/retention", b"{}"),
    ("PUT", "/api/documents/doc/retention", b'{"keep_days": -1}'),
    ("PUT", "/api/documents/doc/retention", b'{"keep_days": "30"}'),
    ("DELETE", "/api/documents/doc", b'{"reason": 5}'),
])
def test_bad_command_bodies_are_400(server: ServerProcess, method: str, path: str,
                                    body: bytes) -> None:
    assert_error(call(server, method, path, content=body,
                      headers={"Content-Type": "application/json"}), 400, "bad_request")


@pytest.mark.parametrize(("path", "body"), [
    ("/api/documents/doc/versions", {"seq": 99, "name": "v"}),
    ("/api/documents/doc/restore", {"seq": 99}),
    ("/api/documents/doc/restore", {"revision": 99}),
])
def test_commands_at_unknown_seqs_or_revisions_are_404(server: ServerProcess, path: str,
                                                       body: dict[str, Any]) -> None:
    assert_error(call(server, "POST", path, json=body), 404, "not_found")


def test_creating_an_existing_document_is_409(server: ServerProcess) -> None:
    assert_error(call(server, "POST", "/api/documents", json={"id": "doc", "title": "again"}),
                 409, "conflict")


def test_unknown_paths_and_methods_answer_json(server: ServerProcess) -> None:
    assert_error(call(server, "GET", "/api/nothing-here"), 404, "not_found")
    assert_error(call(server, "PUT", "/api/documents/doc"), 405, "method_not_allowed")


def test_every_served_api_path_is_in_the_openapi_schema(server: ServerProcess) -> None:
    served = call(server, "GET", "/api/openapi.json")
    assert served.status_code == 200
    assert served.json() == schema()
    paths = set(served.json()["paths"])
    for path in ["/api/documents", "/api/documents/{doc_id}", "/api/documents/{doc_id}/revisions",
                 "/api/documents/{doc_id}/versions", "/api/documents/{doc_id}/diff",
                 "/api/documents/{doc_id}/events", "/api/documents/{doc_id}/restore",
                 "/api/documents/{doc_id}/undelete", "/api/documents/{doc_id}/erase",
                 "/api/documents/{doc_id}/retention",
                 "/api/openapi.json", "/healthz", "/metrics"]:
        assert path in paths


def test_every_route_the_app_serves_is_described_with_its_methods(tmp_path: Path) -> None:
    """Read from the app itself: a route added without its description fails here."""
    from starlette.routing import Route

    from server.app import create_app
    from server.settings import Settings

    described = schema()["paths"]
    app = create_app(Settings(database_url=new_sqlite_url(tmp_path)))
    for route in app.routes:
        if not isinstance(route, Route) or not route.path.startswith(("/api", "/healthz",
                                                                      "/metrics")):
            continue  # the WebSocket and the browser client's pages
        path = route.path.replace(":path}", "}")
        assert path in described, path
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in described[path], (method, path)


def test_metrics_report_events_lag_rooms_and_connections(server: ServerProcess) -> None:
    text = call(server, "GET", "/metrics").text
    for name in ("palimpsest_events_appended_total", "palimpsest_projector_lag_events",
                 "palimpsest_open_rooms", "palimpsest_connections"):
        assert name in text


def test_the_client_pages_answer_503_json_when_the_client_is_not_built(
    server: ServerProcess,
) -> None:
    for path in ("/", "/d/some-doc", "/assets/main.js"):
        assert_error(call(server, "GET", path), 503, "client_not_built")


def test_a_read_only_node_serves_the_client_and_bounds_min_seq(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>P</title>")
    (dist / "assets" / "main-1.js").write_text("console.log(1)")
    url = new_sqlite_url(tmp_path)

    async def append_unprojected() -> None:
        async with opened(url) as db:
            store = EventStore(db)
            await store.ensure_document("late")
            await store.append("late", [NewEvent("rename", b"", "ann", 1.0, {"title": "L"})])

    asyncio.run(append_unprojected())
    env = {"PALIMPSEST_CLIENT_DIST": str(dist), "PALIMPSEST_READ_WAIT_SECONDS": "0.3"}
    with ServerProcess(url, role="read", env=env) as reader:  # and no projector anywhere
        for path in ("/", "/d/some-doc"):
            page = call(reader, "GET", path)
            assert page.status_code == 200 and "<title>P</title>" in page.text
        script = call(reader, "GET", "/assets/main-1.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert call(reader, "GET", "/assets/missing.js").status_code == 404
        assert_error(call(reader, "GET", "/api/documents/late?min_seq=1"), 504,
                     "read_side_behind")
        assert_error(call(reader, "GET", "/api/documents/late?at=1"), 504, "read_side_behind")


def test_at_time_reads_the_document_as_of_that_moment(server: ServerProcess) -> None:
    events = call(server, "GET", "/api/documents/doc/events").json()["items"]
    created, edited = events[0], events[-1]
    now = call(server, "GET", "/api/documents/doc", params={"at_time": edited["time"]}).json()
    assert (now["seq"], now["text"]) == (edited["seq"], "hello")
    before = call(server, "GET", "/api/documents/doc",
                  params={"at_time": "2000-01-01T00:00:00Z"}).json()
    assert (before["seq"], before["text"]) == (0, "")
    assert call(server, "GET", "/api/documents/doc",
                params={"at_time": created["time"]}).json()["seq"] == created["seq"]
