"""Deploys: an agent's directory made an immutable version (ADR 0039).

``deploy(name, directory)`` copies the code (``main.py`` by default, or the ``entry`` given) into
``{root}/{name}/v{n}/code`` and installs its ``requirements.txt`` once into a virtual environment
of the system's Python (``v{n}/venv``: the Python every sandbox has), from the package index as
pip is configured. Both are then made read-only: every session of the version binds them
read-only (``/app``, ``/opt/venv``). A deploy that fails (a requirement that does not install, an
entry that is not there) leaves nothing behind, and the versions before it as they were.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import anyio
from packaging.requirements import InvalidRequirement, Requirement

from runtime._endpoints import DEFAULT, Endpoints
from runtime._image import ImageError, image_digest, untar

PYTHON = "/usr/bin/python3"  # the sandboxes' Python (the gateway's own may be one they cannot see)
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")  # (AgentCore's agentRuntimeName)
PIP_SECONDS = 900.0
MAX_REQUIREMENTS = 64 * 1024  # bytes of a tenant's requirements.txt
MAX_FILES = 20_000  # in a zip a tenant sends
MAX_UNPACKED = 512 * 2**20
PORTS = {"HTTP": 8080, "MCP": 8000, "A2A": 9000}  # where each kind of app listens (AgentCore's)
VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
PROVIDER = re.compile(r"[a-zA-Z0-9\-_]{1,128}")  # (AgentCore's credential provider names)
# Set by the runtime itself: a version cannot change them (the app's home, its way out).
RESERVED_PREFIXES = ("SWITCHBOARD_", "HOME", "PATH", "PYTHON", "LD_", "DOCKER_CONTAINER", "AWS_")
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
    protocol: str = "HTTP"  # HTTP (the app on 8080), MCP (8000, /mcp) or A2A (9000)
    environment: dict[str, str] = field(default_factory=dict)  # the app's variables
    secrets: dict[str, str] = field(default_factory=dict)  # variable: the vault's API key provider
    description: str = ""
    source: str = ""  # a fingerprint of what it was made from (its folder and settings)
    image: str = ""  # host path of its root filesystem (an image's), when it is one; entry: its command

    @property
    def tag(self) -> str:
        return f"{self.runtime}:{self.number}"

    @property
    def port(self) -> int:
        return PORTS[self.protocol]


@dataclass(frozen=True, slots=True)
class Settings:
    """What a version is deployed with besides its code (fixed with it: versions never change)."""

    entry: str = "main.py"
    protocol: str = "HTTP"
    environment: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def check(self, *, image: bool = False) -> None:
        """Raises DeployError: a protocol, variable or secret reference that cannot be (for an
        image, ``entry`` is its command, not a file of a folder)."""
        if image and not shlex.split(self.entry or ""):
            raise DeployError("an image's version needs its command (entry): `python3 /app/main.py`, say")
        if self.protocol not in PORTS:
            raise DeployError(f"protocol {self.protocol!r}: HTTP, MCP or A2A")
        if len(self.description) > 1200:
            raise DeployError("description: 1,200 characters at most")
        both = set(self.environment) & set(self.secrets)
        if both:
            raise DeployError(f"variable {sorted(both)[0]} is given both a value and a secret: keep one")
        for name, value in [*self.environment.items(), *self.secrets.items()]:
            if not VARIABLE.fullmatch(name) or name.startswith(RESERVED_PREFIXES):
                raise DeployError(
                    f"variable {name!r}: letters, digits and '_', not starting with a digit, and not "
                    f"one of the runtime's own ({', '.join(RESERVED_PREFIXES)}...)"
                )
            if len(value) > 5000 or "\0" in value:
                raise DeployError(f"variable {name}: a value of 5,000 characters at most, no NUL")
        for name, provider in self.secrets.items():
            if not PROVIDER.fullmatch(provider):
                raise DeployError(
                    f"secret of {name}: {provider!r} is not the name of an API key credential provider"
                )


class Deployments:
    """Runtimes and their versions under ``root``."""

    def __init__(self, root: Path, gate: anyio.Semaphore | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.lock = anyio.Lock()
        # Deploys at once (unpacking and installing take disk, memory and the index's time):
        # shared by every tenant's Deployments of a process, so no tenant starves the others.
        self.gate = gate or anyio.Semaphore(2)
        self.endpoints = Endpoints(root)
        self._known: dict[str, tuple[tuple[int, int], list[Version]]] = {}

    def resolve(self, runtime: str, qualifier: str | None, session_id: str) -> Version:
        """The version a new session ``session_id`` gets through ``qualifier``: an endpoint's name
        (DEFAULT when None) or a version's number.

        Raises:
            DeployError: no such runtime or version; EndpointError: no such endpoint.
        """
        versions = self.versions(runtime)
        if not versions:
            self.version(runtime)  # (says there is no such runtime)
        if qualifier is not None and qualifier.isdigit():
            return self.version(runtime, int(qualifier))
        endpoint = self.endpoints.get(runtime, qualifier or DEFAULT)
        return self.version(runtime, endpoint.pick(session_id, versions[-1].number))

    def versions(self, runtime: str) -> list[Version]:
        """The runtime's versions, oldest first (none, or not a runtime's name: an empty list)."""
        if not NAME.fullmatch(runtime):
            return []  # (never a path: "../other-tenant/x" names nothing)
        try:  # (read again only when the folder changed: a version or an endpoint added or gone)
            seen = os.stat(self.root / runtime)
        except FileNotFoundError:
            self._known.pop(runtime, None)
            return []
        stamp = (seen.st_ino, seen.st_mtime_ns)
        known = self._known.get(runtime)
        if known is not None and known[0] == stamp:
            return list(known[1])
        found = []
        for manifest in sorted(
            (self.root / runtime).glob("v*/version.json"), key=lambda p: int(p.parent.name[1:])
        ):
            found.append(Version(**json.loads(manifest.read_text())))
        self._known[runtime] = (stamp, found)
        return list(found)

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
        return sorted(p.name for p in self.root.iterdir() if NAME.fullmatch(p.name) and self.versions(p.name))

    async def delete(self, runtime: str) -> bool:
        """Remove a runtime and every version of it (its sessions are the caller's to end first)."""
        if not self.versions(runtime):
            return False
        async with self.lock:
            await anyio.to_thread.run_sync(lambda: _remove(self.root / runtime))
        return True

    async def deploy_archive(self, runtime: str, archive: bytes, settings: Settings) -> Version:
        """A new version of ``runtime`` from a zip of its folder, sent by a tenant (never trusted:
        its requirements may name packages only, see ``deploy``).

        Raises:
            DeployError: not a zip, too large, or what ``deploy`` refuses.
        """
        async with self.gate:
            with tempfile.TemporaryDirectory(prefix="sb-deploy-") as folder:
                await anyio.to_thread.run_sync(_unzip, archive, Path(folder) / "code")
                return await self._deploy(runtime, Path(folder) / "code", settings, trusted=False)

    async def deploy_image(self, runtime: str, tarball: Path, settings: Settings) -> Version:
        """A new version of ``runtime`` from a root filesystem tarball (an image's: its own
        ``/bin/sh`` and ``python3``, which the runtime's forwarder runs with), started with the
        command ``settings.entry`` (``python3 /app/main.py``, say). The operator's (the CLI's):
        what the image holds runs only in the sandbox, its own system in place of the host's.

        Raises:
            DeployError: a bad name, tarball or setting.
        """
        if not NAME.fullmatch(runtime):
            raise DeployError(
                f"runtime name {runtime!r}: use a letter, then letters, digits or '_' (48 at most)"
            )
        settings.check(image=True)
        if not await anyio.Path(tarball).is_file():
            raise DeployError(f"{tarball}: not a file: give the image's root filesystem as a tarball")

        async def build(partial: Path, home: Path, number: int) -> Version:
            try:
                await anyio.to_thread.run_sync(untar, tarball, partial / "rootfs")
            except ImageError as exc:
                raise DeployError(str(exc)) from None
            said = json.dumps(asdict(settings), sort_keys=True, default=dict)
            made = await anyio.to_thread.run_sync(image_digest, tarball, said)
            rootfs = str(home / "rootfs")
            return Version(
                runtime,
                number,
                rootfs,
                "",
                settings.entry,
                time.time(),
                settings.protocol,
                dict(settings.environment),
                dict(settings.secrets),
                settings.description,
                made,
                rootfs,
            )

        async with self.gate:
            return await self._publish(runtime, build)

    async def _publish(self, runtime: str, build: Callable[[Path, Path, int], Awaitable[Version]]) -> Version:
        """The next version of ``runtime``: ``build(partial, home, number)`` fills a folder of its
        own, which then becomes read-only and, renamed, the version (or goes, if it failed)."""
        async with self.lock:
            number = max((v.number for v in self.versions(runtime)), default=0) + 1
            home = self.root / runtime / f"v{number}"
            partial = self.root / runtime / f".v{number}-{os.getpid()}"
            partial.mkdir(parents=True, mode=0o755)
            try:
                version = await build(partial, home, number)
                (partial / "version.json").write_text(json.dumps(asdict(version)))
                await anyio.to_thread.run_sync(_read_only, partial)
                partial.rename(home)
            except BaseException:
                await anyio.to_thread.run_sync(lambda: _remove(partial))
                raise
        return version

    async def deploy(
        self,
        runtime: str,
        directory: Path,
        entry: str = "main.py",
        settings: Settings | None = None,
        *,
        trusted: bool = True,
    ) -> Version:
        """A new version of ``runtime`` from ``directory``. An untrusted deploy (a tenant's, not the
        operator's) may not give pip options in its requirements (an index, a link, a file).

        Raises:
            DeployError: a bad name, directory, entry or setting, or requirements that do not install.
        """
        async with self.gate:
            return await self._deploy(runtime, directory, settings or Settings(entry=entry), trusted)

    async def _deploy(self, runtime: str, directory: Path, settings: Settings, trusted: bool) -> Version:
        entry = settings.entry
        if not NAME.fullmatch(runtime):
            raise DeployError(
                f"runtime name {runtime!r}: use a letter, then letters, digits or '_' (48 at most)"
            )
        settings.check()
        _check(directory, entry, self.root)
        pinned = None if trusted else _names_only(directory / "requirements.txt")

        async def build(partial: Path, home: Path, number: int) -> Version:
            await anyio.to_thread.run_sync(
                lambda: shutil.copytree(directory, partial / "code", ignore=IGNORED)
            )
            await _environment(partial / "venv", partial / "code" / "requirements.txt", pinned)
            return Version(
                runtime,
                number,
                str(home / "code"),
                str(home / "venv"),
                entry,
                time.time(),
                settings.protocol,
                dict(settings.environment),
                dict(settings.secrets),
                settings.description,
                await anyio.to_thread.run_sync(fingerprint, directory, settings),
            )

        return await self._publish(runtime, build)


def fingerprint(directory: Path, settings: Settings) -> str:
    """What a version is made from, as one hash: every file deployed (path and bytes) and the
    settings. The same folder and settings give the same fingerprint (a YAML apply deploys only
    when it changes)."""
    digest = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True, default=dict).encode())
    for folder, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED(folder, dirs))
        skipped = IGNORED(folder, files)
        for name in sorted(files):
            if name in skipped:
                continue
            path = Path(folder) / name
            digest.update(str(path.relative_to(directory)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


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


def _unzip(archive: bytes, into: Path) -> None:
    """Unpack a zip of an agent's folder: regular files only, inside ``into``, bounded."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            members = zipped.infolist()
            if len(members) > MAX_FILES:
                raise DeployError(f"the zip holds {len(members)} entries; {MAX_FILES} at most")
            if sum(m.file_size for m in members) > MAX_UNPACKED:
                raise DeployError(f"the zip unpacks to more than {MAX_UNPACKED // 2**20} MiB")
            into.mkdir(mode=0o755)
            for member in members:
                path = PurePosixPath(member.filename)
                if path.is_absolute() or ".." in path.parts or "\\" in member.filename:
                    raise DeployError(f"the zip's {member.filename!r} points outside the folder")
                if stat.S_ISLNK(member.external_attr >> 16):
                    raise DeployError(f"the zip's {member.filename!r} is a symbolic link: zip what it names")
                target = into.joinpath(*path.parts)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(member) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DeployError(f"the code is not a zip archive of the agent's folder ({exc})") from None
    except OSError as exc:  # (a file and a folder of one name, say)
        raise DeployError(f"the zip cannot be unpacked as a folder: {exc.strerror or exc}") from None


def _names_only(requirements: Path) -> list[str] | None:
    """A tenant's requirements, each a package by name (with extras, versions and markers) and
    nothing else, rewritten as ``packaging`` reads them: pip gets that list, never the tenant's
    file (whose options, encoding cookie, ``${VARIABLES}``, URLs or paths would have the host
    fetch, read or build what the operator did not choose). None: there is no requirements.txt.

    Raises:
        DeployError: a line that is not a package by name, saying which.
    """
    if not requirements.is_file():
        return None
    raw = requirements.read_bytes()
    if len(raw) > MAX_REQUIREMENTS:
        raise DeployError(f"requirements.txt is larger than {MAX_REQUIREMENTS // 1024} KiB")
    out: list[str] = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        text = line.decode("ascii", errors="replace").split("#", 1)[0].strip()
        if not text:
            continue
        why = _not_a_name(line, text)
        if why is not None:
            shown = line.decode("ascii", errors="replace").strip()[:60]
            raise DeployError(
                f"requirements.txt line {number} ({shown!r}): {why}; list packages by name and version "
                "only (pip options, URLs and paths are the operator's to give)"
            )
        out.append(text)
    return out


def _not_a_name(line: bytes, text: str) -> str | None:
    """Why ``text`` (a line of a tenant's requirements) is not a package by name, or None."""
    if not all(32 <= b < 127 or b in (9, 13) for b in line):
        return "it is not plain ASCII"
    if text.startswith("-") or "$" in text or "\\" in text or "://" in text or "/" in text:
        return "it is an option, a path, a URL or a variable"
    try:
        found = Requirement(text)
    except InvalidRequirement as exc:
        return f"it is not a requirement ({exc})"
    if found.url is not None:
        return "it names a URL"
    if found.name.lower().endswith((".whl", ".zip", ".tar", ".gz", ".bz2", ".xz", ".tgz")):
        return "it names an archive"
    return None


async def _environment(venv: Path, requirements: Path, pinned: list[str] | None = None) -> None:
    """A virtual environment of the system's Python, with the requirements installed: the file
    as it is (the operator's), or only ``pinned`` (a tenant's, checked), then with pip given
    nothing of the gateway's environment but pip's own settings, in an empty folder."""
    needed = await anyio.Path(requirements).is_file()
    bare = [] if needed else ["--without-pip"]  # (nothing to install: no pip in it either)
    made = await anyio.run_process([PYTHON, "-m", "venv", *bare, str(venv)], check=False)
    if made.returncode != 0:
        raise DeployError(
            f"a Python environment could not be made: {made.stderr.decode(errors='replace')[-500:]}"
        )
    if not needed:
        return
    # Wheels only: a source distribution's build would run its code here, on the host, as the
    # gateway (a deploy must never run the agent's code outside a sandbox).
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
    pip += ["--only-binary", ":all:"]
    env: dict[str, str] | None = None
    with tempfile.TemporaryDirectory(prefix="sb-pip-") as empty:
        if pinned is not None:
            requirements = Path(empty) / "requirements.txt"
            requirements.write_text("".join(f"{line}\n" for line in pinned), encoding="ascii")
            env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}  # (the operator's)
            env |= {"PATH": "/usr/bin:/bin", "HOME": empty, "LANG": "C.UTF-8"}
        with anyio.move_on_after(PIP_SECONDS) as deadline:
            installed = await anyio.run_process(
                [*pip, "-r", str(requirements)], check=False, env=env, cwd=empty if env else None
            )
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
