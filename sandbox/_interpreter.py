"""Code interpreters and their sessions (ADR 0035): each session is one sandbox with its own kernel,
taken warm from the interpreter's pool, owned by whoever started it, and ended by ``stop``, by its
timeout (AgentCore's ``sessionTimeoutSeconds``: counted from its start, whatever it does, at most
``max_seconds``) or when idle for ``idle_seconds``. An ended session leaves nothing behind: its
processes are killed, its filesystem unmounted and removed; a short record of it stays so that
``Get`` still answers TERMINATED."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from sandbox._bwrap import BwrapBackend, available
from sandbox._contract import AtCapacity, Limits, NoSession, Options, Sandbox, SandboxError, Unavailable
from sandbox._egress import Egress, open_egress
from sandbox._gvisor import GvisorBackend
from sandbox._gvisor import available as gvisor_available
from sandbox._kernel import AGENT, AGENT_INSIDE, Kernel, ToolHandler
from sandbox._microvm import MicrovmBackend
from sandbox._microvm import available as microvm_available
from sandbox._pool import Pool
from sandbox._proxy import EgressDecision, EgressPolicy, Resolver
from sandbox._tools import Runtimes, call, program

log = logging.getLogger("switchboard.sandbox")
NODE_INSIDE = "/opt/node/bin/node"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KEEP_ENDED = 1000  # records of ended sessions kept for Get


@dataclass(frozen=True, slots=True)
class InterpreterConfig:
    """One code interpreter's settings (the gateway's `code_interpreter` settings make it)."""

    backend: str = "bwrap"
    options: Options = field(default_factory=Options)  # each session's sandbox, for its life
    limits: Limits = field(default_factory=Limits)  # each execution
    idle_seconds: float = 900.0
    max_seconds: float = 8 * 3600.0
    default_timeout: float = 900.0
    warm: int = 2  # sandboxes kept ready
    max_sessions: int = 64  # live at once, in this process
    python: str = "/usr/bin/python3"  # inside the sandbox
    node: str | None = "/usr/bin/node"  # on the host; bound read-only into each sandbox
    network: str = "SANDBOX"  # SANDBOX: none at all; PUBLIC: public addresses, through a proxy
    egress: EgressPolicy = field(default_factory=EgressPolicy)  # (PUBLIC) the operator's lists
    egress_log: Callable[[EgressDecision], Awaitable[None] | None] | None = None  # each decision
    egress_resolver: Resolver | None = None  # (PUBLIC) names to addresses; None: the system's
    admit: Callable[[str], str | None] | None = None  # a tenant may start one more? None, or why not


@dataclass
class Made:
    """A sandbox with its kernel started (and its egress proxy, in PUBLIC mode)."""

    box: Sandbox
    kernel: Kernel
    egress: Egress | None = None


@dataclass
class CodeSession:
    """A session as its owners see it."""

    id: str
    interpreter: str
    name: str
    tenant: str
    owner: str  # who within the tenant ("" for any caller of the tenant, as AgentCore's are)
    timeout_seconds: float
    created: datetime
    box: Sandbox | None
    kernel: Kernel | None
    egress: Egress | None = None
    warm: bool = False
    status: str = "READY"
    ended: datetime | None = None
    last_used: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    calls: int = 0
    busy: int = 0
    client_token: str | None = None  # of the request that started it: the same request, the same session

    def updated(self) -> datetime:
        if self.ended is not None:
            return self.ended
        return datetime.now(UTC) - (time.monotonic() - self.last_used) * _SECOND


_SECOND = datetime.fromtimestamp(1, UTC) - datetime.fromtimestamp(0, UTC)


def session_id() -> str:
    """26 characters of Crockford's base32, as AgentCore's session ids look."""
    return "".join(secrets.choice(ALPHABET) for _ in range(26))


BACKENDS = ("bwrap", "gvisor", "microvm")


def backend_problem(name: str) -> str | None:
    """None when backend ``name`` can run on this host; else one line: why, and what to install."""
    if name == "bwrap":
        return available()
    if name == "gvisor":
        return gvisor_available()
    if name == "microvm":
        return microvm_available()
    return f"sandbox backend {name!r} is not known; use one of {', '.join(BACKENDS)}"


def backend_for(name: str, root: Path) -> Any:
    """The backend ``name``, or SandboxError saying in one line why it cannot run here."""
    makers: dict[str, Any] = {"bwrap": BwrapBackend, "gvisor": GvisorBackend, "microvm": MicrovmBackend}
    if name not in makers:
        raise Unavailable(f"sandbox backend {name!r} is not known; use one of {', '.join(BACKENDS)}")
    try:
        return makers[name](root / name)
    except SandboxError as exc:
        raise Unavailable(str(exc)) from None


def _node_version(node: str) -> tuple[int, int]:
    import subprocess

    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        major, minor = out.strip().lstrip("v").split(".")[:2]
        return int(major), int(minor)
    except (OSError, subprocess.SubprocessError, ValueError):
        return (0, 0)


class Interpreter:
    """A code interpreter: its backend, its warm pool, and its live sessions."""

    def __init__(self, name: str, config: InterpreterConfig, root: Path) -> None:
        self.name = name
        self.config = config
        self.backend = backend_for(config.backend, root)
        self.root = root
        binds: list[tuple[str, str]] = [(str(AGENT), AGENT_INSIDE)]
        node = config.node if config.node and shutil.which(config.node) else None
        self.runtimes = Runtimes(node=None, typescript=False)
        if node is not None:
            binds.append((str(Path(node).resolve()), NODE_INSIDE))
            self.runtimes = Runtimes(node=NODE_INSIDE, typescript=_node_version(node) >= (22, 6))
        environment = {
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": "/tmp",
            "PYTHONUNBUFFERED": "1",
            "PYTHONUSERBASE": "/tmp/python",  # (pip install lands there: the system is read-only)
            "PIP_USER": "1",
            "PIP_BREAK_SYSTEM_PACKAGES": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        options = config.options
        self.options = Options(
            memory_bytes=options.memory_bytes,
            processes=options.processes,
            disk_bytes=options.disk_bytes,
            files=options.files,
            binds=(*options.binds, *binds),
            environment={**environment, **options.environment},
        )
        if config.network not in ("SANDBOX", "PUBLIC"):
            raise SandboxError(f"network mode {config.network!r} is not SANDBOX or PUBLIC")
        self.pool: Pool[Made] = Pool(self._make, self._discard, config.warm)
        self._group: TaskGroup | None = None  # (running: where PUBLIC sandboxes' proxies run)
        self.live: dict[str, CodeSession] = {}
        self.ended: OrderedDict[str, CodeSession] = OrderedDict()
        self.starting: dict[str, int] = {}  # sessions being started, by tenant

    def count(self, tenant: str) -> int:
        """The tenant's live sessions here, those being started included."""
        return sum(1 for s in self.live.values() if s.tenant == tenant) + self.starting.get(tenant, 0)

    async def _make(self) -> Made:
        options, egress = self.options, None
        if self.config.network == "PUBLIC":
            if self._group is None:
                raise SandboxError(f"code interpreter {self.name!r} is not running")
            c = self.config
            egress = await open_egress(self._group, c.egress, resolver=c.egress_resolver, log=c.egress_log)
            options = replace(
                options,
                binds=(*options.binds, *egress.binds),
                environment={**options.environment, **egress.environment},
            )
        try:
            box: Sandbox = await self.backend.start(options)
        except BaseException:
            if egress is not None:
                egress.close()
            raise
        made = Made(box, Kernel(box, self.config.python), egress)
        try:
            await made.kernel.call({"op": "ping"}, wall=30)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._discard(made)
            raise
        return made

    async def _discard(self, made: Made) -> None:
        try:
            await made.kernel.stop()
            await made.box.stop()
        finally:
            if made.egress is not None:
                made.egress.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Interpreter]:
        """The pool refilled and the sessions' lifetimes kept while this is open; every session
        and every warm sandbox ended when it closes."""
        async with anyio.create_task_group() as tg:
            self._group = tg
            tg.start_soon(self.pool.fill)
            tg.start_soon(self._reaping)
            try:
                yield self
            finally:
                with anyio.CancelScope(shield=True):
                    for session in list(self.live.values()):
                        await self._end(session)
                    await self.pool.close()
                    with contextlib.suppress(OSError):  # (this process's folder, once empty)
                        os.rmdir(self.backend.root)
                tg.cancel_scope.cancel()

    async def _reaping(self) -> None:
        while True:
            await anyio.sleep(1.0)
            now = time.monotonic()
            for session in list(self.live.values()):
                idle = session.busy == 0 and now - session.last_used > self.config.idle_seconds
                if idle or now - session.started > session.timeout_seconds:
                    await self._end(session)

    async def start(
        self,
        tenant: str,
        owner: str = "",
        name: str = "",
        lifetime: float | None = None,
        client_token: str | None = None,
    ) -> CodeSession:
        if client_token:
            for earlier in self.live.values():
                if earlier.tenant == tenant and earlier.client_token == client_token:
                    return earlier  # (a retried request: the session it made)
        seconds = float(lifetime) if lifetime else self.config.default_timeout
        if not 1 <= seconds <= self.config.max_seconds:
            raise SandboxError(f"sessionTimeoutSeconds must be between 1 and {int(self.config.max_seconds)}")
        if len(self.live) + sum(self.starting.values()) >= self.config.max_sessions:
            most = self.config.max_sessions
            raise AtCapacity(f"code interpreter {self.name!r} has {most} sessions, its limit; stop one first")
        refusal = self.config.admit(tenant) if self.config.admit is not None else None
        if refusal is not None:
            raise AtCapacity(refusal)
        self.starting[tenant] = self.starting.get(tenant, 0) + 1  # (held while the sandbox is made)
        try:
            made, warm = await self.pool.take()
        finally:
            self.starting[tenant] -= 1
            if not self.starting[tenant]:
                del self.starting[tenant]
        session = CodeSession(
            id=session_id(),
            interpreter=self.name,
            name=name or f"session-{secrets.token_hex(4)}",
            tenant=tenant,
            owner=owner,
            timeout_seconds=seconds,
            created=datetime.now(UTC),
            box=made.box,
            kernel=made.kernel,
            egress=made.egress,
            warm=warm,
            client_token=client_token,
        )
        self.live[session.id] = session
        return session

    def get(self, session_id: str, tenant: str, owner: str | None = None) -> CodeSession:
        """The session (live or ended) of ``tenant`` (and ``owner``, when given)."""
        session = self.live.get(session_id) or self.ended.get(session_id)
        if session is None or session.tenant != tenant or (owner is not None and session.owner != owner):
            raise NoSession(f"no session {session_id!r} in code interpreter {self.name!r}")
        return session

    def sessions(self, tenant: str | None = None, status: str | None = None) -> list[CodeSession]:
        """Live sessions first, then ended ones, newest first; of ``tenant`` when given."""
        found = [*self.live.values(), *reversed(self.ended.values())]
        return [
            s
            for s in found
            if (tenant is None or s.tenant == tenant) and (status is None or s.status == status)
        ]

    async def stop(self, session_id: str, tenant: str, owner: str | None = None) -> CodeSession:
        session = self.get(session_id, tenant, owner)
        await self._end(session)
        return session

    async def _end(self, session: CodeSession) -> None:
        if session.status == "TERMINATED":
            return
        session.status = "TERMINATED"
        session.ended = datetime.now(UTC)
        self.live.pop(session.id, None)
        self.ended[session.id] = session
        while len(self.ended) > KEEP_ENDED:
            self.ended.popitem(last=False)
        box, kernel, egress = session.box, session.kernel, session.egress
        session.box = session.kernel = session.egress = None
        if box is not None and kernel is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await self._discard(Made(box, kernel, egress))
                except OSError as exc:  # (teardown must go on for the others)
                    log.warning("session %s did not tear down cleanly: %s", session.id, exc)

    async def program(
        self, session_id: str, code: str, tenant: str, tools: ToolHandler, limits: Limits | None = None
    ) -> dict[str, Any]:
        """Run a code-mode program in the session (``sandbox._tools.program``)."""
        async with self._using(session_id, tenant) as kernel:
            return await program(kernel, code, limits or self.config.limits, tools)

    async def invoke(
        self, session_id: str, tool: str, arguments: Mapping[str, Any], tenant: str, owner: str | None = None
    ) -> dict[str, Any]:
        """Run ``tool`` in the session; its AgentCore ``CodeInterpreterResult``.

        Raises:
            SandboxError: no such session for this owner, it has ended, or the call is wrong.
        """
        async with self._using(session_id, tenant, owner) as kernel:
            return await call(kernel, tool, arguments, self.config.limits, self.runtimes)

    @contextlib.asynccontextmanager
    async def _using(self, session_id: str, tenant: str, owner: str | None = None) -> AsyncIterator[Kernel]:
        """The kernel of a live session, counted busy (and used) while the block runs."""
        session = self.get(session_id, tenant, owner)
        if session.status != "READY" or session.box is None or session.kernel is None:
            raise NoSession(f"session {session_id!r} has ended ({session.status}); start a new one")
        session.busy += 1
        session.last_used = time.monotonic()
        try:
            yield session.kernel
        finally:
            session.busy -= 1
            session.calls += 1
            session.last_used = time.monotonic()
