"""The host side of a sandbox's work directory, shared by the backends whose work directory is a
host directory (bubblewrap, gVisor): files go in and out by paths that stay inside it.

A program inside keeps running while the host works on its directory, and may swap a directory
for a symbolic link to a host path at any moment. So a path is never resolved by name: the host
opens the work directory once and walks down one component at a time, each opened relative to
the last with ``O_NOFOLLOW`` (a link anywhere is refused, whenever it appears), and does the final
operation relative to the last directory it opened. Files are opened non-blocking and must be
regular (a FIFO would hold the gateway), and the work is done in a worker thread.

(The code interpreter's file tools go through its agent instead, inside the sandbox: ADR 0035.)
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

import anyio

from sandbox._contract import SandboxError, inside

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _refused(path: str, exc: OSError) -> SandboxError:
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return SandboxError(f"{path!r} goes through a symbolic link; not followed")
    if exc.errno == errno.ENOTDIR:
        return SandboxError(f"{path!r}: a file is in the way of a directory")
    if exc.errno == errno.ENOENT:
        return SandboxError(f"no file {path!r} in the work directory")
    if exc.errno == errno.ENOSPC:
        return SandboxError(
            f"{path!r} cannot be written: the work directory is full (its size or file count limit)"
        )
    if exc.errno == errno.ENXIO:  # (a FIFO nobody reads, a socket: opened without blocking)
        return SandboxError(f"{path!r} is not a regular file")
    if exc.errno == errno.EISDIR:
        return SandboxError(f"{path!r} is a directory")
    return SandboxError(f"{path!r}: {exc.strerror}")


class WorkFiles:
    """Files of one work directory, as the host reads and writes them."""

    def __init__(self, work: Path, owner: tuple[int, int] | None = None) -> None:
        self.work = work
        self.owner = owner  # (uid, gid) what the host makes is given to: the sandbox's user

    def _walk(self, parts: tuple[str, ...], create: bool) -> int:
        """A descriptor of the directory ``parts`` names under the work directory (made when
        ``create``), every step taken relative to the last and never through a link."""
        fd = os.open(self.work, DIRECTORY)
        try:
            for part in parts:
                try:
                    step = os.open(part, DIRECTORY, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    step = os.open(part, DIRECTORY, dir_fd=fd)
                    if self.owner is not None:
                        os.fchown(step, *self.owner)
                os.close(fd)
                fd = step
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _write(self, path: str, content: bytes) -> None:
        relative = inside(path)
        parent = self._walk(relative.parts[:-1], create=True)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(relative.name, flags, 0o644, dir_fd=parent)
        finally:
            os.close(parent)
        with os.fdopen(fd, "wb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise SandboxError(f"{path!r} is not a regular file")
            if self.owner is not None:
                os.fchown(f.fileno(), *self.owner)
            f.truncate(0)
            f.write(content)

    def _read(self, path: str, limit: int | None) -> bytes:
        relative = inside(path)
        parent = self._walk(relative.parts[:-1], create=False)
        try:
            fd = os.open(
                relative.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent
            )
        finally:
            os.close(parent)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SandboxError(f"{path!r} is not a regular file")
            if limit is not None and info.st_size > limit:
                raise SandboxError(f"{path!r} is {info.st_size} bytes, over the limit of {limit}")
            return f.read() if limit is None else f.read(limit)

    def _listing(self, path: str) -> list[tuple[str, int, bool]]:
        parts = () if path in ("", ".", "/work") else inside(path).parts
        fd = self._walk(parts, create=False)
        try:
            out = []
            with os.scandir(fd) as found:
                for entry in found:
                    info = entry.stat(follow_symlinks=False)
                    out.append((entry.name, info.st_size, stat.S_ISDIR(info.st_mode)))
        finally:
            os.close(fd)
        return sorted(out)

    def _remove(self, path: str) -> None:
        relative = inside(path)
        parent = self._walk(relative.parts[:-1], create=False)
        try:
            info = os.stat(relative.name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(relative.name, dir_fd=parent)  # (fd-based: it follows no link)
            else:
                os.unlink(relative.name, dir_fd=parent)
        finally:
            os.close(parent)

    async def _do(self, path: str, work: object, *args: object) -> object:
        try:
            return await anyio.to_thread.run_sync(work, path, *args)  # type: ignore[arg-type]
        except SandboxError:
            raise
        except OSError as exc:
            raise _refused(path, exc) from None

    async def write(self, path: str, content: bytes) -> None:
        await self._do(path, self._write, content)

    async def read(self, path: str, limit: int | None = None) -> bytes:
        found = await self._do(path, self._read, limit)
        assert isinstance(found, bytes)
        return found

    async def listing(self, path: str = ".") -> list[tuple[str, int, bool]]:
        found = await self._do(path, self._listing)
        assert isinstance(found, list)
        return found

    async def remove(self, path: str) -> None:
        await self._do(path, self._remove)
