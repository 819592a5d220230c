"""Every Yjs shape through the real server, checked against Yjs itself (Node, npm yjs):
random operations by stock clients (text, formatted text with embeds, y-prosemirror XML,
maps, arrays) converge, the history API agrees with a Yjs replay of the stored log at every
checked seq, diffs answer, a whole-document restore is exact (and keeps words typed
concurrently inside a ProseMirror block it changes), and an update that cuts an emoji in half
is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.yrender import merged
from tests.conftest import new_sqlite_url
from tests.node.yclient import NODE_MODULES, yclient
from tests.support.replay import stored_events
from tests.support.server_process import ServerProcess

NODE = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(new_sqlite_url(tmp_path)) as process:
        yield process


async def _node(script: str, arg: str | None = None, stdin: str | None = None,
                timeout: float = 90) -> Any:
    if not NODE_MODULES.is_dir():
        pytest.fail(f"{NODE_MODULES} is missing: run npm ci in tests/node")
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE / script), *([arg] if arg else []), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=NODE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None),
                                          timeout)
    except TimeoutError:
        proc.kill()  # our own child, by its handle
        await proc.wait()
        raise
    assert out, err.decode()[-2000:]
    return json.loads(out.decode().splitlines()[-1])


async def _head(http: httpx.AsyncClient, doc_id: str) -> int:
    events = (await http.get(f"/api/documents/{doc_id}/events", params={"limit": 500})).json()
    while events["next"] is not None:
        events = (await http.get(f"/api/documents/{doc_id}/events",
                                 params={"after": events["next"], "limit": 500})).json()
    return int(events["seq"])


async def _content(http: httpx.AsyncClient, doc_id: str, seq: int) -> dict[str, Any]:
    answer = await http.get(f"/api/documents/{doc_id}/content", params={"seq": seq})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _as_yjs(roots: dict[str, Any]) -> dict[str, Any]:
    """The server's rendering in the shape yrandom.mjs / yreplay.mjs give (toJSON, toDelta)."""
    out: dict[str, Any] = {}
    for name, root in roots.items():
        if root["type"] is None:
            continue
        out[name] = {"json": root["json"]}
        if root["type"] == "text":
            out[name]["delta"] = root["delta"]
        if root["type"] == "xml":
            out[name]["children"] = root["children"]
    return out


def _same_content(roots: dict[str, Any]) -> dict[str, Any]:
    """Formatting compared by content: adjacent runs of equal attributes joined (Yjs and yrs
    split runs at formatting marks that change nothing, differently after a reload); XML by
    its tree (its string splits where its runs split)."""
    out: dict[str, Any] = {}
    for name, root in roots.items():
        if "children" in root:
            out[name] = {"children": _merge_tree(root["children"])}
        elif "delta" in root:
            out[name] = {"json": root["json"], "delta": merged(root["delta"])}
        else:
            out[name] = root
    return out


def _present(roots: dict[str, Any]) -> dict[str, Any]:
    """Roots that hold something: an emptied root says nothing of its type to the server."""
    return {k: v for k, v in roots.items() if v["json"] not in ("", {}, [])}


def _canonical(roots: dict[str, Any]) -> Any:
    """What a restore must give back, whatever the history: merged deltas, XML trees."""
    out: dict[str, Any] = {}
    for name, root in roots.items():
        if root["type"] == "text":
            out[name] = merged(root["delta"])
        elif root["type"] == "xml":
            out[name] = _merge_tree(root["children"])
        elif root["type"] is not None and root["json"] not in ({}, []):
            out[name] = _unordered(root["json"])
    return {k: v for k, v in out.items() if v not in ([], "")}


def _merge_tree(nodes: list[Any]) -> list[Any]:
    return [{**n, "delta": merged(n["delta"])} if "delta" in n
            else {**n, "children": _merge_tree(n["children"])} for n in nodes]


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}/{key}")
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
        return f"{path}: lengths {len(a)} and {len(b)}"
    return f"{path}: server {json.dumps(a)[:200]} Yjs {json.dumps(b)[:200]}"


