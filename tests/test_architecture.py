"""The dependency star of ARCHITECTURE.md, checked by parsing imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("identity", "memory", "runtime", "sandbox")
CORE_ALLOWED = {"gateway", "pydantic", "anyio", "jsonschema"}
MAX_MODULE_LINES = 600


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_core_imports_only_stdlib_pydantic_anyio_jsonschema() -> None:
    import sys

    stdlib = set(sys.stdlib_module_names)
    for path in modules("gateway/core"):
        for name in imports(path):
            top = name.split(".")[0]
            assert top in stdlib or top in CORE_ALLOWED, f"{path.relative_to(ROOT)} imports {name}"
            if top == "gateway":
                assert name.startswith("gateway.core"), f"{path.relative_to(ROOT)} imports {name}"


def test_peers_never_import_gateway_or_each_other() -> None:
    for peer in PEERS:
        for path in modules(peer):
            for name in imports(path):
                top = name.split(".")[0]
                assert top != "gateway", f"{path.relative_to(ROOT)} imports {name}"
                allowed = (peer, "identity", *(("sandbox",) if peer == "runtime" else ()))  # (its sessions)
                assert top not in PEERS or top in allowed, f"{path.relative_to(ROOT)} imports {name}"


FRONTS = ("gateway/mcp", "gateway/a2a", "gateway/agentcore", "gateway/admin", "gateway/ui")


def test_fronts_never_import_providers_or_stages() -> None:
    """A front speaks a protocol to the hub's live gateways; what stands behind a gateway (its
    stages, its targets' providers) is the hub's to build."""
    for front in FRONTS:
        for path in modules(front):
            for name in imports(path):
                assert not name.startswith(("gateway.providers", "gateway.stages")), (
                    f"{path.relative_to(ROOT)} imports {name}"
                )


def test_stages_never_import_providers_or_fronts() -> None:
    """A stage sees a call and its catalog entry, never how a target is reached or who asked."""
    above = ("gateway.providers", "gateway.hub", "gateway.app", *(f.replace("/", ".") for f in FRONTS))
    for path in modules("gateway/stages"):
        for name in imports(path):
            assert not name.startswith(above), f"{path.relative_to(ROOT)} imports {name}"


def test_modules_stay_small() -> None:
    for package in ("gateway", *PEERS):
        for path in modules(package):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it"


def _module_graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (anywhere in it: at the top, in a
    function, under TYPE_CHECKING); ``from pkg import sub`` counts as importing ``pkg.sub``."""
    names: dict[str, Path] = {}
    for package in packages:
        for path in modules(package):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        edges: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    dotted = alias.name.split(".")
                    prefixes = (".".join(dotted[:n]) for n in range(len(dotted), 0, -1))
                    edges.update(prefix for prefix in prefixes if prefix in names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    if f"{base}.{alias.name}" in names:
                        edges.add(f"{base}.{alias.name}")
                    elif base in names:
                        edges.add(base)
        edges.discard(name)
        graph[name] = edges
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_among_the_gateways_modules() -> None:
    """Every import counts (a lazy one inside a function, one under TYPE_CHECKING): a circle
    hidden that way is still two modules that cannot be understood one without the other."""
    circles = _circles(_module_graph(("gateway", *PEERS)))
    assert circles == [], "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_circle_check_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_nothing_outside_the_store_imports_its_private_modules() -> None:
    """The store's face is ``gateway/store/__init__.py`` (its own tests may look inside)."""
    for package in ("gateway", *PEERS):
        for path in modules(package):
            if path.is_relative_to(ROOT / "gateway" / "store"):
                continue
            for name in imports(path):
                assert not name.startswith("gateway.store._"), f"{path.relative_to(ROOT)} imports {name}"
