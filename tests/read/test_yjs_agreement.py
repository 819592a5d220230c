"""The server's documents render as Yjs renders them, at every seq of a log (Node Yjs:
tests/node/yreplay.mjs): a stored log that once showed formatting Yjs never showed, and
random logs of concurrent formatted text, XML and plain text delivered late, merged and out
of their clients' order (tests/node/yfuzzlog.mjs). Both ways the server loads a document are
checked: update by update (the writer and the projector) and from a snapshot plus the events
after it (history, /content, restore)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc

from server.ydoc import PendingUpdates, replay
from server.yrender import render
from storage.records import EventRecord
from tests.node.yclient import NODE_MODULES

NODE = Path(__file__).resolve().parents[1] / "node"
LOG = Path(__file__).resolve().parents[1] / "data" / "yjs-logs" / "formatting-gap.json"


def _node(script: str, *args: str, stdin: str | None = None) -> Any:
    if not NODE_MODULES.is_dir():
        pytest.fail(f"{NODE_MODULES} is missing: run npm ci in tests/node")
    done = subprocess.run(["node", str(NODE / script), *args], input=stdin, cwd=NODE,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def _as_yjs(rendered: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
    """The server's rendering in yreplay.mjs's shape; a map's keys compared as a set (yrs
    keeps its own key order for a Y.Map)."""
    out: dict[str, Any] = {}
    for name, kind in types.items():
        root = rendered[name]
        out[name] = {"json": root.get("json")}
        if kind == "text":
            out[name]["delta"] = root["delta"]
        elif kind == "xml":
            out[name]["children"] = root["children"]
        elif kind == "map":
            out[name]["json"] = json.loads(json.dumps(root["json"], sort_keys=True))
    return out


def _yjs(updates: list[list[Any]], types: dict[str, str]) -> dict[str, Any]:
    seqs = [seq for seq, _ in updates]
    rendered: dict[str, Any] = _node("yreplay.mjs", stdin=json.dumps(
        {"updates": updates, "checks": seqs, "types": types}))
    for roots in rendered.values():
        for name, kind in types.items():
            if kind == "map":
                roots[name]["json"] = json.loads(json.dumps(roots[name]["json"], sort_keys=True))
    return rendered


def _record(seq: int, update: bytes) -> EventRecord:
    return EventRecord(doc_id="d", seq=seq, kind="update", payload=update, actor="a",
                       time=0.0, meta={})


def _agree_at_every_seq(updates: list[list[Any]], types: dict[str, str]) -> None:
    yjs = _yjs(updates, types)
    decoded = [(int(seq), base64.b64decode(b64)) for seq, b64 in updates]
    # Update by update, as the writer and the projector apply them.
    doc: Doc[Any] = Doc()
    pending = PendingUpdates()
    snapshot: tuple[int, bytes] | None = None
    for seq, update in decoded:
        pending.apply(doc, update)
        assert _as_yjs(render(doc, types), types) == yjs[str(seq)], f"seq {seq}"
        if seq == len(decoded) // 3:
            snapshot = (seq, pending.snapshot_state(doc))
    # From a snapshot (taken a third of the way) plus the events after it, as history does.
    assert snapshot is not None
    for seq in range(snapshot[0], len(decoded) + 1, 7):
        loaded: Doc[Any] = Doc()
        records = [_record(s, u) for s, u in decoded if snapshot[0] < s <= seq]
        replay(loaded, snapshot[1], records, PendingUpdates())
        assert _as_yjs(render(loaded, types), types) == yjs[str(seq)], f"seq {seq} (loaded)"


def test_the_stored_log_of_the_formatting_gap_renders_as_yjs_at_every_seq() -> None:
    log = json.loads(LOG.read_text())
    updates = [[seq, b64] for seq, kind, b64 in log if kind in ("update", "restore")]
    _agree_at_every_seq(updates, {"content": "text", "quill": "text", "meta": "map",
                                  "items": "array"})


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_logs_delivered_out_of_order_render_as_yjs_at_every_seq(seed: int) -> None:
    generated = _node("yfuzzlog.mjs", json.dumps({"seed": seed, "clients": 3, "steps": 400}))
    _agree_at_every_seq(generated["updates"], generated["types"])
