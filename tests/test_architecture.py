"""Dependencies run one way (docs/architecture.md, invariant 11), read from the imports.

Every `import` in server/ and storage/ is parsed (inside functions and TYPE_CHECKING blocks
too), and the rules are checked on what each side reaches, directly or through the modules it
imports: storage knows no server; the write side knows no socket and no projection; the read
side knows no socket and no write side; no cycle between the server's packages.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("server.write", "server.read", "server.realtime", "server.http", "server.bus")


def modules() -> dict[str, Path]:
    found = {}
    for top in ("server", "storage"):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {_owner(t, known) for t in targets if _owner(t, known)}


def _owner(target: str, known: set[str]) -> str:
    """The project module an import names ("" for third-party ones)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target


@cache
def graph() -> dict[str, frozenset[str]]:
    found = modules()
    known = set(found)
    return {name: frozenset(imports_of(path, name, known) - {name})
            for name, path in found.items()}


def reach(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph()[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def unit(module: str) -> str:
    """The package a module counts in: a side, storage, or a root module of its own."""
    for side in SIDES:
        if module == side or module.startswith(side + "."):
            return side
    return "storage" if module.startswith("storage") else module


def members(prefix: str) -> Iterator[str]:
    return (m for m in graph() if m == prefix or m.startswith(prefix + "."))


def violations(prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for module in members(prefix):
        for target in sorted(reach(module)):
            if target.startswith(forbidden):
                direct = [t for t in graph()[module]]
                via = "directly" if target in direct else "through its imports"
                found.append(f"{module} reaches {target} ({via})")
    return found


def test_the_import_graph_is_read() -> None:
    # The check is only worth something if it sees the real edges.
    assert "server.write.writer" in graph()
    assert "server.write.live_document" in graph()["server.write.writer"]
    assert "server.write.handlers" in graph()["server.realtime.websocket"]


def test_storage_imports_nothing_from_the_server() -> None:
    assert violations("storage", ("server",)) == []


def test_the_write_side_knows_no_socket_and_no_projection() -> None:
    assert violations("server.write", ("server.realtime", "server.read", "server.http")) == []


def test_the_read_side_knows_no_socket_and_no_write_side() -> None:
    assert violations("server.read", ("server.realtime", "server.write", "server.http")) == []


def test_the_bus_belongs_to_no_side() -> None:
    assert violations("server.bus", ("server.realtime", "server.write", "server.read",
                                     "server.http")) == []


def test_no_cycle_between_the_servers_packages() -> None:
    edges: dict[str, set[str]] = {}
    for module, targets in graph().items():
        edges.setdefault(unit(module), set()).update(
            unit(t) for t in targets if unit(t) != unit(module))
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], node, target]))
            elif target not in state:
                visit(target, [*path, node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert cycles == []
