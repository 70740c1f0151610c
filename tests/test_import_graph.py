"""The shape of ``server/``'s imports (docs/DEVELOPING.md, "Layout"): the
area packages never reach into the edges, and the import graph has no
cycle — type-only imports (``if TYPE_CHECKING:``) count too, so a type
checker never meets one either."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parent.parent / "server"
AREAS = ("server.auth", "server.marketplace", "server.realtime", "server.calls", "server.mail",
         "server.consent", "server.delivery", "server.digest", "server.ai", "server.backup",
         "server.media", "server.storage")
EDGES = ("server.handlers", "server.http", "server.sockets", "server.middlewares", "server.app",
         "server.keys")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SERVER.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in SERVER.rglob("*.py")}


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The server modules ``name`` imports, anywhere in the file (function
    bodies and ``TYPE_CHECKING`` blocks included); ``from pkg import mod``
    counts as importing ``pkg.mod``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def nearest(candidate: str) -> str | None:
        while candidate and candidate not in modules:
            candidate = candidate.rpartition(".")[0]
        return candidate or None

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "server" or target.startswith("server."):
                module = nearest(target)
                if module is not None and module != name:
                    found.add(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_relative_type_only_and_package_imports():
    graph = import_graph()
    assert "server.keys" in graph["server.app"]  # from .keys import ...
    assert "server.storage.users" in graph["server.marketplace.setup"]  # from ..storage.users
    assert "server.handlers.accounts" in graph["server.app"]  # from .handlers import accounts
    # a cycle of two is found
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_server_imports_have_no_cycle():
    assert cycles(import_graph()) == []


def test_areas_never_import_the_edges():
    graph = import_graph()
    forbidden = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items() if _within(module, AREAS)
        for target in targets if _within(target, EDGES)
    )
    assert forbidden == []


def _imports_aiohttp_web(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.ImportFrom) and node.module == "aiohttp"
                and any(alias.name == "web" for alias in node.names)):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiohttp.web"):
            return True
        if isinstance(node, ast.Import) and any(a.name.startswith("aiohttp.web") for a in node.names):
            return True
    return False


def test_areas_are_built_without_the_web_framework():
    """Every ``build_<area>()`` lives in its package's setup.py and knows no
    ``aiohttp.web`` (an HTTP *client* session, like sign-in's, is fine):
    server/app.py alone puts areas into the app."""
    setups = sorted(SERVER.rglob("setup.py"))
    assert {p.parent.name for p in setups} >= {
        "auth", "mail", "consent", "realtime", "calls", "delivery", "digest", "ai",
        "marketplace", "backup"}
    assert [str(p.relative_to(SERVER)) for p in setups if _imports_aiohttp_web(p)] == []
    for path in setups:
        builds = [n.name for n in ast.parse(path.read_text()).body
                  if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("build_")]
        assert builds, f"{path.relative_to(SERVER)} has no build_<area>()"
