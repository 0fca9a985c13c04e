"""Tool pinning: a federated tool runs only as it was when an administrator approved it.

An MCP server can change a tool's description or schema at any time, and a
changed description is a prompt the model reads (a "rug pull"). So the gateway
records a digest of every tool definition it approves, per target, in the
store. When the upstream later lists a definition that no longer matches, that
tool is hidden from tools/list and refused on tools/call until an administrator
approves the new definition (admin API or ``switchboard pins``), which shows the
difference first. New tools from an approved upstream wait for approval too,
unless the target sets ``approve_new_tools: true``.

The first time a target is listed, nothing is pinned yet: adding the target is
the administrator's approval of what it serves at that moment (trust on first
use), and those definitions are recorded.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson

from gateway.core.errors import ToolExecutionError
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec
from gateway.core.wrappers import WrapperProvider
from gateway.store import Store


def definition(spec: ToolSpec) -> JSON:
    """What is pinned of a tool: everything a model or a client reads."""
    out: JSON = {"name": spec.name, "inputSchema": dict(spec.input_schema)}
    for key, value in (
        ("title", spec.title),
        ("description", spec.description),
        ("outputSchema", spec.output_schema),
        ("annotations", spec.annotations),
    ):
        if value is not None:
            out[key] = value
    if spec.task_support != "forbidden":
        # Only when set, so the digests of every tool pinned before the field existed still match.
        out["execution"] = {"taskSupport": spec.task_support}
    return out


def digest(defn: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(defn, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class Pin:
    """An approved tool definition."""

    digest: str
    definition: JSON


class PinScope(Protocol):
    """The store's pins of one target (tenant, gateway and target are bound)."""

    async def approved(self) -> dict[str, Pin]: ...

    async def approve(self, definitions: Mapping[str, JSON]) -> None: ...


@dataclass(frozen=True, slots=True)
class StorePins:
    """A target's pins in the store."""

    store: Store
    tenant: str
    gateway: str
    target: str

    async def approved(self) -> dict[str, Pin]:
        rows = await self.store.list_pins(self.tenant, self.gateway, self.target)
        return {name: Pin(row.digest, row.definition) for name, row in rows.items()}

    async def approve(self, definitions: Mapping[str, JSON]) -> None:
        await self.store.approve_pins(
            self.tenant, self.gateway, self.target, {n: (digest(d), dict(d)) for n, d in definitions.items()}
        )


PinsFor = Callable[[str, str, str], PinScope]
"""(tenant, gateway, target) -> that target's pins."""


def store_pins(store: Store) -> PinsFor:
    """Pins kept in ``store``."""
    return lambda tenant, gateway, target: StorePins(store, tenant, gateway, target)


class ToolChanged(ToolExecutionError):
    """A pinned tool whose upstream definition is no longer the approved one."""


class Pinned(WrapperProvider):
    """Shows and runs only the tools whose definitions match their approved pins."""

    kind: ClassVar[str] = "pinned"

    def __init__(self, inner: Any, pins: PinScope, *, approve_new: bool = False) -> None:
        super().__init__(inner)
        self.pins = pins
        self.approve_new = approve_new
        self.seen: dict[str, JSON] = {}  # the upstream's definitions at the last listing
        self.allowed: frozenset[str] = frozenset()

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        tools = await self.inner.list_tools(ctx)
        seen = {t.name: definition(t) for t in tools}
        approved = await self.pins.approved()
        fresh = {n: d for n, d in seen.items() if n not in approved}
        if fresh and (not approved or self.approve_new):
            await self.pins.approve(fresh)
            approved = await self.pins.approved()
        self.seen = seen
        self.allowed = frozenset(
            n for n, d in seen.items() if (pin := approved.get(n)) is not None and pin.digest == digest(d)
        )
        return [t for t in tools if t.name in self.allowed]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        if call.name not in self.allowed:
            raise ToolChanged(self._why(call.name))
        return await self.inner.call_tool(call, ctx)

    def _why(self, name: str) -> str:
        return (
            f"tool {name!r} of target {self.id!r} changed upstream since it was approved (or is new), so the "
            "gateway will not run it until an administrator reviews and approves it "
            f"(`switchboard pins GATEWAY {self.id}`, or the admin API: "
            f"/admin/v1/gateways/GATEWAY/targets/{self.id}/pins)"
        )

    def withheld(self) -> Mapping[str, str]:
        return {**self.inner.withheld(), **{n: self._why(n) for n in self.seen if n not in self.allowed}}

    def problems(self) -> Sequence[str]:
        waiting = sorted(set(self.seen) - self.allowed)
        extra = [f"tools waiting for approval: {', '.join(waiting)}"] if waiting else []
        return [*self.inner.problems(), *extra]


