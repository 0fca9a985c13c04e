"""An image's root filesystem for a hosted agent's version (ADR 0044): unpacked from a tarball
with nothing leading out of it, the folders the sandbox mounts on made without following the
image's links, and what the runtime needs of it (``/bin/sh``, ``python3``) looked up as the
sandbox will see it, never through a link to the host's own files."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from sandbox import BWRAP


class ImageError(Exception):
    """The tarball is not an image the runtime can run; the message says why."""


MOUNTPOINTS = ("proc", "dev", "tmp", "work", "app", "opt/switchboard", "run/switchboard/links")


# Run with the sandboxes' Python (3.11.2 here: tarfile without its filters) in a sandbox of its
# own (below): checking members' names cannot be enough (tarfile's own filters do not follow
# where a link will lead), so the links of a crafted image must have nothing of the host's to
# lead to (review notes/review-20c: a hard link to a host file, a link swapped under a folder).
UNPACK = """
import sys, tarfile

def kept(image):
    for member in image:
        if member.isdev() or member.isfifo():
            continue  # (the sandbox has its own /dev)
        name = member.name.lstrip("/")
        if not name or ".." in name.split("/"):
            raise tarfile.TarError(f"{member.name!r} leads out of the image")
        member.name = name
        if member.islnk():  # (a hard link names a member: inside the image)
            member.linkname = member.linkname.lstrip("/")
            if ".." in member.linkname.split("/"):
                raise tarfile.TarError(f"{member.name!r} links out of the image")
        member.mode &= 0o755  # (no set-id or sticky bit, nothing writable by others)
        member.uid = member.gid = 0
        member.uname = member.gname = ""
        yield member

try:
    with tarfile.open("/in.tar") as image:
        image.extractall("/out", members=kept(image))
except (tarfile.TarError, OSError) as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
"""
UNPACK_SECONDS = 600


def untar(tarball: Path, into: Path) -> None:
    """Unpack an image's root filesystem into ``into``, in a sandbox that sees only the tarball,
    ``into`` (as ``/out``) and the host's ``/usr`` read-only, with no capability: a link in the
    image can lead to nothing of the host's (a hard link across mounts fails; a chmod or chown
    through a link meets a read-only mount or no capability); no device or FIFO, no set-id bit.
    Then what the runtime needs is looked for, and the folders the sandbox mounts on are made."""
    into.mkdir(mode=0o755)
    argv = [BWRAP, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for link, target in (("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64")):
        argv += ["--symlink", target, link]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--clearenv"]
    argv += ["--bind", str(into), "/out", "--ro-bind", str(tarball), "/in.tar"]
    argv += ["--", "/usr/bin/python3", "-I", "-c", UNPACK]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=UNPACK_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise ImageError(f"{tarball.name}: unpacking took longer than {UNPACK_SECONDS} s") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(nothing said)"]
        raise ImageError(f"{tarball.name}: not a root filesystem tarball that unpacks ({said[0][:300]})")
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
