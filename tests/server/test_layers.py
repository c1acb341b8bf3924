"""The server's import rules (docs/architecture.md), read from the source: no cycles, a transport-neutral core."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"
PREFIX = "sisguard.server"


def module_name(path: Path) -> str:
    parts = path.relative_to(SERVER).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join((PREFIX, *parts))


def module_imports(path: Path, *, typing: bool = True) -> set[str]:
    """Modules ``path`` imports at module level (with ``typing``, its ``if TYPE_CHECKING:`` imports
    too: a dependency all the same); imports inside functions are not counted."""
    tree = ast.parse(path.read_text())
    body = list(tree.body)
    if typing:
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                body += node.body
    found: set[str] = set()
    for node in body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SERVER.rglob("*.py") if "models" not in p.parts}
    return {name: {m for m in module_imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycles_in_the_server() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_core_knows_nothing_of_grpc_metrics_or_background_work() -> None:
    banned = ("grpc", "sisguard.proto", "sisguard.server.grpc", "sisguard.server.metrics", "sisguard.server.background",
              "sisguard.server.app", "prometheus_client")
    for path in (SERVER / "core").glob("*.py"):
        bad = sorted(m for m in module_imports(path) if m.startswith(banned))
        assert not bad, f"{path.name} imports {bad}"


def test_only_the_adapters_and_the_app_speak_grpc() -> None:
    for path in SERVER.rglob("*.py"):
        rel = path.relative_to(SERVER)
        if rel.parts[0] == "grpc" or rel.name in ("app.py", "healthcheck.py", "cli.py", "tls.py"):
            continue
        imports = module_imports(path, typing=False)
        bad = sorted(m for m in imports if m == "grpc" or m.startswith(("grpc.", "sisguard.server.grpc")))
        assert not bad, f"{rel} imports {bad}"
