"""The dependency star of ARCHITECTURE.md, checked by parsing imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("identity", "memory", "runtime", "sandbox")
CORE_ALLOWED = {"gateway", "pydantic", "anyio", "jsonschema"}
MAX_MODULE_LINES = 800


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
                assert top not in PEERS or top in (peer, "identity"), (
                    f"{path.relative_to(ROOT)} imports {name}"
                )


def test_fronts_never_import_providers() -> None:
    for front in ("gateway/mcp", "gateway/a2a"):
        for path in modules(front):
            for name in imports(path):
                assert not name.startswith("gateway.providers"), f"{path.relative_to(ROOT)} imports {name}"


def test_modules_stay_small() -> None:
    for package in ("gateway", *PEERS):
        for path in modules(package):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it"
