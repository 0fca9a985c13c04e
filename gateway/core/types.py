"""The call contract: what a tool is, a call to it, its result, and the call's context.

These are plain frozen dataclasses in MCP's wire vocabulary (``inputSchema``
dicts, content blocks as dicts) so that providers and fronts share one shape
without pydantic round trips on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio

JSON = dict[str, Any]
TaskSupport = Literal["forbidden", "optional", "required"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as a provider exposes it (before the catalog names it).

    Attributes:
        name: The provider-local name; the catalog adds the ``{target}___`` namespace.
        description: What the tool does, for the model.
        input_schema: JSON Schema (2020-12) of the arguments object.
        output_schema: JSON Schema of ``structuredContent`` when the tool has one.
        title: A human-friendly display name.
        annotations: MCP tool annotations (``readOnlyHint`` ...); hints for the model only, never
            trusted: caching and retries follow what the configuration itself declares
            (``gateway.stages.cache.declared_annotations``), never what a provider reports here.
        meta: Extra ``_meta`` to publish with the tool.
        task_support: Whether a call may run as a task (the MCP tasks extension of 2026-07-28):
            ``"forbidden"`` never; ``"optional"`` when the client declared the extension (else it
            runs as an ordinary call); ``"required"`` only as a task (a client without the
            extension is refused). Published to 2025-era clients as ``execution.taskSupport``.
        ask_before_task: The tool asks its questions before it becomes a task: they are answered
            through ``input_required`` rounds of the ``tools/call`` itself, and the task begins
            when the tool calls ``ctx.begin_task()``. Otherwise a task-capable call is a task from
            its start and its questions wait in the task (``input_required``) until answered.
    """

    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    output_schema: Mapping[str, Any] | None = None
    title: str | None = None
    annotations: Mapping[str, Any] | None = None
    meta: Mapping[str, Any] | None = None
    task_support: TaskSupport = "forbidden"
    ask_before_task: bool = False


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call produced, in MCP terms.

    Attributes:
        content: MCP content blocks (``{"type": "text", "text": ...}``, images, resources...).
        structured: ``structuredContent`` when the tool returns structured data.
        is_error: True for a tool failure the model should see (not a protocol error).
    """

    content: Sequence[JSON] = ()
    structured: JSON | None = None
    is_error: bool = False

    @classmethod
    def text(cls, text: str, *, is_error: bool = False) -> ToolResult:
        return cls(content=({"type": "text", "text": text},), is_error=is_error)

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls.text(message, is_error=True)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One invocation: the provider-local tool name and validated arguments.

    ``public_name`` is the name the client used (``target___tool``).
    """

    name: str
    arguments: JSON
    public_name: str = ""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. Built by inbound auth; anonymous on an open local gateway."""

    tenant: str = "default"
    subject: str = "anonymous"
    client_id: str | None = None
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)
    token: str | None = field(default=None, repr=False, compare=False)
    """The caller's own bearer token: only ever sent back to its issuer (token exchange)."""


ANONYMOUS = Principal()


class ClientChannel(Protocol):
    """What a provider may ask of the client that made the call, in either protocol era.

    The front implements it; providers never see the wire. Questions
    (``ask`` and its shorthands) are MCP client requests: ``elicitation/create``,
    ``sampling/createMessage``, ``roots/list``. In the 2026-07-28 era a
    question ends the round (the client answers and retries the call) and the
    provider runs again from the start with the answers known, so code reads
    the same in both eras. Keys name the questions within one call.
    """

    def supports(self, capability: str) -> bool:
        """Whether the client declared ``capability`` (``sampling``, ``elicitation``, ``roots``;
        dotted for a sub-capability: ``elicitation.url``)."""
        ...

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress (dropped when the client did not ask for progress)."""
        ...

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """Send a log message to the client (when it opted in)."""
        ...

    async def ask(self, requests: Mapping[str, JSON]) -> dict[str, JSON]:
        """Ask the client several questions at once; returns the answers by key."""
        ...

    async def elicit(self, message: str, requested_schema: JSON, *, key: str | None = None) -> JSON:
        """Ask the user for input; returns ``{"action": ..., "content": {...}}``."""
        ...

    async def sample(self, request: JSON, *, key: str | None = None) -> JSON:
        """Ask the client's model for a completion (``sampling/createMessage`` params)."""
        ...

    async def list_roots(self, *, key: str | None = None) -> JSON:
        """Ask the client for its roots (``roots/list``)."""
        ...


