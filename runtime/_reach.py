"""How the host reaches a session's app, on each sandbox backend (ADR 0039).

Either way the host ends up with a UNIX socket named ``app.sock`` in the sandbox's *home*: a
folder of the host's that nothing in the sandbox can reach (only its ``work`` and ``tmp`` are
bound inside), named through a descriptor of the home (``/proc/self/fd/N/app.sock``: a socket's
path has 108 bytes at most and a home's may be longer). ``Session.work`` holds that descriptor
and ``Session.socket`` that path, whichever the backend.

- **Bubblewrap** takes the host's descriptors: the host listens on ``app.sock`` itself and hands
  the listening socket down to ``forward.py --inbound FD``.
- **gVisor** cannot be handed one, so the forwarder listens itself (``--inbound-path``) at
  ``/work/.runtime/app.sock``: with runsc's ``--host-uds=create`` that is a host socket in the
  work directory. The sandbox can write there, and could put a link to one of the host's sockets
  (a database's) in its place: so the host never names that path. It walks down from its
  descriptor of the home one component at a time with ``O_PATH | O_NOFOLLOW`` (a link anywhere is
  taken as itself, never followed), checks the last is a socket on the sandbox's own file system,
  and makes a hard link to *that inode* at ``app.sock`` in the home (``linkat`` through
  ``/proc/self/fd``). Whatever the sandbox does to its own path later, the host's name keeps
  leading to the socket it checked.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from anyio.abc import Process

from runtime._links import Links
from sandbox import (
    FORWARD_INSIDE,
    BwrapBackend,
    BwrapSandbox,
    Execution,
    GvisorBackend,
    GvisorSandbox,
    Limits,
    SandboxError,
    Usage,
)

APP_SOCKET = "app.sock"  # in the sandbox's home: the host's name of the app's socket
INSIDE = (".runtime", "app.sock")  # where the forwarder listens in a gVisor sandbox's work directory
PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
# (an image may have no mkdir: its python3, which the forwarder needs anyway, makes the folder)
MAKE = "import os; os.makedirs('/work/.runtime', exist_ok=True)"
START = (
    f'{{ command -v mkdir >/dev/null && mkdir -p /work/.runtime || python3 -Ic "{MAKE}"; }} '
    '&& cd /app && exec "$@" >>/work/.runtime/app.log 2>&1'
)

Backend = BwrapBackend | GvisorBackend  # (the backends a session may run on: see the module's notes)


class Box(Protocol):
    """What a session (and its users: the admin listing, AgentCore's command) use of its sandbox."""

    @property
    def home(self) -> Path: ...

    async def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", limits: Limits | None = None
    ) -> Execution: ...

    async def read(self, path: str, limit: int | None = None) -> bytes: ...

    def usage(self) -> Usage: ...

    async def stop(self) -> None: ...


class Unreachable(Exception):
    """The app's socket is not something the host may connect to; the message says why."""


@dataclass(frozen=True, slots=True)
class Launched:
    """The app's process, and how the host gets its socket: ``adopt()`` is True once ``app.sock``
    is in the home (at once on bubblewrap; on gVisor once the forwarder has made it)."""

    app: Process
    adopt: Callable[[], bool]


def problem(backend: Backend, links: Links) -> str | None:
    """None when sessions can run on ``backend``; else what is wrong with it."""
    if isinstance(backend, BwrapBackend):
        return None
    wanted = "create" if not links.services else "all"
    if backend.host_uds in (wanted, "all"):
        return None
    return (
        f"runtime sessions on gVisor need host UNIX sockets: make the backend with host_uds={wanted!r} "
        f"(the app's inbound socket{', and its links' if links.services else ''}), not {backend.host_uds!r}"
    )


async def launch(box: Box, home: int, forwarded: list[str]) -> Launched:
    """Start the forwarder in ``box``, its inbound side reaching the host's ``app.sock`` in the
    home ``home`` holds; ``forwarded``: the rest of its arguments (``PORT [--outbound ...] -- APP``)."""
    forward = ["python3", "-I", FORWARD_INSIDE]
    if isinstance(box, BwrapSandbox):
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as listener:
            listener.bind(f"/proc/self/fd/{home}/{APP_SOCKET}")
            listener.listen(64)
            argv = [*forward, "--inbound", str(listener.fileno()), *forwarded]
            app = await box.spawn(["/bin/sh", "-c", START, "sh", *argv], pass_fds=(listener.fileno(),))
        return Launched(app, lambda: True)
    if isinstance(box, GvisorSandbox):
        argv = [*forward, "--inbound-path", "/work/" + "/".join(INSIDE), *forwarded]
        app = await box.spawn(["/bin/sh", "-c", START, "sh", *argv])
        return Launched(app, lambda: adopt(home))
    raise SandboxError(f"runtime sessions run on bubblewrap or gVisor, not {type(box).__name__}")


def adopt(home: int) -> bool:
    """Link the socket the forwarder made in the work directory to ``app.sock`` in the home
    ``home`` holds, checked and never through a link; False: it is not there yet.

    Raises:
        Unreachable: something else is there (a link, a file, a directory, another file system's).
    """
    where = "/work/" + "/".join(INSIDE)
    opened: list[int] = []
    try:
        fd = home
        for part in ("work", *INSIDE[:-1]):
            fd = os.open(part, PATH | os.O_DIRECTORY, dir_fd=fd)
            opened.append(fd)
        fd = os.open(INSIDE[-1], PATH, dir_fd=fd)
        opened.append(fd)
        found, mine = os.fstat(fd), os.fstat(home)
        if not stat.S_ISSOCK(found.st_mode) or found.st_dev != mine.st_dev:
            kind = "a symbolic link" if stat.S_ISLNK(found.st_mode) else "not a socket of the sandbox's"
            raise Unreachable(f"the app's socket {where} is {kind}: not followed")
        os.link(f"/proc/self/fd/{fd}", APP_SOCKET, dst_dir_fd=home, follow_symlinks=True)
    except FileNotFoundError:
        return False
    except NotADirectoryError:  # (O_DIRECTORY | O_NOFOLLOW on a link: ENOTDIR)
        raise Unreachable(
            f"a folder on the way to the app's socket {where} is not one: not followed"
        ) from None
    except OSError as exc:
        raise Unreachable(f"the app's socket {where} cannot be used: {exc.strerror}") from None
    finally:
        for fd in opened:
            os.close(fd)
    return True
