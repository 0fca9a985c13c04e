"""The host side of a sandbox's work directory, shared by every backend whose work directory is a
host directory (bubblewrap, gVisor): files go in and out by paths checked to stay inside it, and
never through a symbolic link (a command inside could plant one pointing at a host file)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from sandbox._contract import SandboxError, inside


class WorkFiles:
    """Files of one work directory, as the host reads and writes them."""

    def __init__(self, work: Path) -> None:
        self.work = work

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
        try:
            host.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise SandboxError(
                    f"{path!r} cannot be written: the work directory is full (its size or file count limit)"
                ) from None
            if exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.ELOOP):
                raise SandboxError(f"{path!r} cannot be written: a directory is in the way") from None
            raise SandboxError(f"{path!r} cannot be written: {exc.strerror}") from None

    async def read(self, path: str, limit: int | None = None) -> bytes:
        host = self._host_path(path)
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise SandboxError(f"no file {path!r} in the work directory") from None
        except OSError as exc:
            raise SandboxError(f"{path!r} cannot be read: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SandboxError(f"{path!r} is not a regular file")
            if limit is not None and info.st_size > limit:
                raise SandboxError(f"{path!r} is {info.st_size} bytes, over the limit of {limit}")
            return f.read() if limit is None else f.read(limit)

    async def listing(self, path: str = ".") -> list[tuple[str, int, bool]]:
        host = self.work if path in ("", ".", "/work") else self._host_path(path)
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
