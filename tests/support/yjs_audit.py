"""Every stored log of the suite's documents, replayed in Yjs itself (issue 13).

Each real server process a test starts on SQLite registers its store here. At the end of the
session (the `yjs_audit` fixture in tests/conftest.py) every document of those stores is read
back: its history as the server serves it (`server.read.content.content_at`, the function
behind GET /content) at its head and at a few random seqs is compared with Node Yjs replaying
the stored log (tests/node/yreplay.mjs): text, deltas with their formatting, XML trees, maps
(keys as a set: yrs keeps its own order of a Y.Map's keys) and arrays.

Bounded: documents of at most MAX_EVENTS events, AUDIT_SECONDS of checking in all (what is
left over is counted, not checked). A store or document that cannot be read (a test that
tampered with it, or deleted it) is skipped: other tests own those failures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.events import yjs_update
from server.read.content import content_at
from storage.database import open_database
from storage.event_store import EventStore

NODE = Path(__file__).resolve().parents[1] / "node"
MAX_EVENTS = 3000
AUDIT_SECONDS = 40.0
PAST_SEQS = 3

STORES: list[str] = []


def register(database_url: str) -> None:
    if database_url.startswith("sqlite") and database_url not in STORES:
        STORES.append(database_url)


@dataclass
class Audit:
    seconds: float = 0.0
    documents: int = 0  # compared with Yjs
    skipped: int = 0  # too long, unreadable, or past the time budget
    differences: list[str] = field(default_factory=list)


def _yjs_shape(roots: dict[str, Any]) -> dict[str, Any]:
    """The server's roots in yreplay.mjs's shape, empty roots left out (an emptied root says
    nothing of its type), a map's keys sorted."""
    out: dict[str, Any] = {}
    for name, root in roots.items():
        kind = root.get("type")
        if kind is None or root.get("json") in ("", {}, []):
            continue
        out[name] = _yjs_root(kind, root)
    return out


def _yjs_root(kind: str, root: dict[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {"json": root["json"]}
    if kind == "text":
        shaped["delta"] = root["delta"]
    elif kind == "xml":
        shaped["children"] = root["children"]
    elif kind == "map":
        shaped["json"] = json.loads(json.dumps(root["json"], sort_keys=True))
    return shaped


def _replayed_all(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Node Yjs's renderings of several logs, in one process (its start-up is most of the cost
    of a short log)."""
    done = subprocess.run(
        ["node", str(NODE / "yreplay.mjs")], cwd=NODE, capture_output=True, text=True,
        timeout=120, check=False, input=json.dumps({"batch": jobs}))
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(f"yreplay.mjs failed: {done.stderr[-500:]}")
    out: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])["batch"]
    return out


@dataclass
class _Served:
    """One document's history as the server serves it at the checked seqs, with the job that
    asks Yjs for the same seqs."""

    doc_id: str
    roots: dict[int, dict[str, Any]]
    types: dict[str, str]
    job: dict[str, Any]


async def _served(store: EventStore, doc_id: str, rng: random.Random) -> _Served:
    events = await store.read_list(doc_id, hashes=False)
    carried = [(e.seq, u) for e in events if (u := yjs_update(e)) is not None]
    updates = [[seq, base64.b64encode(u).decode()] for seq, u in carried]
    seqs = [seq for seq, _ in carried]  # yreplay renders after updates only
    head = seqs[-1]
    served = {seq: (await content_at(store, doc_id, seq))["roots"]
              for seq in sorted({head, *rng.sample(seqs, min(PAST_SEQS, len(seqs)))})}
    # A root holding two types over its history (a test's deliberate retyping) has no one
    # Yjs reading: Yjs reads a root as its getter says. Such roots are left out.
    seen: dict[str, set[str]] = {}
    for roots in served.values():
        for name, root in roots.items():
            if root["type"]:
                seen.setdefault(name, set()).add(root["type"])
    types = {name: kinds.pop() for name, kinds in seen.items() if len(kinds) == 1}
    served = {seq: {n: r for n, r in roots.items() if n in types}
              for seq, roots in served.items()}
    return _Served(doc_id, served, types,
                   {"updates": updates, "checks": list(served), "types": types})


def _difference(served: _Served, yjs: dict[str, Any]) -> str | None:
    """None if the document's history agrees with Yjs at the checked seqs, else the first
    difference."""
    types = served.types
    for seq, roots in served.roots.items():
        ours = _yjs_shape(roots)
        theirs = {name: _yjs_root(types[name], {**root, "type": types[name]})
                  for name, root in yjs.get(str(seq), {}).items()
                  if root.get("json") not in ("", {}, [], None)}
        if ours != theirs:
            names = sorted(n for n in set(ours) | set(theirs) if ours.get(n) != theirs.get(n))
            return (f"{served.doc_id} at seq {seq}: roots {names} differ: server "
                    f"{json.dumps({n: ours.get(n) for n in names})[:400]} Yjs "
                    f"{json.dumps({n: theirs.get(n) for n in names})[:400]}")
    return None


async def _audit(stores: list[str], seconds: float) -> Audit:
    audit = Audit()
    deadline = time.monotonic() + seconds
    rng = random.Random(13)
    for url in stores:
        db = open_database(url)
        batch: list[_Served] = []
        try:
            store = EventStore(db)
            for doc_id in await store.document_ids():
                if time.monotonic() > deadline or await store.count_events(doc_id) > MAX_EVENTS:
                    audit.skipped += 1
                    continue
                try:
                    batch.append(await _served(store, doc_id, rng))
                except Exception:  # a store a test tampered with: its own test says so
                    audit.skipped += 1
        except Exception:
            audit.skipped += 1
            continue
        finally:
            await db.dispose()
        if batch:
            answers = _replayed_all([served.job for served in batch])
            for served, yjs in zip(batch, answers, strict=True):
                if "error" in yjs:  # a log Yjs cannot read: a test stored a broken update
                    audit.skipped += 1
                    continue
                audit.documents += 1
                difference = _difference(served, yjs)
                if difference is not None:
                    audit.differences.append(f"{url}: {difference}")
    return audit


def audit(seconds: float = AUDIT_SECONDS) -> Audit:
    """Compare every registered store's documents with Yjs (see the module docstring)."""
    present = [url for url in STORES if Path(url.split("///", 1)[-1]).exists()]
    start = time.monotonic()
    result = asyncio.run(_audit(present, seconds))
    result.seconds = time.monotonic() - start
    return result
