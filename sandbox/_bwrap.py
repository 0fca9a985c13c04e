"""The bubblewrap backend: each command runs in fresh Linux namespaces (user, PID, network, IPC,
UTS, cgroup, mount) as an unprivileged user, sees the system read-only and nothing of the host's
files but the sandbox's own work directory, has no network at all, and runs under resource limits
set before it starts (the bwrap process's rlimits, which it cannot raise) and a wall-clock deadline
enforced from here (the whole process group is killed).

Files go in and out through the host side of the work directory, by paths checked to stay inside it
and never through a symbolic link (a sandboxed command could plant one pointing at the host).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import stat
from collections.abc import Sequence
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream

from sandbox._cgroups import Cgroups, Groups
from sandbox._contract import Execution, Limits, SandboxError, inside

BWRAP = "/usr/bin/bwrap"
PRLIMIT = "/usr/bin/prlimit"
UID = GID = 65534  # nobody, inside the sandbox's own user namespace
SYSTEM = ("/usr", "/etc/alternatives", "/etc/ssl", "/etc/ld.so.cache", "/etc/localtime")
ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/work", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}


def available() -> str | None:
    """None when bubblewrap can run here; else one line saying why and what to install."""
    if shutil.which(BWRAP) is None:
        return "bubblewrap is not installed: apt-get install bubblewrap"
    if shutil.which(PRLIMIT) is None:
        return "prlimit is not installed: apt-get install util-linux"
    return None


class BwrapBackend:
    """Sandboxes under ``root`` (made 0700), one work directory each."""

    name = "bwrap"

    def __init__(self, root: Path, cgroups: Cgroups | None = None) -> None:
        problem = available()
        if problem is not None:
            raise SandboxError(problem)
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        found = cgroups or Cgroups()
        self.cgroups = found if found.problem() is None else None  # (rlimits and wall time alone)

    async def start(self) -> BwrapSandbox:
        session_id = secrets.token_hex(8)
        work = self.root / session_id
        work.mkdir(mode=0o700)
        # Owned by whoever runs the gateway: that user is the sandbox's `nobody` inside its user
        # namespace, and nobody else can enter the directory (0700).
        return BwrapSandbox(session_id, work, self.cgroups)


def _argv(work: Path, command: Sequence[str]) -> list[str]:
    argv = [BWRAP, "--unshare-all", "--unshare-user", "--uid", str(UID), "--gid", str(GID)]
    argv += ["--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL"]
    for source in SYSTEM:
        if os.path.exists(source):
            argv += ["--ro-bind", source, source]
    for link, target in (
        ("/bin", "usr/bin"),
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
        ("/sbin", "usr/sbin"),
    ):
        argv += ["--symlink", target, link]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--bind",
        str(work),
        "/work",
        "--chdir",
        "/work",
    ]
    for key, value in ENVIRONMENT.items():
        argv += ["--setenv", key, value]
    return [*argv, "--", *command]


def _limited(limits: Limits) -> list[str]:
    """util-linux's prlimit before bwrap: the hard limits bwrap and everything it runs inherit and
    cannot raise (set from outside, before anything of the sandbox runs)."""
    values = (
        ("cpu", limits.cpu_seconds),
        ("as", limits.memory_bytes),
        ("nproc", limits.processes),
        ("fsize", limits.file_bytes),
        ("nofile", limits.open_files),
        ("core", 0),
    )
    return [PRLIMIT, *(f"--{name}={value}:{value}" for name, value in values), "--"]


async def _drain(stream: ByteReceiveStream | None, cap: int, into: bytearray) -> bool:
    """Read all of ``stream``, keeping the first ``cap`` bytes; True when some were dropped."""
    dropped = False
    if stream is None:
        return False
    async for chunk in stream:
        room = cap - len(into)
        if room > 0:
            into += chunk[:room]
        dropped = dropped or len(chunk) > room
    return dropped


class BwrapSandbox:
    """One bubblewrap sandbox: a work directory, and the commands run in it."""

    def __init__(self, session_id: str, work: Path, cgroups: Cgroups | None = None) -> None:
        self.session_id = session_id
        self.work = work
        self.cgroups = cgroups
        self.stopped = False

    async def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", limits: Limits | None = None
    ) -> Execution:
        if self.stopped:
            raise SandboxError(f"sandbox {self.session_id} is stopped")
        if not argv:
            raise SandboxError("give the command to run")
        limits = limits or Limits()
        command = [*_limited(limits), *_argv(self.work, argv)]
        groups = (
            self.cgroups.make(limits.processes, limits.memory_bytes) if self.cgroups is not None else None
        )
        try:
            return await self._run(groups.enter(command) if groups else command, stdin, limits, groups)
        finally:
            if groups is not None:
                with anyio.CancelScope(shield=True):
                    await groups.remove()

    async def _run(
        self, command: list[str], stdin: bytes, limits: Limits, groups: Groups | None
    ) -> Execution:
        out, err = bytearray(), bytearray()
        process = await anyio.open_process(command, start_new_session=True)
        cut = [False, False]
        stopped: str | None = None
        with anyio.move_on_after(limits.wall_seconds) as deadline:
            async with anyio.create_task_group() as tg:

                async def reading(index: int, stream: ByteReceiveStream | None, into: bytearray) -> None:
                    cut[index] = await _drain(stream, limits.output_bytes, into)

                tg.start_soon(reading, 0, process.stdout, out)
                tg.start_soon(reading, 1, process.stderr, err)
                if process.stdin is not None:
                    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                        await process.stdin.send(stdin)  # (it may not read its input)
                    await process.stdin.aclose()
                await process.wait()
        if deadline.cancelled_caught:
            stopped = "wall time"
        with anyio.CancelScope(shield=True):
            _kill_group(process.pid)
            code = await process.wait()
        if stopped is None and groups is not None and groups.out_of_memory():
            stopped = "memory"
        elif stopped is None and code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            stopped = "cpu time"
        elif stopped is None and groups is not None and groups.pids_exhausted():
            stopped = "processes"
        elif stopped is None and code in (-signal.SIGKILL, 128 + signal.SIGKILL):
            stopped = "killed"
        return Execution(
            None if stopped is not None else code,
            bytes(out),
            bytes(err),
            truncated=any(cut),
            stopped=stopped,
        )

    def _host_path(self, path: str) -> Path:
        relative = inside(path)
        host = self.work
        for part in relative.parts:
            host = host / part
            try:
                if stat.S_ISLNK(os.lstat(host).st_mode):
                    raise SandboxError(f"{path!r} goes through a symbolic link; not followed")
            except FileNotFoundError:
                continue  # (not there yet: nothing to follow)
        return host

    async def write(self, path: str, content: bytes) -> None:
        host = self._host_path(path)
        host.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(content)

    async def read(self, path: str) -> bytes:
        host = self._host_path(path)
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise SandboxError(f"no file {path!r} in the work directory") from None
        except OSError as exc:
            raise SandboxError(f"{path!r} cannot be read: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise SandboxError(f"{path!r} is not a regular file")
            return f.read()

    async def listing(self, path: str = ".") -> list[tuple[str, int, bool]]:
        host = self.work if path in ("", ".") else self._host_path(path)
        if not host.is_dir() or host.is_symlink():
            raise SandboxError(f"{path!r} is not a directory in the work directory")
        out = []
        for entry in sorted(os.scandir(host), key=lambda e: e.name):
            info = entry.stat(follow_symlinks=False)
            out.append((entry.name, info.st_size, stat.S_ISDIR(info.st_mode)))
        return out

    async def remove(self, path: str) -> None:
        host = self._host_path(path)
        if host.is_dir() and not host.is_symlink():
            shutil.rmtree(host)
        elif host.exists() or host.is_symlink():
            host.unlink()
        else:
            raise SandboxError(f"no file {path!r} in the work directory")

    async def stop(self) -> None:
        self.stopped = True
        shutil.rmtree(self.work, ignore_errors=True)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
