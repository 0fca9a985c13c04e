"""A sandbox's way out in network mode PUBLIC (ADR 0035): its own egress proxy (``_proxy``) on a
UNIX socket in a directory of the host's that the sandbox cannot write, bound into the sandbox; the
forwarder (``_forward``) inside listens on its loopback and carries each connection to that socket,
so HTTP clients that honour HTTP(S)_PROXY reach public addresses (and nothing else: the proxy
refuses private, loopback, link-local and metadata addresses and the gateway's own, whatever the
operator's lists say). The sandbox still has no network interface but its own loopback."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import TaskGroup, TaskStatus

from sandbox._forward import proxy_environment
from sandbox._proxy import EgressDecision, EgressPolicy, EgressProxy, Resolver

FORWARD = Path(__file__).with_name("_forward.py")
FORWARD_INSIDE = "/opt/switchboard/forward.py"
SOCKET_INSIDE = "/run/switchboard/proxy.sock"
PORT = 3128  # the forwarder's, on the sandbox's own loopback


@dataclass
class Egress:
    """One sandbox's proxy, running until ``close``."""

    directory: Path
    scope: anyio.CancelScope
    binds: tuple[tuple[str, str], ...]
    environment: Mapping[str, str]

    def close(self) -> None:
        self.scope.cancel()
        shutil.rmtree(self.directory, ignore_errors=True)


async def open_egress(
    group: TaskGroup,
    policy: EgressPolicy,
    *,
    resolver: Resolver | None = None,
    log: Callable[[EgressDecision], Awaitable[None] | None] | None = None,
) -> Egress:
    """Start a proxy for one sandbox in ``group``; what the sandbox must be made with to use it.

    Its socket is in a short directory of its own under the system's temporary directory (0700,
    the gateway's): a UNIX socket's path has at most 107 bytes, which a deep data directory would
    pass, and a path that depends on the operator's layout would show in errors."""
    directory = Path(tempfile.mkdtemp(prefix=f"sb-egress-{os.getpid()}-"))
    proxy = EgressProxy(directory / "proxy.sock", policy, resolver=resolver, log=log)
    scope = anyio.CancelScope()

    async def serving(*, task_status: TaskStatus[None]) -> None:
        with scope:
            await proxy.serve(task_status=task_status)

    try:
        await group.start(serving)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    binds = ((str(directory / "proxy.sock"), SOCKET_INSIDE), (str(FORWARD), FORWARD_INSIDE))
    environment = {"SWITCHBOARD_EGRESS_SOCKET": SOCKET_INSIDE, **proxy_environment(PORT)}
    return Egress(directory, scope, binds, environment)


def forwarded(argv: Sequence[str]) -> list[str]:
    """``argv`` started by the forwarder inside the sandbox (for a process that is not the agent)."""
    return ["python3", "-I", FORWARD_INSIDE, str(PORT), SOCKET_INSIDE, "--", *argv]
