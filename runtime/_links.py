"""Services a hosted agent may reach from its sandbox, which has no network (ADR 0040).

The operator names them (the gateway itself always among them): each is a host address the
host connects to, reached inside every session at ``127.0.0.1:PORT`` through the forwarder
(``forward.py --outbound PORT SOCKET``), whose other end is a UNIX socket the host listens on in
a directory of its own, bound read-only into the sandbox. The sandbox can connect to those
sockets and to nothing else: where each leads is the operator's choice, made on the host.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import SocketStream

LINKS_INSIDE = "/run/switchboard/links"
RESERVED = (8080, 8000, 9000)  # the app's own: HTTP, MCP, A2A
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Service:
    """A host address reached inside each session at 127.0.0.1:``port``."""

    name: str
    host: str
    port: int  # the host's
    inside: int  # the sandbox's
    path: str | None = None  # a UNIX socket of the host's instead of host:port

    @property
    def variable(self) -> str:
        """The variable the app finds its URL in: ``SWITCHBOARD_SERVICE_{NAME}_URL``."""
        return f"SWITCHBOARD_SERVICE_{self.name.upper()}_URL"


def parse_services(spec: Mapping[str, str]) -> list[Service]:
    """``{name: "host:port"}`` or ``{name: "host:port@inside"}`` (inside: the port in the sandbox,
    the host's by default), checked.

    Raises:
        ValueError: a name, an address or a port is wrong, or two services share a port inside.
    """
    out: list[Service] = []
    for name, where in spec.items():
        if not NAME.fullmatch(name):
            raise ValueError(f"runtime service {name!r}: a name is lowercase letters, digits and '_'")
        address, _, inside_text = where.partition("@")
        host, _, port_text = address.rpartition(":")
        host = host.strip("[]")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"runtime service {name!r}: {where!r} is not HOST:PORT (or HOST:PORT@INSIDE)")
        if inside_text and not inside_text.isdigit():
            raise ValueError(f"runtime service {name!r}: {inside_text!r} is not a port")
        inside = int(inside_text) if inside_text else int(port_text)
        if not 0 < inside < 65536:
            raise ValueError(f"runtime service {name!r}: {inside_text!r} is not a port")
        if inside in RESERVED:
            raise ValueError(
                f"runtime service {name!r}: port {inside} is the app's own (8080, 8000, 9000) in the "
                f"sandbox; give another as {address}@PORT"
            )
        taken = next((s for s in out if s.inside == inside), None)
        if taken is not None:
            raise ValueError(
                f"runtime services {taken.name!r} and {name!r} both use port {inside} in the sandbox; "
                f"give one another as HOST:PORT@INSIDE"
            )
        out.append(Service(name, host, int(port_text), inside))
    return out


class Links:
    """The host's end of every service, for every session of one process: ``open()`` listens."""

    def __init__(self, services: list[Service]) -> None:
        self.services = services
        self.directory: Path | None = None

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[Links]:
        # A short directory of its own (a UNIX socket's path has at most 107 bytes), the gateway's.
        directory = Path(tempfile.mkdtemp(prefix=f"sb-links-{os.getpid()}-"))
        os.chmod(directory, 0o755)  # (the sandbox's user reaches the sockets, never writes here)
        try:
            async with contextlib.AsyncExitStack() as stack, anyio.create_task_group() as tasks:
                for service in self.services:
                    path = directory / f"{service.name}.sock"
                    listener = await stack.enter_async_context(await anyio.create_unix_listener(path))
                    os.chmod(path, 0o666)
                    tasks.start_soon(listener.serve, self._handler(service))
                self.directory = directory
                try:
                    yield self
                finally:
                    self.directory = None
                    tasks.cancel_scope.cancel()
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _handler(self, service: Service) -> Callable[[SocketStream], Awaitable[None]]:
        async def handle(client: SocketStream) -> None:
            async with client:
                try:
                    upstream: SocketStream = await (
                        anyio.connect_unix(service.path)
                        if service.path is not None
                        else anyio.connect_tcp(service.host, service.port)
                    )
                except OSError:
                    return  # (the app sees its connection closed, as if the service were down)
                async with upstream, anyio.create_task_group() as tasks:
                    tasks.start_soon(_pump, client, upstream, None)
                    await _pump(upstream, client, tasks.cancel_scope)

        return handle

    @property
    def binds(self) -> tuple[tuple[str, str], ...]:
        return () if self.directory is None else ((str(self.directory), LINKS_INSIDE),)

    def arguments(self) -> list[str]:
        """The forwarder's ``--outbound`` arguments."""
        out: list[str] = []
        for service in self.services:
            out += ["--outbound", str(service.inside), f"{LINKS_INSIDE}/{service.name}.sock"]
        return out

    def environment(self) -> dict[str, str]:
        return {s.variable: f"http://127.0.0.1:{s.inside}" for s in self.services}


async def _pump(source: SocketStream, sink: SocketStream, scope: anyio.CancelScope | None) -> None:
    """Copy until ``source`` ends. The app's side ending half-closes the service's (it may still
    answer); the service's side ending (``scope`` given) ends the whole connection."""
    broken = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
    try:
        async for chunk in source:
            await sink.send(chunk)
        if scope is None:
            await sink.send_eof()
            return
    except broken:
        pass
    if scope is not None:
        scope.cancel()
    else:
        with contextlib.suppress(*broken):
            await sink.aclose()