def _unordered(value: Any) -> Any:
    """Map keys compared as sets: yrs keeps a Y.Map's keys in its own order."""
    return json.loads(json.dumps(value, sort_keys=True))


async def _agree_with_a_yjs_replay(http: httpx.AsyncClient, server: ServerProcess,
                                   doc_id: str, seqs: list[int]) -> None:
    events = await stored_events(server.database_url, doc_id)
    updates = [[e.seq, base64.b64encode(e.payload).decode()] for e in events
               if e.kind in ("update", "restore")]
    head = await _content(http, doc_id, max(seqs))
    types = {name: root["type"] for name, root in head["roots"].items() if root["type"]}
    replayed = await _node("yreplay.mjs", stdin=json.dumps(
        {"updates": updates, "checks": seqs, "types": types}))
    for seq in seqs:
        served = _as_yjs((await _content(http, doc_id, seq))["roots"])
        yjs = replayed[str(seq)]
        # Exactly, runs as split (only a Y.Map's key order is yrs's own).
        ours, theirs = (_unordered(_present(r)) for r in (served, yjs))
        assert ours == theirs, f"seq {seq}: {_first_difference(ours, theirs)}"


async def test_random_operations_on_every_shape_agree_everywhere(
        sqlite_server: ServerProcess) -> None:
    server, doc_id = sqlite_server, "random-shapes"
    result = await _node("yrandom.mjs", json.dumps({
        "url": f"{server.ws_url}/ws", "doc": doc_id, "clients": 3, "seconds": 12,
        "maxOps": 2500, "seed": 13}), timeout=120)
    assert result["ok"], result.get("error")
    assert result["ops"] > 200 and result["closes"] == []
    assert result["converged"] and result["newcomerSameValues"]
    # JSON objects reach the newcomer with their keys in their writers' order.
    assert result["newcomer"], result.get("newcomerDiff")
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        head = await _head(http, doc_id)
        await http.get(f"/api/documents/{doc_id}", params={"min_seq": head})
        served = await _content(http, doc_id, head)
        assert _unordered(_same_content(_present(_as_yjs(served["roots"])))) == \
            _unordered(_same_content(_present(result["roots"])))
        assert served["roots"]["content"]["text"] == result["roots"]["content"]["json"]
        # The plain-text API and the text root agree, embeds and all.
        document = (await http.get(f"/api/documents/{doc_id}")).json()
        assert document["text"] == result["roots"]["content"]["json"]

        rng = random.Random(13)
        for _ in range(20):
            a, b = sorted(rng.sample(range(0, head + 1), 2))
            diff = await http.get(f"/api/documents/{doc_id}/diff", params={"from": a, "to": b})
            assert diff.status_code == 200, (a, b, diff.text)
            rich = await http.get(f"/api/documents/{doc_id}/diff/roots",
                                  params={"from": a, "to": b})
            assert rich.status_code == 200, (a, b, rich.text)
        revisions = (await http.get(f"/api/documents/{doc_id}/revisions")).json()["items"]
        assert sum(r["inserted"] for r in revisions) > result["ops"] // 4

        # History at past seqs is what Yjs shows replaying the stored log (formatting too).
        checks = sorted({0, head, *rng.sample(range(1, head), 12)})
        await _agree_with_a_yjs_replay(http, server, doc_id, checks)
        # Restore the whole document as it was at a seq in the middle: every root, exactly.
        middle = head // 2
        restored = await http.post(f"/api/documents/{doc_id}/restore", json={"seq": middle})
        assert restored.status_code == 200, restored.text
        new_head = restored.json()["seq"]
        await http.get(f"/api/documents/{doc_id}", params={"min_seq": new_head})
        then_roots = (await _content(http, doc_id, middle))["roots"]
        now_roots = (await _content(http, doc_id, new_head))["roots"]
        assert _canonical(now_roots) == _canonical(then_roots)
        # A newcomer (a stock client) receives the restored text.
        async with yclient(f"{server.ws_url}/ws", doc_id) as newcomer:
            await newcomer.wait_synced()
            assert await newcomer.text() == _as_yjs(then_roots)["content"]["json"]