CAPABILITY_OF = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}


class NoChannel:
    """A channel for calls with no client behind them (CLI, tests): progress and logs are dropped,
    questions refused (MissingClientCapability); a front whose clients hear only some of it
    (progress, say) builds on it."""

    def supports(self, capability: str) -> bool:
        return False

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        return None

    async def ask(self, requests: Mapping[str, JSON]) -> dict[str, JSON]:
        from gateway.core.errors import MissingClientCapability

        method = next(iter(requests.values()), {}).get("method", "")
        raise MissingClientCapability(CAPABILITY_OF.get(method) or str(method))

    async def elicit(self, message: str, requested_schema: JSON, *, key: str | None = None) -> JSON:
        return (await self.ask({"q": {"method": "elicitation/create"}}))["q"]

    async def sample(self, request: JSON, *, key: str | None = None) -> JSON:
        return (await self.ask({"q": {"method": "sampling/createMessage"}}))["q"]

    async def list_roots(self, *, key: str | None = None) -> JSON:
        return (await self.ask({"q": {"method": "roots/list"}}))["q"]


NO_CHANNEL: ClientChannel = NoChannel()


class CredentialSource(Protocol):
    """The caller's upstream credentials, by credential provider (identity behind it)."""

    async def secret(self, provider: str, *, tool: str | None = None, stale: str | None = None) -> str:
        """The secret to send; ``stale``: one the upstream just refused (401), to replace.

        Raises:
            CredentialRequired: the caller must consent first (carries the URL).
            ToolExecutionError: the provider is misconfigured or refused.
        """
        ...


class _NoCredentials:
    async def secret(self, provider: str, *, tool: str | None = None, stale: str | None = None) -> str:
        from gateway.core.errors import ToolExecutionError

        raise ToolExecutionError(f"credential provider {provider!r} is not available in this context")


NO_CREDENTIALS: CredentialSource = _NoCredentials()


@dataclass(slots=True)
class CallContext:
    """Everything about a call that is not its arguments.

    Attributes:
        principal: The verified caller.
        gateway: The gateway name the call came through.
        session_id: The MCP session (2025 era) or None (stateless era).
        deadline: Absolute ``anyio.current_time()`` by which the call must finish.
        channel: Back-channel to the calling client.
        request_id: The JSON-RPC id, for logs and audit.
        meta: The request's ``_meta`` as received.
        credentials: The caller's upstream credentials (set by the gateway per call).
        approval: The recorded approval this call ran under, if it needed one.
        approval_required: A policy that permitted the call asks for a person's approval.
        policy_log: What the log-only policies would have decided, when it differs from the
            decision (``("deny" | "allow", why)``): the audit and the trace record it.
        headers: Extra headers for the upstream request (set by request interceptors).
        task_hook: What ``begin_task`` calls: set by a front that can turn this call into a task
            (the MCP front, ADR 0038); None elsewhere.
    """

    principal: Principal = ANONYMOUS
    gateway: str = "default"
    session_id: str | None = None
    deadline: float = math.inf
    channel: ClientChannel = NO_CHANNEL
    request_id: str | int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    credentials: CredentialSource = NO_CREDENTIALS
    approval: str | None = None
    approval_required: bool = False
    policy_log: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    task_hook: Callable[[], Awaitable[None]] | None = None

    async def begin_task(self) -> None:
        """The rest of this call may run as a task: from here on the client holds a task handle
        instead of waiting (a tool with ``ask_before_task`` calls it once its questions are
        answered). Does nothing when the call is not one that becomes a task."""
        if self.task_hook is not None:
            await self.task_hook()

    @property
    def tenant(self) -> str:
        return self.principal.tenant

    def remaining(self) -> float:
        """Seconds left before the deadline (``inf`` when there is none)."""
        return self.deadline - anyio.current_time()


CallNext = Callable[[ToolCall, CallContext], Awaitable[ToolResult]]
