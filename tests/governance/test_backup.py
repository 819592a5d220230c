"""Backups: a document's log exported from a server on SQLite and imported into PostgreSQL,
where the projector serves the same history; a file whose chain is broken is refused."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import new_postgres_url, new_sqlite_url
from tests.governance.support import palimpsest, settle
from tests.support.pyclient import YClient, wait_for
from tests.support.server_process import ServerProcess
from tests.support.services import PostgresServer

pytestmark = pytest.mark.timeout(240)


async def write_history(server: ServerProcess) -> int:
    """Edits by two people, a rename, a version, a restore, an erasure and a compaction."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        await http.post("/api/documents", json={"id": "doc", "title": "Report"})
        async with YClient(server.ws_url, "doc", name="ann") as ann, \
                YClient(server.ws_url, "doc", name="bob") as bob:
            for i in range(12):
                (ann if i % 4 < 2 else bob).insert(0, f"{i}é😀 ")
                await asyncio.sleep(0.01)
            # Both hold all twelve pieces before the read side is compared with them.
            await wait_for(lambda: ann.value() == bob.value() and ann.value().count("é") == 12,
                           10, lambda: f"ann {ann.value()!r}, bob {bob.value()!r}")
            await settle(http, "doc", ann.value())
            await http.patch("/api/documents/doc", json={"title": "Final report"})
            await http.post("/api/documents/doc/versions", json={"seq": 5, "name": "early"})
            await http.post("/api/documents/doc/restore", json={"seq": 6})
            await http.post("/api/documents/doc/erase",
                            json={"from_seq": 3, "to_seq": 4, "reason": "typo with a name"})
        compacted = await asyncio.to_thread(palimpsest, server.database_url, "compact",
                                            "--doc", "doc", "--keep-days", "0")
        assert compacted.returncode == 0, compacted.stderr
        head = int((await http.get("/api/documents/doc/events?after=0&limit=500")
                    ).json()["seq"])
        await http.get(f"/api/documents/doc?min_seq={head}")
        return head


async def history(server: ServerProcess, doc_id: str, head: int) -> dict[str, Any]:
    """Everything the API says of a document's history."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        doc = f"/api/documents/{doc_id}"
        now = (await http.get(f"{doc}?min_seq={head}")).json()
        answers: dict[str, Any] = {"now": {k: now[k] for k in ("title", "seq", "text",
                                                               "head_hash")}}
        for seq in range(head + 1):
            answer = (await http.get(f"{doc}?at={seq}")).json()
            answers[f"at {seq}"] = (answer["seq"], answer["text"], answer["head_hash"],
                                    answer.get("absorbed"))
        answers["revisions"] = (await http.get(f"{doc}/revisions?limit=500")).json()["items"]
        answers["versions"] = (await http.get(f"{doc}/versions")).json()["items"]
        events = (await http.get(f"{doc}/events?limit=500")).json()["items"]
        answers["events"] = [(e["seq"], e["kind"], e["actor"], e["size"]) for e in events]
        answers["diff"] = (await http.get(f"{doc}/diff?from=0&to={head}")).json()["changes"]
        return answers


def test_a_log_exported_from_sqlite_serves_the_same_history_from_postgres(
        tmp_path: Path, pg_server: PostgresServer) -> None:
    with ServerProcess(new_sqlite_url(tmp_path)) as source:
        head = asyncio.run(write_history(source))
        exported = palimpsest(source.database_url, "export", "--doc", "doc",
                              "--out", str(tmp_path / "doc.jsonl"))
        assert exported.returncode == 0, exported.stderr
        original = asyncio.run(history(source, "doc", head))
    lines = (tmp_path / "doc.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "palimpsest-log" and header["version"] == 1
    assert header["head_seq"] == head and header["events"] == len(lines) - 1
    assert header["head_hash"] == original["now"]["head_hash"]

    target = new_postgres_url(pg_server)
    imported = palimpsest(target, "import", str(tmp_path / "doc.jsonl"), "--as", "copy")
    assert imported.returncode == 0, imported.stderr
    again = palimpsest(target, "import", str(tmp_path / "doc.jsonl"), "--as", "copy")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert palimpsest(target, "verify", "--doc", "copy").returncode == 0
    with ServerProcess(target) as copy:
        assert asyncio.run(history(copy, "copy", head)) == original


def _tamper(source: Path, target: Path, seq: int) -> None:
    lines = source.read_text().splitlines()
    for i, line in enumerate(lines[1:], start=1):
        event = json.loads(line)
        if event["seq"] == seq:
            payload = bytearray(base64.b64decode(event["payload"]) or b"\x00")
            payload[0] ^= 0x01
            event["payload"] = base64.b64encode(bytes(payload)).decode()
            lines[i] = json.dumps(event)
    target.write_text("\n".join(lines) + "\n")


def test_import_refuses_a_file_whose_chain_is_broken(tmp_path: Path) -> None:
    with ServerProcess(new_sqlite_url(tmp_path / "a")) as source:
        asyncio.run(_type(source))
        out = tmp_path / "doc.jsonl"
        assert palimpsest(source.database_url, "export", "--doc", "doc",
                          "--out", str(out)).returncode == 0
    target = new_sqlite_url(tmp_path / "b")
    _tamper(out, tmp_path / "tampered.jsonl", 4)
    refused = palimpsest(target, "import", str(tmp_path / "tampered.jsonl"))
    assert refused.returncode == 1 and "broken at seq 4" in refused.stderr, refused.stderr
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("\n".join(out.read_text().splitlines()[:-1]) + "\n")
    refused = palimpsest(target, "import", str(truncated))
    assert refused.returncode == 1 and "broken" in refused.stderr
    refused = palimpsest(target, "import", str(out), "--as", "no spaces allowed")
    assert refused.returncode == 1 and "not a valid document id" in refused.stderr
    assert palimpsest(target, "import", str(out)).returncode == 0


async def _type(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
        await http.post("/api/documents", json={"id": "doc", "title": "t"})
        async with YClient(server.ws_url, "doc", name="ann") as ann:
            for i in range(6):
                ann.insert(0, f"{i} ")
            await settle(http, "doc", ann.value())
