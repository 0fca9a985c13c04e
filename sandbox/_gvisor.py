"""The gVisor backend: each command runs in its own gVisor sandbox (``runsc run`` of an OCI bundle
made for it), whose user-space kernel (the sentry) answers every system call of the program, so
the host's kernel is reached only through the sentry's narrow, seccomp-filtered set. Inside, the
program runs as ``nobody`` (65534) with no capability and ``no_new_privs``, sees the system's
``/usr`` and a few ``/etc`` files read-only, its own ``/proc`` and ``/dev``, the session's work
directory at ``/work`` and its ``/tmp``, no network at all (``--network=none``), and the seccomp
filter of the bubblewrap backend (``--oci-seccomp``: namespaces, mounts, tracing, keyrings, ...).

Limits from outside: the runsc processes (runsc, its gofer, the sentry and, on the ptrace platform,
a stub process per program process) run in the session's control groups (for ``run``, each in
its own), entered before runsc starts, so the host kernel counts and bounds their memory,
processes and CPU time; ``run``'s rlimits are the sentry's (``process.rlimits``), which the
program cannot raise, but for CPU time (this sentry keeps no RLIMIT_CPU), which is read from the
groups; the wall-clock deadline is kept here and ends every process of the groups.
The groups' limits are the sandbox's plus what gVisor itself takes (``RUNSC_*``, ``PROCESS_*``).

Host UNIX sockets are out of reach by default (``--host-uds=none``). A backend made with
``host_uds`` lets its programs make them (``create``: a socket bound in the work directory is a
host socket there, which the host can connect to) and connect to those bound in (``open``), as
runtime sessions need (ADR 0039, 0040): the app's inbound socket, the links' sockets. Links inside
are resolved by the sentry in the sandbox's own view of its mounts, so they reach no other host
socket; code interpreters never get either.

Files go in and out through the host side of the work directory (``WorkFiles``); the runsc state
(``--root``), the read-only root and the bundles live beside the session's home, never in the
tmpfs the sandbox writes, and everything goes at ``stop``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process

from sandbox._bwrap import ENVIRONMENT, HOST_ENVIRONMENT, SYSTEM, UID, _drain, _kill_group
from sandbox._cgroups import PREFIX, Cgroups, Groups, _alive
from sandbox._contract import Execution, Limits, Options, SandboxError, Usage
from sandbox._files import WorkFiles
from sandbox._mounts import can_mount, is_mount, mount_tmpfs, unmount
from sandbox._seccomp import NAMESPACES, REFUSED, TIOCSTI

RUNSC = "/usr/bin/runsc"
SETPRIV = "/usr/bin/setpriv"
MISSING = "gVisor is not installed: apt-get install runsc"
PLATFORMS = ("ptrace", "systrap", "kvm")
HOST_UDS = ("none", "open", "create", "all")  # runsc --host-uds: what of host UNIX sockets it may use
DEVICES = {"kvm": "/dev/kvm"}  # what a platform needs of the host beyond runsc knowing it
# What gVisor takes of the host beyond the program's own, allowed in its groups on top of the
# program's limits: the threads of runsc, its gofer and the sentry (about 40 here: Go runtimes) and
# their memory; per process of the program, on ptrace, a stub process with a stub thread per sentry
# thread that ran it (about six host threads each, and growing with the sentry: a fork bomb meets
# the host's pids group, not only the sentry's RLIMIT_NPROC, and is reported as "processes") and
# its page tables and stacks.
RUNSC_PROCESSES = 64
PROCESS_THREADS = 4
RUNSC_MEMORY = 256 * 1024 * 1024
PROCESS_MEMORY = 2 * 1024 * 1024
LINKS = (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin"))
MOUNTED = ("/proc", "/dev", "/work", "/tmp")
CPU_WATCH = 0.05  # seconds between readings of a command's CPU time (the sentry keeps no RLIMIT_CPU)
SWEEP = 5.0  # seconds a killed gateway's runsc processes have to exit, so their groups can go


def available() -> str | None:
    """None when gVisor can run here; else one line saying why and what to install."""
    if shutil.which(RUNSC) is None:
        return MISSING
    if shutil.which(SETPRIV) is None:
        return "setpriv is not installed: apt-get install util-linux"
    if os.geteuid() != 0:
        return "gVisor needs the gateway to run as root (runsc sets up the sandbox's namespaces and chroot)"
    return None


@functools.cache
def platforms() -> frozenset[str]:
    """The platforms this runsc knows (``runsc help platforms``: an old one has no systrap)."""
    try:
        done = subprocess.run([RUNSC, "help", "platforms"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(line.strip() for line in done.stdout.splitlines() if line.strip() in PLATFORMS)


def platform_for(wanted: str) -> str:
    """``wanted`` when this runsc and host have it, else ptrace (which every runsc has).

    Raises:
        SandboxError: ``wanted`` is no gVisor platform.
    """
    if wanted not in PLATFORMS:
        raise SandboxError(f"gVisor platform {wanted!r} is not known; use one of {', '.join(PLATFORMS)}")
    device = DEVICES.get(wanted)
    if wanted in platforms() and (device is None or os.access(device, os.R_OK | os.W_OK)):
        return wanted
    return "ptrace"


class GvisorBackend:
    """gVisor sandboxes under ``root`` (made 0700), each with its own small filesystem.

    ``platform`` is how the sentry intercepts the program's system calls: ptrace (the default,
    anywhere), systrap (newer runsc only) or kvm (``/dev/kvm``; nested in a VM, as on these
    machines, this runsc's sentry spins at start and never runs the program); one the host lacks
    falls back to ptrace, and ``self.platform`` says which is used.

    ``host_uds`` is runsc's ``--host-uds`` for every sandbox of the backend: ``none`` (the default:
    no host UNIX socket), ``create`` (a socket a program binds in its work directory or /tmp is a
    host socket the host may connect to), ``open`` (a program may connect to the host sockets bound
    in), or ``all`` (both: hosted agents' sessions, their inbound socket and their links).
    """

    name = "gvisor"

    def __init__(
        self,
        root: Path,
        cgroups: Cgroups | None = None,
        *,
        platform: str = "ptrace",
        seccomp: bool = True,
        host_uds: str = "none",
    ) -> None:
        problem = available()
        if problem is not None:
            raise SandboxError(problem)
        if host_uds not in HOST_UDS:
            raise SandboxError(f"host_uds {host_uds!r} is not one of {', '.join(HOST_UDS)}")
        self.host_uds = host_uds
        self.platform = platform_for(platform)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        found = cgroups or Cgroups()
        self.cgroups = found if found.problem() is None else None  # (rlimits and wall time alone)
        self.seccomp = seccomp
        _sweep(root, self.cgroups)
        self.root = root / f"p{os.getpid()}"  # (several processes may share the root)
        self.root.mkdir(exist_ok=True, mode=0o700)

    async def start(self, options: Options | None = None) -> GvisorSandbox:
        options = options or Options()
        session_id = secrets.token_hex(8)
        home, private = self.root / session_id, self.root / f"{session_id}.runsc"
        home.mkdir(mode=0o700)
        try:
            private.mkdir(mode=0o700)
            if can_mount():  # its own tmpfs: the disk and file-count limits, kept by the kernel
                mount_tmpfs(home, options.disk_bytes, options.files)
            for name in ("work", "tmp"):
                (home / name).mkdir(mode=0o700)
                os.chown(home / name, UID, UID)  # the sandbox's nobody is the host's (home is 0700)
            for name in ("state", "bundles"):
                (private / name).mkdir(mode=0o700)
            _root(private / "rootfs", home, options)
            groups = None
            if self.cgroups is not None:
                groups = self.cgroups.make(  # (what it spawns: the sentry's own work counts in)
                    _host_processes(options.processes),
                    _host_memory(options.memory_bytes, options.processes),
                    cpu=True,
                    cpus=options.cpus,
                )
        except (OSError, SandboxError) as exc:
            await _remove(home, private)
            raise SandboxError(f"a sandbox could not be made: {exc}") from None
        return GvisorSandbox(
            session_id,
            home,
            private,
            options,
            self.cgroups,
            groups,
            platform=self.platform,
            seccomp=self.seccomp,
            host_uds=self.host_uds,
        )


def _host_processes(processes: int) -> int:
    return RUNSC_PROCESSES + PROCESS_THREADS * processes


def _host_memory(memory_bytes: int, processes: int) -> int:
    return memory_bytes + RUNSC_MEMORY + PROCESS_MEMORY * processes


def _sweep(root: Path, cgroups: Cgroups | None) -> None:
    """What a process that was killed left behind: its runsc processes (they die with it, by
    ``setpriv --pdeathsig``; any left are in its groups, whose processes are killed first), its
    groups, its sandboxes' filesystems and runsc state."""
    if cgroups is not None:  # (a sentry takes a moment to exit once killed: its group goes then)
        deadline = time.monotonic() + SWEEP
        while _orphans(cgroups) and time.monotonic() < deadline:
            cgroups.sweep()
            time.sleep(0.01)
    for left in root.glob("p*"):
        if not left.name[1:].isdigit() or _alive(int(left.name[1:])):
            continue
        for home in left.iterdir():
            if is_mount(home):
                unmount(home)
        shutil.rmtree(left, ignore_errors=True)


def _orphans(cgroups: Cgroups) -> list[Path]:
    """Groups of ours whose maker has ended."""
    found = []
    for base in cgroups.bases():
        for group in base.glob(f"{PREFIX}*") if base.is_dir() else ():
            owner = group.name[len(PREFIX) :].split("-", 1)[0]
            if owner.isdigit() and not _alive(int(owner)):
                found.append(group)
    return found


async def _remove(*paths: Path) -> None:
    for path in paths:
        if is_mount(path):
            unmount(path)
        await anyio.to_thread.run_sync(functools.partial(shutil.rmtree, path, ignore_errors=True))


def _mountpoint(base: Path, target: PurePosixPath, directory: bool) -> None:
    """Make ``target`` (relative) under ``base`` for a mount to land on: a directory or a file."""
    place = base.joinpath(*target.parts)
    place.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if directory:
        place.mkdir(exist_ok=True, mode=0o755)
    elif not place.exists():
        place.touch(mode=0o644)


def _root(rootfs: Path, home: Path, options: Options) -> None:
    """The sandbox's read-only root: nothing but the places its mounts land on, and the links of
    a merged /usr. A bind inside /work or /tmp lands in the session's own directory (made now,
    before anything of the sandbox has run there)."""
    rootfs.mkdir(mode=0o755)
    for place in ("usr", "etc", *(name.lstrip("/") for name in MOUNTED)):
        (rootfs / place).mkdir(exist_ok=True, mode=0o755)
    for link, target in LINKS:
        (rootfs / link).symlink_to(target)
    for source in SYSTEM:
        if os.path.exists(source):
            _mountpoint(rootfs, PurePosixPath(source).relative_to("/"), os.path.isdir(source))
    for source, target in options.binds:
        pure = PurePosixPath(target)
        if (
            not pure.is_absolute()
            or ".." in pure.parts
            or len(pure.parts) < 2
            or pure.parts[1] in ("proc", "dev")
        ):
            raise SandboxError(f"bind target {target!r} is not an absolute path outside /, /proc and /dev")
        if not os.path.exists(source):
            raise SandboxError(f"bind source {source!r} does not exist")
        relative = pure.relative_to("/")
        if relative.parts[0] in ("work", "tmp") and len(relative.parts) > 1:
            inner = home / relative.parts[0]
            made = _missing(inner, inner.joinpath(*relative.parts[1:]))
            _mountpoint(inner, PurePosixPath(*relative.parts[1:]), os.path.isdir(source))
            _give(made)
        else:
            _mountpoint(rootfs, relative, os.path.isdir(source))


def _missing(work: Path, host: Path) -> list[Path]:
    """What of ``host`` and its parents under ``work`` is not there yet."""
    return [p for p in (host, *host.parents) if work in p.parents and not os.path.lexists(p)]


def _give(paths: Sequence[Path]) -> None:
    """Make ``paths`` the sandbox user's (never through a link: it may have planted one since)."""
    for path in paths:
        with contextlib.suppress(OSError):  # (already gone again: the sandbox may remove it)
            os.chown(path, UID, UID, follow_symlinks=False)


def _mount(source: str, target: str, *, writable: bool = False) -> dict[str, Any]:
    options = ["rbind", "rw" if writable else "ro", "nosuid", "nodev"]
    return {"destination": target, "type": "bind", "source": source, "options": options}


def _rlimits(limits: Limits | None, options: Options) -> list[dict[str, Any]]:
    """The sentry's rlimits of the program (it cannot raise them): ``run``'s limits; for what is
    spawned (its memory and CPU are the groups', its files' size its tmpfs's), the sandbox's
    process count and, as bubblewrap's long-lived processes, a bounded number of open files."""
    if limits is None:
        values = {"NPROC": options.processes, "NOFILE": 4096, "CORE": 0}
    else:
        values = {
            "CPU": limits.cpu_seconds,
            "AS": limits.memory_bytes,
            "NPROC": limits.processes,
            "FSIZE": limits.file_bytes,
            "NOFILE": limits.open_files,
            "CORE": 0,
        }
    return [{"type": f"RLIMIT_{name}", "hard": value, "soft": value} for name, value in values.items()]


def _seccomp() -> dict[str, Any]:
    """The bubblewrap backend's filter as OCI seccomp, which the sentry applies to the program.
    No rule for clone3: the sentry has none (ENOSYS), and its OCI rules answer EPERM whatever
    errno they name, so C libraries would not fall back to clone."""
    refuse = {"action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}
    rules: list[dict[str, Any]] = [{"names": list(REFUSED), **refuse}]
    for flag in NAMESPACES:  # a thread or a process, yes; a new namespace, no
        masked = {"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}
        rules.append({"names": ["clone"], **refuse, "args": [masked]})
    rules.append(
        {"names": ["ioctl"], **refuse, "args": [{"index": 1, "value": TIOCSTI, "op": "SCMP_CMP_EQ"}]}
    )
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}


def _config(
    home: Path,
    rootfs: Path,
    command: Sequence[str],
    options: Options,
    rlimits: list[dict[str, Any]],
    seccomp: bool,
) -> dict[str, Any]:
    """The OCI runtime configuration of one execution."""
    mounts = [_mount(source, source) for source in SYSTEM if os.path.exists(source)]
    mounts += [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
        _mount(str(home / "work"), "/work", writable=True),
        _mount(str(home / "tmp"), "/tmp", writable=True),
    ]
    mounts += [_mount(source, target) for source, target in options.binds]
    none: list[str] = []
    linux: dict[str, Any] = {
        "namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")]
    }
    if seccomp:
        linux["seccomp"] = _seccomp()
    return {
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": UID, "gid": UID},
            "args": list(command),
            "env": [f"{key}={value}" for key, value in {**ENVIRONMENT, **options.environment}.items()],
            "cwd": "/work",
            "noNewPrivileges": True,
            "capabilities": {
                kind: none for kind in ("bounding", "effective", "inheritable", "permitted", "ambient")
            },
            "rlimits": rlimits,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": linux,
    }


