"""An image's root filesystem for a hosted agent's version (ADR 0044): unpacked from a tarball
with nothing leading out of it, the folders the sandbox mounts on made without following the
image's links, and what the runtime needs of it (``/bin/sh``, ``python3``) looked up as the
sandbox will see it, never through a link to the host's own files."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path


class ImageError(Exception):
    """The tarball is not an image the runtime can run; the message says why."""


MOUNTPOINTS = ("proc", "dev", "tmp", "work", "app", "opt/switchboard", "run/switchboard/links")


def untar(tarball: Path, into: Path) -> None:
    """Unpack an image's root filesystem: nothing outside ``into`` (no member, link or hard link
    leading out, as ``tarfile``'s ``tar`` filter checks), no device or FIFO, no set-id bit; then
    the folders the sandbox mounts on, made (it is bound read-only)."""

    def kept(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        if member.isdev() or member.isfifo():
            return None  # (the sandbox has its own /dev)
        return tarfile.tar_filter(member, dest)

    try:
        with tarfile.open(tarball) as image:
            into.mkdir(mode=0o755)
            image.extractall(into, filter=kept)
    except (tarfile.TarError, OSError) as exc:
        raise ImageError(f"{tarball.name}: not a root filesystem tarball that unpacks here ({exc})") from None
    for needed in ("bin/sh", "usr/bin/python3"):
        if not _found_inside(into, needed):
            raise ImageError(
                f"{tarball.name}: the image has no /{needed}; the runtime starts the app through it "
                "(a Python image, say, has both)"
            )
    for folder in (*MOUNTPOINTS, "opt/switchboard/forward.py"):
        _make_inside(into, folder, file=folder.endswith(".py"), name=tarball.name)


def _found_inside(root: Path, path: str) -> bool:
    """Whether ``path`` names a file in the image ``root`` as the sandbox will see it: its links
    followed inside the image (an absolute one from the image's /), never out to the host's."""
    parts, hops = [p for p in path.split("/") if p], 0
    seen: list[str] = []
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            seen = seen[:-1]
            continue
        here = root.joinpath(*seen, part)
        if here.is_symlink():
            hops += 1
            if hops > 40:
                return False
            target = os.readlink(here)
            if target.startswith("/"):
                seen = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        if not os.path.lexists(here):
            return False
        seen.append(part)
    return True


def _make_inside(root: Path, path: str, *, file: bool, name: str) -> None:
    """Make a folder (or empty file) the sandbox mounts on, never through a link of the image's."""
    parts = path.split("/")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            try:
                if last and file:
                    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644, dir_fd=fd))
                    return
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as exc:  # (a link where the sandbox mounts: ELOOP)
                raise ImageError(f"{name}: /{path} cannot be mounted on ({exc.strerror})") from None
            try:
                nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                raise ImageError(
                    f"{name}: /{'/'.join(parts[: index + 1])} is a link or a file; the sandbox mounts on it"
                ) from None
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)


def image_digest(tarball: Path, settings: str) -> str:
    """What a version is made from, as one hash: the tarball's bytes and its settings (as JSON)."""
    digest = hashlib.sha256(settings.encode())
    with tarball.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
