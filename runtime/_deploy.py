"""Deploys: an agent's directory made an immutable version (ADR 0039).

``deploy(name, directory)`` copies the code (``main.py`` by default, or the ``entry`` given) into
``{root}/{name}/v{n}/code`` and installs its ``requirements.txt`` once into a virtual environment
of the system's Python (``v{n}/venv``: the Python every sandbox has), from the package index as
pip is configured. Both are then made read-only: every session of the version binds them
read-only (``/app``, ``/opt/venv``). A deploy that fails (a requirement that does not install, an
entry that is not there) leaves nothing behind, and the versions before it as they were.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio

PYTHON = "/usr/bin/python3"  # the sandboxes' Python (the gateway's own may be one they cannot see)
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")  # (AgentCore's agentRuntimeName)
PIP_SECONDS = 900.0
IGNORED = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".venv", "venv", ".agentcore.json")


class DeployError(Exception):
    """A deploy was refused or failed; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Version:
    """One immutable version of a runtime: where its code and environment are, how it starts."""

    runtime: str
    number: int
    code: str  # host path of its code (bound read-only at /app)
    venv: str  # host path of its environment (bound read-only at /opt/venv)
    entry: str  # the file that starts the app, relative to the code
    created: float

    @property
    def tag(self) -> str:
        return f"{self.runtime}:{self.number}"


class Deployments:
    """Runtimes and their versions under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.lock = anyio.Lock()

    def versions(self, runtime: str) -> list[Version]:
        """The runtime's versions, oldest first (none, or not a runtime's name: an empty list)."""
        if not NAME.match(runtime):
            return []  # (never a path: "../other-tenant/x" names nothing)
        found = []
        for manifest in sorted(
            (self.root / runtime).glob("v*/version.json"), key=lambda p: int(p.parent.name[1:])
        ):
            found.append(Version(**json.loads(manifest.read_text())))
        return found

    def version(self, runtime: str, number: int | None = None) -> Version:
        """One version (the latest when ``number`` is None).

        Raises:
            DeployError: no such runtime or version.
        """
        versions = self.versions(runtime)
        if not versions:
            raise DeployError(
                f"no runtime {runtime!r}: deploy it first (switchboard runtime deploy DIR --name {runtime})"
            )
        if number is None:
            return versions[-1]
        for version in versions:
            if version.number == number:
                return version
        known = ", ".join(str(v.number) for v in versions)
        raise DeployError(f"runtime {runtime!r} has no version {number} (it has {known})")

    def runtimes(self) -> list[str]:
        """The names of the runtimes deployed here."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if NAME.match(p.name) and self.versions(p.name))

    async def delete(self, runtime: str) -> bool:
        """Remove a runtime and every version of it (its sessions are the caller's to end first)."""
        if not self.versions(runtime):
            return False
        async with self.lock:
            await anyio.to_thread.run_sync(lambda: _remove(self.root / runtime))
        return True

    async def deploy(self, runtime: str, directory: Path, entry: str = "main.py") -> Version:
        """A new version of ``runtime`` from ``directory``.

        Raises:
            DeployError: a bad name, directory or entry, or requirements that do not install.
        """
        if not NAME.match(runtime):
            raise DeployError(
                f"runtime name {runtime!r}: use a letter, then letters, digits or '_' (48 at most)"
            )
        _check(directory, entry, self.root)
        async with self.lock:
            number = max((v.number for v in self.versions(runtime)), default=0) + 1
            home = self.root / runtime / f"v{number}"
            partial = self.root / runtime / f".v{number}-{os.getpid()}"
            partial.mkdir(parents=True, mode=0o755)
            try:
                await anyio.to_thread.run_sync(
                    lambda: shutil.copytree(directory, partial / "code", ignore=IGNORED)
                )
                await _environment(partial / "venv", partial / "code" / "requirements.txt")
                version = Version(runtime, number, str(home / "code"), str(home / "venv"), entry, time.time())
                (partial / "version.json").write_text(json.dumps(asdict(version)))
                await anyio.to_thread.run_sync(_read_only, partial)
                partial.rename(home)
            except BaseException:
                await anyio.to_thread.run_sync(lambda: _remove(partial))
                raise
        return version


def _check(directory: Path, entry: str, root: Path) -> None:
    if not directory.is_dir():
        raise DeployError(
            f"{directory}: not a directory: give the agent's folder (its code and requirements.txt)"
        )
    if ".." in Path(entry).parts or Path(entry).is_absolute() or not (directory / entry).is_file():
        raise DeployError(f"{directory}: no {entry} in it: give the file that starts the app (entry)")
    if root.resolve().is_relative_to(directory.resolve()):
        raise DeployError(f"{directory} holds the runtime's own data ({root}): deploy the agent's folder")
    for folder, dirs, files in os.walk(directory):  # (os.walk follows no link)
        for name in (*dirs, *files):
            if (Path(folder) / name).is_symlink():
                link = (Path(folder) / name).relative_to(directory)
                raise DeployError(
                    f"{directory}: {link} is a symbolic link: copy what it names into the folder"
                )


async def _environment(venv: Path, requirements: Path) -> None:
    """A virtual environment of the system's Python, with the requirements installed."""
    made = await anyio.run_process([PYTHON, "-m", "venv", str(venv)], check=False)
    if made.returncode != 0:
        raise DeployError(
            f"a Python environment could not be made: {made.stderr.decode(errors='replace')[-500:]}"
        )
    if not await anyio.Path(requirements).is_file():
        return
    # Wheels only: a source distribution's build would run its code here, on the host, as the
    # gateway (a deploy must never run the agent's code outside a sandbox).
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
    pip += ["--only-binary", ":all:"]
    with anyio.move_on_after(PIP_SECONDS) as deadline:
        installed = await anyio.run_process([*pip, "-r", str(requirements)], check=False)
    if deadline.cancelled_caught:
        raise DeployError(f"installing requirements.txt took longer than {PIP_SECONDS:.0f} s")
    if installed.returncode != 0:
        said = (installed.stderr or installed.stdout).decode(errors="replace").strip().splitlines()
        raise DeployError(
            "requirements.txt did not install (from wheels only: a package without one must be built "
            "into a wheel first): " + " | ".join(said[-4:])
        )


def _read_only(path: Path) -> None:
    subprocess.run(["chmod", "-R", "a-w", str(path)], check=False)


def _remove(path: Path) -> None:
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)
