"""The one plug point: a ToolProvider serves the tools (and optionally the
resources and prompts) of one target.

Providers are async context managers: ``__aenter__`` opens clients, pools or
processes; ``__aexit__`` closes them. The catalog namespaces what they expose.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

from gateway.core.errors import RequestError
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """A concrete resource (``resources/list``)."""

    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    annotations: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ResourceTemplateSpec:
    """A parameterised resource (``resources/templates/list``), RFC 6570 URI template."""

    uri_template: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """A prompt (``prompts/list``); ``arguments`` in MCP wire form."""

    name: str
    title: str | None = None
    description: str | None = None
    arguments: Sequence[JSON] = field(default_factory=tuple)


ChangeListener = Callable[[], None]


class ToolProvider(ABC):
    """Serves one target's tools. Subclasses set ``kind`` and implement two methods.

    Resources, prompts and completions are optional: the defaults expose none.
    A provider whose lists can change on their own calls ``self.changed()``; the
    catalog listens and tells clients (list_changed).
    """

    kind: ClassVar[str]
    # False for the gateway's own tools (its tool search): published under their own names,
    # never ``{target}___``-prefixed, whatever the gateway's prefix setting.
    namespaced: ClassVar[bool] = True
    egress_allow: tuple[str, ...] | None = None
    """Set by the hub before the provider is entered: None for the operator's targets (they
    connect where the configuration says); for a tenant's, the networks and hosts beyond
    public addresses its connections may reach (the operator's allow-list). Providers that
    connect anywhere check every connection's address against it (gateway.egress.Reach)."""
    interpreters: Any = None
    """Set by the hub: the process's code interpreters (``gateway.interpreters.CodeInterpreters``),
    for the targets that run code in them; None where the process runs none."""
    runtimes: Any = None
    """Set by the hub: the process's hosted agents (``gateway.runtimes.Runtimes``), for the
    targets that serve them; None where the process hosts none (a hub that only checks)."""
    memory: Any = None
    """Set by the hub: the process's memory service (``memory.MemoryService``), for ``kind:
    memory`` targets; None where the process serves no memory (a hub that only checks)."""

    def __init__(self, id: str) -> None:
        self.id = id
        self._listeners: list[ChangeListener] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    @abstractmethod
    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        """The tools this target serves, by provider-local name."""

    @abstractmethod
    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        """Run one tool. Raise ToolExecutionError (or a subclass) for failures the model should see."""

    async def list_resources(self, ctx: CallContext) -> Sequence[ResourceSpec]:
        return ()

    async def list_resource_templates(self, ctx: CallContext) -> Sequence[ResourceTemplateSpec]:
        return ()

    async def read_resource(self, uri: str, ctx: CallContext) -> Sequence[JSON]:
        """Resource contents in wire form (``{"uri", "mimeType", "text"|"blob"}``)."""
        raise RequestError(f"Resource {uri!r} not found.")

    async def list_prompts(self, ctx: CallContext) -> Sequence[PromptSpec]:
        return ()

    async def get_prompt(self, name: str, arguments: Mapping[str, str], ctx: CallContext) -> JSON:
        """``prompts/get`` result in wire form (``{"description"?, "messages": [...]}``)."""
        raise RequestError(f"Unknown prompt {name!r}: call prompts/list for the names this gateway serves.")

    async def complete(self, ref: JSON, argument: JSON, context: JSON | None, ctx: CallContext) -> JSON:
        """``completion/complete`` result's ``completion`` object."""
        return {"values": [], "hasMore": False}

    def problems(self) -> Sequence[str]:
        """What this target could not serve (e.g. operations skipped), for operators."""
        return ()

    def withheld(self) -> Mapping[str, str]:
        """Tools the target has but does not list now (local name: why), so a call can say why."""
        return {}

    def healthy(self) -> bool:
        """False while the target cannot be reached (a lost connection), for health metrics."""
        return True

    def subscribe(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def changed(self) -> None:
        """Tell listeners that this provider's tools, resources or prompts changed."""
        for listener in list(self._listeners):
            listener()
