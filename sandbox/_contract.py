"""What every isolation backend offers (ADR 0034, 0035): a sandbox with a private work directory,
in which commands run under limits enforced from outside, long-lived processes are spawned (the
code interpreter's agent, a sandboxed MCP server), and files go in and out only by paths inside
that directory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

from anyio.abc import Process


class SandboxError(Exception):
    """What a caller asked of a sandbox cannot be done; the message says why (never a trace)."""


class NoSession(SandboxError):
    """The session named is not there (never was, not the caller's, or it has ended)."""


class AtCapacity(SandboxError):
    """No more sessions now: the interpreter has as many live as it may."""


class Unavailable(SandboxError):
    """The backend cannot run on this host; the message says why and what to install."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits on one execution, enforced from outside the sandbox."""

    wall_seconds: float = 30.0  # the whole execution, then it is killed
    cpu_seconds: int = 30  # CPU time (RLIMIT_CPU)
    memory_bytes: int = 512 * 1024 * 1024  # address space (RLIMIT_AS)
    processes: int = 64  # processes and threads of the sandbox's user (RLIMIT_NPROC)
    file_bytes: int = 64 * 1024 * 1024  # the largest file it may write (RLIMIT_FSIZE)
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 1024 * 1024  # of stdout and of stderr each; the rest is cut with a notice


@dataclass(frozen=True, slots=True)
class Options:
    """What a whole sandbox may hold and use, for its life (all enforced from outside)."""

    memory_bytes: int = 1024 * 1024 * 1024  # everything in it, /tmp and the work directory included
    processes: int = 256  # processes and threads at once
    cpus: float = 1.0  # cores' worth of CPU time it may use at once (where the cpu controller is)
    disk_bytes: int = 512 * 1024 * 1024  # its work directory and /tmp together
    files: int = 20_000  # files and directories in them
    # read-only extras: (host path, path inside), e.g. the agent's script or a package cache
    binds: tuple[tuple[str, str], ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    # a root filesystem of the host's (an image's, unpacked) bound read-only as / instead of the
    # host's system (bubblewrap only)
    root: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What a sandbox has used so far."""

    cpu_seconds: float
    memory_bytes: int
    memory_kills: int  # processes killed at its memory limit, since it started
    process_refusals: int  # forks refused at its process limit, since it started


@dataclass(frozen=True, slots=True)
class Execution:
    """How one command ended: its exit code (None: killed), its output, and why it was stopped."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    truncated: bool = False  # the output was longer than the limit and was cut
    stopped: str | None = None  # "wall time", "cpu time", "memory", ...: the limit that ended it


class Sandbox(Protocol):
    """One isolated place to run commands, with its own work directory."""

    session_id: str

    async def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", limits: Limits | None = None
    ) -> Execution:
        """Run ``argv`` inside the sandbox (cwd: its work directory)."""
        ...

    async def write(self, path: str, content: bytes) -> None: ...

    async def read(self, path: str, limit: int | None = None) -> bytes:
        """The file's content; refused when it is larger than ``limit``."""
        ...

    async def listing(self, path: str = ".") -> list[tuple[str, int, bool]]:
        """(name, size, is a directory) of what ``path`` holds."""
        ...

    async def remove(self, path: str) -> None: ...

    def command_line(self, argv: Sequence[str]) -> list[str]:
        """A self-contained command line running ``argv`` in the sandbox, for a caller that starts
        the process itself (a stdio MCP server through the MCP SDK)."""
        ...

    async def spawn(self, argv: Sequence[str]) -> Process:
        """Start a long-lived ``argv`` inside the sandbox, its standard streams piped to the caller;
        it lives until it ends, ``kill`` or ``stop``."""
        ...

    def usage(self) -> Usage: ...

    async def kill(self) -> None:
        """End every process of the sandbox, keeping its files."""
        ...

    async def stop(self) -> None:
        """End every process and remove the work directory: nothing is left behind."""
        ...


def inside(path: str) -> PurePosixPath:
    """``path`` as a relative path that cannot leave the work directory.

    Raises:
        SandboxError: it is absolute, empty, or climbs out with ``..``.
    """
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\x00" in path:
        raise SandboxError(f"{path!r} is not a path inside the work directory (relative, without '..')")
    return pure
