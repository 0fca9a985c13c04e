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
import logging
import os
import secrets
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process

from sandbox._cgroups import Cgroups, Groups, _alive
from sandbox._contract import Execution, Limits, Options, SandboxError, Usage
from sandbox._files import WorkFiles
from sandbox._mounts import can_mount, is_mount, mount_tmpfs, unmount
from sandbox._seccomp import program

log = logging.getLogger("switchboard.sandbox")
BWRAP = "/usr/bin/bwrap"
PRLIMIT = "/usr/bin/prlimit"
UID = GID = 65534  # nobody, inside the sandbox's own user namespace
SECCOMP_FD = 9  # the filter's descriptor, as bwrap reads it (--seccomp 9)
FILTER = "seccomp.bpf"  # in the sandbox's home, beside (not in) what it sees
SYSTEM = (
    "/usr",
    "/etc/alternatives",
    "/etc/ssl/certs",  # (the CA certificates: never /etc/ssl/private)
    "/etc/ssl/openssl.cnf",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/fonts",
    "/etc/matplotlibrc",
)
# What bwrap itself (and so the sandbox's pid 1, whose /proc/1/environ the sandbox can read) is
# started with: never the gateway's own variables (vault key, database URL, cloud keys).
HOST_ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/work", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}


def available() -> str | None:
    """None when bubblewrap can run here; else one line saying why and what to install."""
    if shutil.which(BWRAP) is None:
        return "bubblewrap is not installed: apt-get install bubblewrap"
    if shutil.which(PRLIMIT) is None:
        return "prlimit is not installed: apt-get install util-linux"
    if not can_mount():  # (no tmpfs of its own: no disk limit; no control groups: no memory limit)
        return "sandboxes keep their limits with control groups and a tmpfs each: run the gateway as root"
    problem = Cgroups().problem()
    if problem is not None:
        return f"sandboxes keep their limits with control groups, and here: {problem}"
    return None


class BwrapBackend:
    """Sandboxes under ``root`` (made 0700), each with its own small filesystem."""

    name = "bwrap"

    def __init__(self, root: Path, cgroups: Cgroups | None = None, *, seccomp: bool = True) -> None:
        problem = available()
        if problem is not None:
            raise SandboxError(problem)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        found = cgroups or Cgroups()
        self.cgroups = found if found.problem() is None else None  # (rlimits and wall time alone)
        self.seccomp = seccomp
        _sweep(root, self.cgroups)
        self.root = root / f"p{os.getpid()}"  # (several processes may share the root)
        self.root.mkdir(exist_ok=True, mode=0o700)

    async def start(self, options: Options | None = None) -> BwrapSandbox:
        options = options or Options()
        session_id = secrets.token_hex(8)
        home = self.root / session_id
        home.mkdir(mode=0o700)
        try:
            if can_mount():  # its own tmpfs: the disk and file-count limits, kept by the kernel
                mount_tmpfs(home, options.disk_bytes, options.files)
            for name in ("work", "tmp"):
                (home / name).mkdir(mode=0o700)
            if self.seccomp:  # (outside what the sandbox sees: its home holds work/ and tmp/)
                (home / FILTER).write_bytes(program())
            groups = None
            if self.cgroups is not None:
                groups = self.cgroups.make(
                    options.processes, options.memory_bytes, cpu=True, cpus=options.cpus
                )
        except OSError as exc:
            await _remove(home)
            log.warning("a sandbox could not be made at %s: %s", home, exc)
            raise SandboxError("a sandbox could not be made here (the gateway's log says why)") from None
        # Owned by whoever runs the gateway: that user is the sandbox's `nobody` inside its user
        # namespace, and nobody else can enter the directories (0700).
        return BwrapSandbox(session_id, home, options, self.cgroups, groups, seccomp=self.seccomp)


def _sweep(root: Path, cgroups: Cgroups | None) -> None:
    """What a process that was killed left behind: its sandboxes' filesystems (their processes
    ended with it: bwrap dies with its parent) and control groups."""
    for left in root.glob("p*"):
        if not left.name[1:].isdigit() or _alive(int(left.name[1:])):
            continue
        for home in left.iterdir():
            if is_mount(home):
                unmount(home)
        shutil.rmtree(left, ignore_errors=True)
    if cgroups is not None:
        cgroups.sweep()


async def _remove(home: Path) -> None:
    if is_mount(home):
        unmount(home)
    await anyio.to_thread.run_sync(lambda: shutil.rmtree(home, ignore_errors=True))


