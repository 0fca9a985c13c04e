"""The wheel works on its own: built from the tree, installed into a fresh venv, its
`switchboard` finds the packaged connectors and compiles their API documents, and every module
of the tree is inside it (pyproject.toml lists the packages: see its comment)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "gateway", "identity", "memory", "runtime", "sandbox", "examples")
DATA = ("connectors", "specs")
TEN_MINUTES = 600


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TEN_MINUTES)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the tree (a build in the tree itself would leave build/ there)."""
    source = tmp / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in (*SOURCES, *DATA):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(source)], tmp)
    (wheel,) = (tmp / "dist").glob("switchboard-*.whl")
    return wheel


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    """A new venv holding the wheel; its dependencies are read from this interpreter's
    site-packages by a .pth line (which adds the folder without running its .pth files, so the
    editable install of the tree is not seen): no download, and nothing of the tree."""
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)], tmp)
    purelib = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp).strip()
    )
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def test_an_installed_wheel_lists_its_connectors_and_compiles_their_documents(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        str(p.relative_to(ROOT))
        for top in SOURCES[2:]
        for p in (ROOT / top).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules - names == set(), "modules missing from the wheel: add their packages to pyproject.toml"
    shipped = {f"gateway/_data/connectors/{p.name}" for p in (ROOT / "connectors").glob("*.yaml")}
    assert shipped and shipped <= names

    venv = fresh_venv(tmp_path, wheel)
    home = tmp_path / "home"  # not the tree: nothing of it may be on the path
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "PYTHON"))}
    switchboard = str(venv / "bin" / "switchboard")
    where = run([str(venv / "bin" / "python"), "-c", "import gateway; print(gateway.__file__)"], home, env)
    assert where.startswith(str(venv))
    listed = {c["name"]: c for c in json.loads(run([switchboard, "connectors", "list", "--json"], home, env))}
    assert set(listed) == {Path(n).stem for n in shipped}
    for connector in listed.values():  # each one's document is the wheel's copy, compiled into tools
        assert connector["spec"].startswith(str(venv)) and Path(connector["spec"]).is_file()
        assert connector["tools"], connector["name"]
    assert "slack" in run([switchboard, "connectors", "list"], home, env)
    shown = json.loads(run([switchboard, "connectors", "show", "github", "--json"], home, env))
    assert shown["tools"] and shown["problems"] == [], shown["problems"]