async def test_an_update_that_cuts_an_emoji_in_half_is_refused_and_changes_nothing(
        sqlite_server: ServerProcess) -> None:
    server, doc_id = sqlite_server, "emoji"
    async with yclient(f"{server.ws_url}/ws", doc_id) as writer:
        await writer.wait_synced()
        await writer.insert(0, "a😀b")
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
            head = await _head(http, doc_id)
            assert head >= 1
            await writer.delete(2, 1)  # the second half of the emoji (UTF-16 index 2)
            closed = await writer.wait_event("connection-close", timeout=10)
            assert closed.get("code") == 4423, closed
            assert await _head(http, doc_id) == head  # nothing stored
            await http.get(f"/api/documents/{doc_id}", params={"min_seq": head})
            assert (await http.get(f"/api/documents/{doc_id}")).json()["text"] == "a😀b"
    async with yclient(f"{server.ws_url}/ws", doc_id) as newcomer:
        await newcomer.wait_synced()
        assert await newcomer.text() == "a😀b"


async def test_restoring_content_that_cannot_be_restored_is_a_422_and_appends_nothing(
        sqlite_server: ServerProcess) -> None:
    from pycrdt import Doc, Map, Text

    from tests.support.pyclient import YClient

    server, doc_id = sqlite_server, "retyped"
    async with YClient(server.ws_url, doc_id) as client:
        then: Doc[Any] = Doc()
        then.get("x", type=Text).insert(0, "a text")
        client.doc.apply_update(then.get_update())
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
            async def head_is(n: int) -> bool:
                return await _head(http, doc_id) >= n
            for _ in range(100):
                if await head_is(1):
                    break
                await asyncio.sleep(0.05)
            first = await _head(http, doc_id)
            # The same root as a map, from another doc: the log now holds both shapes.
            other: Doc[Any] = Doc()
            other.get("x", type=Map)["k"] = 1
            client.doc.apply_update(other.get_update())
            for _ in range(100):
                if await head_is(first + 1):
                    break
                await asyncio.sleep(0.05)
            before = await _head(http, doc_id)
            answer = await http.post(f"/api/documents/{doc_id}/restore", json={"seq": first})
            if answer.status_code == 422:
                assert answer.json()["error"]["code"] == "cannot_restore"
                assert await _head(http, doc_id) == before
            else:  # restorable after all: then it must be exact
                assert answer.status_code == 200, answer.text


async def test_restoring_a_prosemirror_document_keeps_words_typed_concurrently_in_a_changed_block(
        sqlite_server: ServerProcess) -> None:
    server, doc_id = sqlite_server, "pm-restore"
    result = await _node("yxmlrestore.mjs", json.dumps({
        "url": f"{server.ws_url}/ws", "http": server.http_url, "doc": doc_id}), timeout=120)
    assert result["ok"], result.get("error")
    # Exact for what it covers: what the restorer saw is the document at that seq.
    assert result["restored"] == result["expected"]
    heading, first, changed = result["final"]
    assert [heading, first] == result["expected"][:2]
    # The block it changed was edited in place: the words typed offline in it meanwhile
    # (concurrent with the restore) are kept, after the restored text.
    assert changed == {"tag": "paragraph", "attributes": {}, "children": [
        {"delta": [{"insert": "gamma delta" + "".join(result["offline"])}]}]}
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        head = await _head(http, doc_id)
        await http.get(f"/api/documents/{doc_id}", params={"min_seq": head})
        served = await _content(http, doc_id, head)
        assert served["roots"]["prosemirror"]["children"] == result["final"]
        then = await _content(http, doc_id, result["seq"])
        restored = await _content(http, doc_id, result["restoreSeq"])
        assert _canonical(restored["roots"]) == _canonical(then["roots"])
