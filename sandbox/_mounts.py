"""A sandbox's own small filesystem: a tmpfs of a fixed size and number of files, mounted on the
host for its session (when the gateway runs as root), holding its work directory and its /tmp. The
kernel enforces both limits from outside: a disk fill inside meets ENOSPC, and nothing it writes
reaches the host's disk. Unmounted (lazily, so a process still holding a file cannot keep it) and
removed at the end."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

MS_NOSUID, MS_NODEV = 2, 4
MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def can_mount() -> bool:
    return os.geteuid() == 0


def mount_tmpfs(path: Path, size: int, files: int) -> None:
    options = f"size={size},nr_inodes={files},mode=0700".encode()
    if _libc.mount(b"tmpfs", bytes(path), b"tmpfs", MS_NOSUID | MS_NODEV, options) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"tmpfs for a sandbox at {path}: {os.strerror(error)}")


def unmount(path: Path) -> None:
    if _libc.umount2(bytes(path), MNT_DETACH) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unmount {path}: {os.strerror(error)}")


def is_mount(path: Path) -> bool:
    return os.path.ismount(path)
