"""Helpers for the governance tests: settling on a text, reading every API answer, the bytes of
a SQLite database's files, and running the command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT
from tests.support.pyclient import wait_for


async def settle(http: httpx.AsyncClient, doc_id: str, expected: str,
                 timeout: float = 15) -> dict[str, Any]:
    """The document's answer once the read side shows `expected`."""
    answer: dict[str, Any] = {}

    async def poll() -> None:
        nonlocal answer
        while True:
            answer = (await http.get(f"/api/documents/{doc_id}")).json()
            if answer.get("text") == expected:
                return
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"read side shows {answer.get('text')!r}, not {expected!r}") from None
    return answer


async def every_answer(http: httpx.AsyncClient, doc_id: str) -> list[str]:
    """The body of every read the API answers about the document: now, at every seq, its
    revisions, versions, events, and diffs across its history."""
    doc = f"/api/documents/{doc_id}"
    now = await http.get(doc)
    head = now.json()["seq"]
    paths = [doc, f"{doc}/revisions?limit=500", f"{doc}/versions", f"{doc}/events?limit=500",
             "/api/documents", f"{doc}/diff?from=0&to={head}"]
    paths += [f"{doc}?at={seq}" for seq in range(head + 1)]
    paths += [f"{doc}/diff?from={seq}&to={head}" for seq in range(0, head + 1, 3)]
    answers = []
    for path in paths:
        answer = await http.get(path)
        assert answer.status_code == 200, (path, answer.text)
        answers.append(answer.text)
    return answers


def database_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of the SQLite database in `folder` (the file, its WAL, its shared memory)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.name.startswith("palimpsest.sqlite3")}


def containing(files: dict[str, bytes], needles: list[str]) -> list[tuple[str, str]]:
    return [(name, needle) for name, data in files.items() for needle in needles
            if needle.encode() in data]


def palimpsest(database_url: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT,
                          env={**os.environ, "DATABASE_URL": database_url, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


async def closed_with(ws: Any, timeout: float = 10) -> int:
    await wait_for(lambda: ws.close_code is not None, timeout, lambda: "still open")
    return int(ws.close_code)