async def _watch_cpu(groups: Groups, seconds: float, deadline: anyio.CancelScope, over: anyio.Event) -> None:
    """End the command (its deadline's scope) once its groups have used ``seconds`` of CPU time:
    this sentry keeps no RLIMIT_CPU, so it is kept from here (runsc's own time counts too)."""
    while True:
        await anyio.sleep(CPU_WATCH)
        if groups.cpu_seconds() > seconds:
            break
    over.set()
    deadline.cancel()


class GvisorSandbox(WorkFiles):
    """One gVisor session: its filesystem, its control groups, and the gVisor sandboxes in it."""

    def __init__(
        self,
        session_id: str,
        home: Path,
        private: Path,
        options: Options,
        cgroups: Cgroups | None = None,
        groups: Groups | None = None,
        *,
        platform: str = "ptrace",
        seccomp: bool = True,
        host_uds: str = "none",
    ) -> None:
        super().__init__(home / "work", owner=(UID, UID))  # (the sandbox's user may change what it is given)
        self.session_id = session_id
        self.home = home
        self.private = private  # runsc's state, the read-only root, the bundles: never in reach
        self.options = options
        self.cgroups = cgroups
        self.groups = groups  # the session's own, for its whole life: what it spawns runs there
        self.platform = platform
        self.seccomp = seccomp
        self.host_uds = host_uds  # (runsc's --host-uds: see GvisorBackend)
        self.spawned: dict[str, Process] = {}
        self.made = 0
        self.stopped = False

    def _command(self, argv: Sequence[str], limits: Limits | None) -> tuple[str, list[str]]:
        """A new container's id and the runsc command that runs ``argv`` in it (its bundle made)."""
        if self.stopped:
            raise SandboxError(f"sandbox {self.session_id} is stopped")
        if not argv:
            raise SandboxError("give the command to run")
        self.made += 1
        container = f"{self.session_id}-{self.made}"
        bundle = self.private / "bundles" / container
        config = _config(
            self.home,
            self.private / "rootfs",
            argv,
            self.options,
            _rlimits(limits, self.options),
            self.seccomp,
        )
        bundle.mkdir(mode=0o700)
        (bundle / "config.json").write_text(json.dumps(config))
        runsc = [RUNSC, f"--root={self.private / 'state'}", "--network=none", "--ignore-cgroups"]
        runsc += [f"--platform={self.platform}", *(["--oci-seccomp"] if self.seccomp else [])]
        runsc += [f"--host-uds={self.host_uds}"]
        # It dies with the gateway (and the sentry with it: runsc starts it attached).
        return container, [
            SETPRIV,
            "--pdeathsig",
            "KILL",
            "--",
            *runsc,
            "run",
            f"--bundle={bundle}",
            container,
        ]

    def _forget(self, container: str) -> None:
        """Remove a container's bundle and whatever runsc kept of it (it was killed: never deleted)."""
        shutil.rmtree(self.private / "bundles" / container, ignore_errors=True)
        for left in (self.private / "state").glob(f"{container}_sandbox:*"):  # (its .state, .lock)
            with contextlib.suppress(OSError):
                if left.is_dir():
                    shutil.rmtree(left)
                else:
                    left.unlink()

    async def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", limits: Limits | None = None
    ) -> Execution:
        limits = limits or Limits()
        container, command = self._command(argv, limits)
        try:
            groups = (
                self.cgroups.make(
                    _host_processes(limits.processes),
                    _host_memory(limits.memory_bytes, limits.processes),
                    cpu=True,
                )
                if self.cgroups is not None
                else None
            )
        except OSError as exc:
            self._forget(container)
            raise SandboxError(f"the command's control groups could not be made: {exc}") from None
        try:
            if groups is not None:  # its own groups (the session's are for what it spawns)
                command = groups.enter(command)
            return await self._run(command, stdin, limits, groups)
        finally:
            with anyio.CancelScope(shield=True):
                if groups is not None:
                    await groups.remove()
                await anyio.to_thread.run_sync(self._forget, container)

    def command_line(self, argv: Sequence[str]) -> list[str]:
        """A self-contained command line running ``argv`` in a new container of this sandbox, in
        its control groups (for a caller that starts the process itself: the MCP SDK)."""
        _, command = self._command(argv, None)
        return self.groups.enter(command) if self.groups is not None else command

    async def spawn(self, argv: Sequence[str]) -> Process:
        for container in [name for name, process in self.spawned.items() if process.returncode is not None]:
            del self.spawned[container]
            self._forget(container)
        container, command = self._command(argv, None)
        if self.groups is not None:
            command = self.groups.enter(command)
        try:
            process = await anyio.open_process(command, start_new_session=True, env=HOST_ENVIRONMENT)
        except OSError as exc:
            self._forget(container)
            raise SandboxError(f"runsc could not be started: {exc}") from None
        self.spawned[container] = process
        return process

    def usage(self) -> Usage:
        return self.groups.usage() if self.groups is not None else Usage(0.0, 0, 0, 0)

    async def kill(self) -> None:
        if self.groups is not None:
            await anyio.to_thread.run_sync(self.groups.kill)
        spawned, self.spawned = self.spawned, {}
        for container, process in spawned.items():
            _kill_group(process.pid)  # (runsc and its gofer; the sentry dies with runsc)
            with anyio.CancelScope(shield=True):
                await process.wait()
            await anyio.to_thread.run_sync(self._forget, container)

    async def _run(
        self, command: list[str], stdin: bytes, limits: Limits, groups: Groups | None
    ) -> Execution:
        out, err = bytearray(), bytearray()
        try:
            process = await anyio.open_process(command, start_new_session=True, env=HOST_ENVIRONMENT)
        except OSError as exc:
            raise SandboxError(f"runsc could not be started: {exc}") from None
        cut = [False, False]
        stopped: str | None = None
        over = anyio.Event()  # its CPU time is spent
        with anyio.move_on_after(limits.wall_seconds) as deadline:
            async with anyio.create_task_group() as watch:
                if groups is not None and groups.cpu is not None:
                    watch.start_soon(_watch_cpu, groups, limits.cpu_seconds, deadline, over)
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
                watch.cancel_scope.cancel()
        if over.is_set():
            stopped = "cpu time"
        elif deadline.cancelled_caught:
            stopped = "wall time"
        with anyio.CancelScope(shield=True):
            if groups is not None:
                await anyio.to_thread.run_sync(groups.kill)  # (the sentry and its stubs too)
            _kill_group(process.pid)
            await process.aclose()
            code = process.returncode
        if stopped is None and groups is not None and groups.out_of_memory():
            stopped = "memory"
        elif stopped is None and code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            stopped = "cpu time"
        elif stopped is None and groups is not None and groups.pids_exhausted():
            stopped = "processes"
        elif stopped is None and code in (-signal.SIGKILL, 128 + signal.SIGKILL):
            stopped = "killed"
        return Execution(
            None if stopped is not None else code, bytes(out), bytes(err), truncated=any(cut), stopped=stopped
        )

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        with anyio.CancelScope(shield=True):
            await self.kill()
            if self.groups is not None:
                await self.groups.remove()
            await _remove(self.home, self.private)
