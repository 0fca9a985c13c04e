"""The process's code interpreters (ADR 0035), shared by the three ways in: the AgentCore API
(the built-in ``aws.codeinterpreter.v1`` and each tenant's own, made by CreateCodeInterpreter),
gateway targets of ``kind: code_interpreter``, and the admin API (sessions listed and stopped).

Each interpreter is a ``sandbox.Interpreter`` run in this object's task group (its warm pool
refilled, its sessions' lifetimes kept); made on first use, so a process that never runs code
starts no sandbox. Sessions live in the process that started them (ADR 0035: one replica each).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from gateway.core.types import CallContext, CallNext, Principal, ToolCall, ToolResult
from gateway.settings import Settings
from gateway.stages import Shared
from gateway.stages.audit import GatewayAudit
from gateway.telemetry import GatewayTelemetry
from sandbox import (
    CodeSession,
    EgressDecision,
    EgressPolicy,
    Interpreter,
    InterpreterConfig,
    Limits,
    Options,
    Sandbox,
    SandboxError,
    backend_for,
)

logger = logging.getLogger(__name__)
egress_log = logging.getLogger("switchboard.sandbox.egress")

BUILTIN = "aws.codeinterpreter.v1"


@dataclass(frozen=True, slots=True)
class Running:
    """A live interpreter: whose it is, and the object."""

    tenant: str | None  # None: shared by every tenant (the built-in one)
    key: str  # AgentCore's identifier, or ``target:{gateway}/{target}``
    interpreter: Interpreter
    done: anyio.Event  # set: its sessions and its pool end, and its task with them


def config_from(settings: Settings, own_port: int | None = None, **changes: Any) -> InterpreterConfig:
    """The interpreters' settings (SWITCHBOARD_CODE_INTERPRETER_*, SWITCHBOARD_SANDBOX_EGRESS_*),
    with ``changes`` applied; in network mode PUBLIC the gateway's own port, on any address of
    this host, is refused as well as every private one."""
    refuse: tuple[tuple[str, int], ...] = (("0.0.0.0", own_port), ("::", own_port)) if own_port else ()
    base = InterpreterConfig(
        backend=settings.code_interpreter_backend,
        options=Options(
            memory_bytes=settings.code_interpreter_memory_mb * 1024 * 1024,
            disk_bytes=settings.code_interpreter_disk_mb * 1024 * 1024,
        ),
        limits=Limits(
            wall_seconds=settings.code_interpreter_wall_seconds,
            cpu_seconds=int(settings.code_interpreter_wall_seconds),
            memory_bytes=settings.code_interpreter_memory_mb * 1024 * 1024,
        ),
        idle_seconds=settings.code_interpreter_idle_seconds,
        warm=settings.code_interpreter_warm,
        max_sessions=settings.code_interpreter_max_sessions,
        node=settings.code_interpreter_node,
        egress=EgressPolicy(
            allow=tuple(settings.sandbox_egress_allow),
            deny=tuple(settings.sandbox_egress_deny),
            refuse=refuse,
        ),
        egress_log=_egress_logged,
    )
    return replace(base, **changes)


def _egress_logged(decision: EgressDecision) -> None:
    """Each PUBLIC sandbox's connection, allowed or refused, in the gateway's log."""
    verdict = "allowed" if decision.allowed else "refused"
    where = f"{decision.host}:{decision.port} ({decision.address or 'unresolved'})"
    egress_log.info(
        "sandbox egress %s: %s%s", verdict, where, f": {decision.reason}" if decision.reason else ""
    )


class CodeInterpreters:
    """Every interpreter of this process, made on first use and ended with it."""

    def __init__(self, settings: Settings, own_port: int | None = None) -> None:
        self.settings = settings
        self.own_port = own_port  # where this process listens: PUBLIC sandboxes never reach it
        self.root = sandbox_root(settings)
        self.running: dict[tuple[str | None, str], Running] = {}
        self._group: TaskGroup | None = None
        self._making = anyio.Lock()
        self.shared: Shared | None = None  # the audit and tracing of calls (set with the hub)
        self._backends: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[CodeInterpreters]:
        async with anyio.create_task_group() as tg:
            self._group = tg
            try:
                yield self
            finally:
                for running in self.running.values():
                    running.done.set()  # each interpreter ends its sessions and its pool
                self._group = None

    async def _serve(
        self, interpreter: Interpreter, done: anyio.Event, *, task_status: TaskStatus[None]
    ) -> None:
        async with interpreter.running():
            task_status.started()
            await done.wait()

    def _admit(self, tenant: str) -> str | None:
        """A tenant's live sessions, in every interpreter of this process, stay under its quota."""
        quota = self.settings.code_interpreter_tenant_sessions
        live = sum(r.interpreter.count(tenant) for r in self.running.values())
        if live >= quota:
            return f"tenant {tenant!r} has {live} code interpreter sessions, its limit here; stop one first"
        return None

    async def _get(self, tenant: str | None, key: str, make: InterpreterConfig) -> Interpreter:
        found = self.running.get((tenant, key))
        if found is not None:
            return found.interpreter
        async with self._making:
            found = self.running.get((tenant, key))
            if found is not None:
                return found.interpreter
            if self._group is None:
                raise SandboxError("code interpreters are not running in this process")
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            make = replace(make, admit=self._admit)
            interpreter = Interpreter(key, make, self.root)  # (SandboxError: the backend cannot run)
            done = anyio.Event()
            await self._group.start(self._serve, interpreter, done)
            self.running[(tenant, key)] = Running(tenant, key, interpreter, done)
            return interpreter

    async def builtin(self) -> Interpreter:
        """The interpreter every tenant has: AgentCore's ``aws.codeinterpreter.v1``."""
        return await self._get(None, BUILTIN, config_from(self.settings, self.own_port))

    async def custom(self, tenant: str, key: str, network: str = "SANDBOX") -> Interpreter:
        """A tenant's own interpreter (CreateCodeInterpreter): no warm pool of its own."""
        return await self._get(
            tenant, key, config_from(self.settings, self.own_port, warm=0, network=network)
        )

    async def for_target(self, tenant: str, key: str, **changes: Any) -> Interpreter:
        """A gateway target's interpreter: the settings' defaults with the target's ``changes``."""
        return await self._get(tenant, key, config_from(self.settings, self.own_port, **changes))

    async def forget(self, tenant: str, key: str) -> None:
        """A deleted interpreter: its sessions and its pool end now."""
        found = self.running.pop((tenant, key), None)
        if found is not None:
            for session in found.interpreter.sessions(status="READY"):
                await found.interpreter.stop(session.id, session.tenant)
            found.done.set()

    def sessions(self, tenant: str | None = None) -> list[tuple[Running, CodeSession]]:
        """Every session (of ``tenant``) in every interpreter of this process, live ones first."""
        found = []
        for running in self.running.values():
            for session in running.interpreter.sessions(tenant):
                found.append((running, session))
        found.sort(key=lambda pair: (pair[1].status != "READY", -pair[1].created.timestamp()))
        return found

    def find(self, tenant: str, session_id: str) -> tuple[Running, CodeSession] | None:
        for running, session in self.sessions(tenant):
            if session.id == session_id:
                return running, session
        return None

    def policy(self) -> EgressPolicy:
        """Where PUBLIC sandboxes may connect: the operator's lists, never this process's port."""
        return config_from(self.settings, self.own_port).egress

    egress_log = staticmethod(_egress_logged)

    async def sandbox(self, backend: str, options: Options) -> Sandbox:
        """A sandbox of its own (a sandboxed MCP server's); the caller stops it."""
        made = self._backends.get(backend)
        if made is None:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            made = self._backends[backend] = backend_for(backend, self.root)
        box: Sandbox = await made.start(options)
        return box

    async def invoke(
        self,
        running: Interpreter,
        identifier: str,
        principal: Principal,
        session_id: str,
        tool: str,
        arguments: Mapping[str, Any],
        owner: str | None = None,
    ) -> dict[str, Any]:
        """Run a tool in a session, traced and audited as a call of gateway
        ``code-interpreter/{identifier}`` (content captured with the same redaction and caps as any
        tool call's). For the AgentCore API; a gateway target's calls go through its own chain."""

        async def terminal(call: ToolCall, ctx: CallContext) -> ToolResult:
            result = await running.invoke(session_id, tool, call.arguments, principal.tenant, owner)
            answered.append(result)
            return ToolResult(
                content=tuple(result.get("content", ())),
                structured=result.get("structuredContent"),
                is_error=bool(result.get("isError")),
            )

        answered: list[dict[str, Any]] = []
        gateway = f"code-interpreter/{identifier}"
        handler: CallNext = terminal
        shared = self.shared
        if shared is not None and shared.audit is not None:
            handler = partial(GatewayAudit(principal.tenant, gateway, shared.audit), call_next=handler)
        if shared is not None and shared.observe is not None:
            content, size = shared.observe
            observe = GatewayTelemetry(
                principal.tenant, gateway, lambda _: identifier, capture_content=content, capture_bytes=size
            )
            handler = partial(observe, call_next=handler)
        await handler(
            ToolCall(tool, dict(arguments), tool), CallContext(principal=principal, gateway=gateway)
        )
        return answered[0]


def sandbox_root(settings: Settings) -> Path:
    return (settings.sandbox_dir or settings.data_dir / "sandboxes").resolve()