def review(approved: Mapping[str, Pin], current: Mapping[str, JSON]) -> list[JSON]:
    """Each tool's status (approved, changed, new, gone) with a diff of what changed."""
    out: list[JSON] = []
    for name in sorted(set(approved) | set(current)):
        pin, now = approved.get(name), current.get(name)
        entry: JSON = {"tool": name}
        if pin is None:
            entry["status"] = "new"
        elif now is None:
            entry["status"] = "gone"
        elif pin.digest == digest(now):
            entry["status"] = "approved"
        else:
            entry["status"] = "changed"
            entry["diff"] = list(
                difflib.unified_diff(
                    _lines(pin.definition), _lines(now), "approved", "upstream now", lineterm=""
                )
            )
        if now is not None and entry["status"] != "approved":
            entry["definition"] = now
        out.append(entry)
    return out


def _lines(defn: Mapping[str, Any]) -> list[str]:
    return orjson.dumps(defn, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode().splitlines()


def pinned_of(provider: Any) -> Pinned | None:
    """The Pinned layer of a (wrapped) provider, if it has one."""
    while provider is not None:
        if isinstance(provider, Pinned):
            return provider
        provider = getattr(provider, "inner", None)
    return None


class NotPinned(LookupError):
    """The target does not exist or does not pin its tools."""


def _pinned(hub: Any, tenant: str, gateway: str, target: str) -> Pinned:
    live = hub.get(tenant, gateway)
    if live is None:
        raise NotPinned(f"no gateway named {gateway!r}")
    provider = live.catalog.providers.get(target)
    if provider is None:
        raise NotPinned(f"no target {target!r} in gateway {gateway!r}")
    pinned = pinned_of(provider)
    if pinned is None:
        raise NotPinned(
            f"target {gateway}/{target} does not pin its tools (only `kind: mcp` targets do, "
            "unless they set `pin_tools: false`)"
        )
    return pinned


async def target_review(hub: Any, tenant: str, gateway: str, target: str) -> list[JSON]:
    """What an administrator reviews: each tool of the target, its status, and the diff."""
    pinned = _pinned(hub, tenant, gateway, target)
    return review(await pinned.pins.approved(), pinned.seen)


async def approve_tools(
    hub: Any, tenant: str, gateway: str, target: str, tools: Sequence[str] | None = None
) -> list[str]:
    """Approve the upstream's current definitions of ``tools`` (default: every new or changed one).

    Raises:
        NotPinned: no such target, or it does not pin.
        KeyError: a named tool is not served by the upstream now.
    """
    pinned = _pinned(hub, tenant, gateway, target)
    pending = [
        e["tool"]
        for e in review(await pinned.pins.approved(), pinned.seen)
        if e["status"] in ("new", "changed")
    ]
    chosen = list(tools) if tools is not None else pending  # [] approves nothing
    unknown = [t for t in chosen if t not in pinned.seen]
    if unknown:
        raise KeyError(
            f"{gateway}/{target} does not serve {', '.join(map(repr, unknown))} now; "
            f"waiting for approval: {', '.join(pending) or 'nothing'}"
        )
    if chosen:
        await pinned.pins.approve({t: pinned.seen[t] for t in chosen})
    return chosen