def _argv(home: Path, command: Sequence[str], options: Options, seccomp_fd: int | None) -> list[str]:
    argv = [BWRAP, "--unshare-all", "--unshare-user", "--uid", str(UID), "--gid", str(GID)]
    argv += ["--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL"]
    if options.root is not None:  # (an image's own system: its /usr, /bin, /etc, ...)
        argv += ["--ro-bind", options.root, "/"]
    else:
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
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--bind", str(home / "tmp"), "/tmp", "--bind", str(home / "work"), "/work", "--chdir", "/work"]
    for source, target in options.binds:
        argv += ["--ro-bind", source, target]
    for key, value in {**ENVIRONMENT, **options.environment}.items():
        argv += ["--setenv", key, value]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
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


def _held(options: Options) -> list[str]:
    """prlimit for a long-lived process of the sandbox (the agent, a sandboxed server): no file
    larger than its disk, a bounded number of open files, no core dumps."""
    values = (("fsize", options.disk_bytes), ("nofile", 4096), ("core", 0))
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


class BwrapSandbox(WorkFiles):
    """One bubblewrap sandbox: its filesystem, its control groups, and what runs in it."""

    def __init__(
        self,
        session_id: str,
        home: Path,
        options: Options,
        cgroups: Cgroups | None = None,
        groups: Groups | None = None,
        *,
        seccomp: bool = True,
    ) -> None:
        super().__init__(home / "work")
        self.session_id = session_id
        self.home = home
        self.options = options
        self.cgroups = cgroups
        self.groups = groups  # the sandbox's own, for its whole life
        self.seccomp = seccomp
        self.stopped = False

    def _command(self, argv: Sequence[str], limits: Limits | None) -> list[str]:
        """bwrap running ``argv`` (after prlimit, with ``limits``), the seccomp filter read from
        the sandbox's home as file descriptor 9 by a shell that then becomes bwrap."""
        if self.stopped:
            raise SandboxError(f"sandbox {self.session_id} is stopped")
        if not argv:
            raise SandboxError("give the command to run")
        command = _argv(self.home, argv, self.options, SECCOMP_FD if self.seccomp else None)
        # (a long-lived process gets what its control groups do not bound)
        command = [*(_limited(limits) if limits is not None else _held(self.options)), *command]
        if self.seccomp:
            command = ["/bin/sh", "-c", f'exec "$@" {SECCOMP_FD}<"$0"', str(self.home / FILTER), *command]
        return command

    def command_line(self, argv: Sequence[str]) -> list[str]:
        """A self-contained command line that runs ``argv`` in this sandbox, in its control groups:
        for a caller that starts the process itself (a stdio MCP server through the MCP SDK)."""
        command = self._command(argv, None)
        return self.groups.enter(command) if self.groups is not None else command

    async def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", limits: Limits | None = None
    ) -> Execution:
        limits = limits or Limits()
        command = self._command(argv, limits)
        groups = (
            self.cgroups.make(limits.processes, limits.memory_bytes) if self.cgroups is not None else None
        )
        try:
            if groups is not None:  # its own groups (the sandbox's are for what it spawns)
                command = groups.enter(command)
            return await self._run(command, stdin, limits, groups)
        finally:
            if groups is not None:
                with anyio.CancelScope(shield=True):
                    await groups.remove()

    async def spawn(self, argv: Sequence[str], *, pass_fds: Sequence[int] = ()) -> Process:
        """As the contract says; ``pass_fds``: the host's descriptors the process inherits, by
        number (a listening socket the host made, say: the sandbox cannot redirect it)."""
        return await anyio.open_process(
            self.command_line(argv), start_new_session=True, env=HOST_ENVIRONMENT, pass_fds=pass_fds
        )

    def usage(self) -> Usage:
        return self.groups.usage() if self.groups is not None else Usage(0.0, 0, 0, 0)

    async def kill(self) -> None:
        if self.groups is not None:
            await anyio.to_thread.run_sync(self.groups.kill)

    async def _run(
        self, command: list[str], stdin: bytes, limits: Limits, groups: Groups | None
    ) -> Execution:
        out, err = bytearray(), bytearray()
        process = await anyio.open_process(command, start_new_session=True, env=HOST_ENVIRONMENT)
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

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        with anyio.CancelScope(shield=True):
            if self.groups is not None:
                await self.groups.remove()
            await _remove(self.home)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
