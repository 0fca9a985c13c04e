"""The live gateways: configuration compiled to running providers and catalogs.

``Hub.apply`` takes the whole desired configuration of a tenant, opens the
providers of new or changed targets, builds each gateway's catalog, and swaps
it in atomically: a call in flight keeps the catalog it started with. A target
whose config did not change keeps its provider (and its connections). Then
listeners hear which gateways changed, so the fronts can send list_changed.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

from gateway.auth import CredentialsFor
from gateway.capabilities import is_operator
from gateway.config import AGENTCORE_SEARCH_TOOL, SEARCH_TOOL, GatewaySpec, McpTarget, TargetBase
from gateway.core.catalog import Catalog, CatalogSnapshot
from gateway.core.errors import ConfigError, ConfigIssue, ToolNotFound, UpstreamUnavailable
from gateway.core.pipeline import Stage
from gateway.core.provider import ToolProvider
from gateway.core.types import JSON, CallContext, CallNext, Principal, ToolCall, ToolResult
from gateway.core.wrappers import Filtered, Overridden
from gateway.interpreters import CodeInterpreters
from gateway.pins import Pinned, PinScope, PinsFor
from gateway.providers import provider_class
from gateway.runtimes import Runtimes
from gateway.search import (
    CODE_TARGET,
    CodeModeProvider,
    SearchProvider,
    Trimmed,
    Vectors,
    keep_daily,
    listed_always,
)
from gateway.search import TARGET as SEARCH_TARGET
from gateway.settings import Settings
from gateway.stages import (
    AuditLog,
    Chain,
    Counters,
    GatewayPolicy,
    GatewayResilience,
    ResultStore,
    Shared,
    build_chain,
    result_store,
)
from gateway.store import StoreApprovals
from memory import LocalEmbedder, MemoryService

logger = logging.getLogger(__name__)

GatewayKey = tuple[str, str]  # (tenant, gateway name)
SEARCH_NAMES = (SEARCH_TOOL, AGENTCORE_SEARCH_TOOL)
ChangeListener = Callable[[GatewayKey], None]
SessionListener = Callable[[GatewayKey, str], None]  # (one session's list changed)


def build_provider(
    target: TargetBase,
    gateway: str,
    pins: PinScope | None = None,
    egress_allow: tuple[str, ...] | None = None,
    interpreters: CodeInterpreters | None = None,
    runtimes: Runtimes | None = None,
    memory: MemoryService | None = None,
    results: ResultStore | None = None,
) -> ToolProvider:
    """The provider for one target, with pinning, overrides and include/exclude applied.

    ``egress_allow``: a tenant's target (its connections only to public addresses and these).
    ``results``: where a trimmed answer's rest waits for its cursor."""
    kind: str = target.kind  # type: ignore[attr-defined]
    factory: Any = provider_class(kind)  # each provider class takes its own config model
    provider: ToolProvider = factory(target, gateway=gateway)
    provider.egress_allow = egress_allow
    provider.interpreters = interpreters
    provider.runtimes = runtimes
    provider.memory = memory
    if pins is not None and isinstance(target, McpTarget) and target.pin_tools:
        provider = Pinned(provider, pins, approve_new=target.approve_new_tools)
    if target.overrides:
        provider = Overridden(
            provider, {k: v.model_dump(exclude_none=True) for k, v in target.overrides.items()}
        )
    if target.results is not None:  # (after overrides: the names are the target's own)
        provider = Trimmed(provider, target.results, results)
    if target.include or target.exclude:
        provider = Filtered(provider, target.include, target.exclude)
    return provider


def _located(exc: ConfigError, where: str) -> ConfigError:
    return ConfigError(
        [ConfigIssue(i.message, f"{where}.{i.location}" if i.location else where) for i in exc.issues]
    )


@dataclass
class _OpenProvider:
    fingerprint: str
    provider: ToolProvider
    stack: AsyncExitStack


@dataclass
class LiveGateway:
    """One gateway as it is served now."""

    tenant: str
    spec: GatewaySpec
    catalog: Catalog
    handler: CallNext
    chain: Chain | None = None
    found: Callable[[str], Sequence[str]] | None = None  # (a session's found tools: list_found)
    _visible: dict[tuple[Any, ...], list[JSON]] = field(default_factory=dict)
    _names: dict[tuple[Any, ...], set[str]] = field(default_factory=dict)

    def tool_list(self, principal: Principal, session_id: str | None = None) -> list[JSON]:
        """tools/list for one caller: everything, or (with policies) what they could be allowed;
        with progressive search, only the search tool and the pinned tools of those, and (with
        ``list_found``) the tools the session's searches found."""
        shown = self._tool_list(principal)
        found = self.found(session_id) if self.found is not None and session_id else ()
        if not found:
            return shown
        tools, names = self.catalog.snapshot.tools, self.visible_names(principal)
        listed = {t["name"] for t in shown}
        extra = [  # (by name: the order stays while the set does, so pages' cursors hold)
            dict(tools[n].wire())
            for n in sorted(found)
            if n in tools and n not in listed and (names is None or n in names)
        ]
        return [*shown, *extra]

    def _tool_list(self, principal: Principal) -> list[JSON]:
        snap = self.catalog.snapshot
        search = self.spec.search
        if self.policy is None and not search.progressive:
            return snap.tool_list
        key = (id(snap), *(self.policy.caller_key(principal) if self.policy is not None else ()))
        shown = self._visible.get(key)
        if shown is None:
            shown = self.callable_tools(principal)
            if search.progressive:
                shown = [t for t in shown if listed_always(search.pinned, snap, t["name"])]
            if len(self._visible) > 1024:
                self._visible.clear()
            self._visible[key] = shown
        return shown

    def callable_tools(self, principal: Principal) -> list[JSON]:
        """Every tool this caller could be allowed, progressive or not (an A2A agent's skills)."""
        names = self.visible_names(principal)
        return [t for t in self.catalog.snapshot.tool_list if names is None or t["name"] in names]

    def visible_names(self, principal: Principal) -> set[str] | None:
        """The tools some enforced policy could permit this caller (None: every tool)."""
        if self.policy is None:
            return None
        snap = self.catalog.snapshot
        key = ("names", id(snap), *self.policy.caller_key(principal))
        names = self._names.get(key)
        if names is None:
            names = self.policy.visible(principal, [(n, e.provider.id) for n, e in snap.tools.items()])
            if len(self._names) > 1024:
                self._names.clear()
            self._names[key] = names
        return names

    @property
    def snapshot(self) -> CatalogSnapshot:
        return self.catalog.snapshot

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def policy(self) -> GatewayPolicy | None:
        return self.chain.policy if self.chain is not None else None

    @property
    def resilience(self) -> GatewayResilience | None:
        return self.chain.resilience if self.chain is not None else None

    async def call(self, name: str, arguments: dict[str, Any] | None, ctx: CallContext) -> ToolResult:
        """Resolve, validate and run one tool through the pipeline."""
        if name in SEARCH_NAMES and self.spec.search.on and name not in self.catalog.snapshot.tools:
            name = self.spec.search.name  # (the search tool answers to both its names)
        try:
            _, call = self.catalog.resolve(name, arguments)
        except ToolNotFound:
            reason = self.catalog.snapshot.withheld.get(name)
            if reason is None:
                raise
            return ToolResult.error(reason)  # e.g. changed upstream, waiting for approval
        return await self.handler(call, ctx)


class Hub:
    """Holds every tenant's live gateways and keeps them in step with the configuration."""

    def __init__(
        self,
        stages: Sequence[Stage] = (),
        *,
        pins: PinsFor | None = None,
        credentials: CredentialsFor | None = None,
        counters: Counters | None = None,
        results: ResultStore | None = None,
        audit: AuditLog | None = None,
        approvals: StoreApprovals | None = None,
        observe: tuple[bool, int] | None = None,
        egress_allow: Sequence[str] | None = None,
        interpreters: CodeInterpreters | None = None,
        runtimes: Runtimes | None = None,
        memory: MemoryService | None = None,
        vectors: Vectors | None = None,
    ) -> None:
        """``observe``: trace and count calls, recording arguments and results on spans or
        not, capped at a size (``(content, bytes)``); None for a hub that serves nobody.
        ``egress_allow``: beyond public addresses, what tenants' targets may connect to
        (default: ``SWITCHBOARD_EGRESS_ALLOW``). ``vectors``: the tool search's embeddings (default:
        the local model's, kept in memory only)."""
        self.egress_allow = tuple(Settings().egress_allow if egress_allow is None else egress_allow)
        self.interpreters = interpreters  # (what `kind: code_interpreter` targets run code in)
        self.runtimes = runtimes  # (what `kind: runtime` targets serve)
        self.memory = memory  # (what `kind: memory` targets serve)
        self.vectors = vectors
        self._search: dict[GatewayKey, SearchProvider] = {}
        self._code: dict[GatewayKey, CodeModeProvider] = {}
        self.stages = list(stages)
        self.pins = pins
        self.credentials = credentials
        self.shared = Shared(
            counters if counters is not None else Counters(),
            results if results is not None else result_store(None),  # (an empty store is falsy)
            audit,
            approvals,
            observe,
        )
        self._gateways: dict[GatewayKey, LiveGateway] = {}
        self._open: dict[tuple[str, str, str], _OpenProvider] = {}
        self._listeners: list[ChangeListener] = []
        self._session_listeners: list[SessionListener] = []
        # The MCP front's: whether an id names a live 2025-era session of the gateway (None: any).
        self.knows_session: Callable[[GatewayKey, str], bool] | None = None
        self._lock = anyio.Lock()
        self._task_group: TaskGroup | None = None

    def egress_allow_of(self, tenant: str) -> tuple[str, ...] | None:
        """None for the operator's tenant (any address); the allow-list for another's."""
        return None if is_operator(tenant) else self.egress_allow

    def spec_of(self, tenant: str, name: str) -> GatewaySpec | None:
        """The configuration of a gateway being served, or None."""
        live = self.get(tenant, name)
        return live.spec if live is not None else None

    def get(self, tenant: str, name: str) -> LiveGateway | None:
        return self._gateways.get((tenant, name))

    def gateways(self, tenant: str | None = None) -> list[LiveGateway]:
        return [g for (t, _), g in self._gateways.items() if tenant is None or t == tenant]

    def subscribe(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def subscribe_sessions(self, listener: SessionListener) -> None:
        """``listener(key, session_id)``: one session's tools/list changed (``list_found``)."""
        self._session_listeners.append(listener)

    def _found(self, key: GatewayKey, session_id: str) -> None:
        for listener in list(self._session_listeners):
            listener(key, session_id)

    def _knows(self, key: GatewayKey, session_id: str) -> bool:
        return self.knows_session is None or self.knows_session(key, session_id)

    def session_ended(self, session_id: str) -> None:
        """A client's session ended: what its searches found is dropped."""
        for provider in self._search.values():
            provider.forget(session_id)

    def _search_provider(self, key: GatewayKey, spec: GatewaySpec) -> SearchProvider:
        """The gateway's search tool: the one it had while its search settings stay the same (its
        index kept), else a new one."""
        provider = self._search.get(key)
        unlisted = {"list_found": False}  # (list_found alone changed: the index stays)
        if provider is not None and provider.spec.model_copy(update=unlisted) == spec.search.model_copy(
            update=unlisted
        ):
            provider.spec = spec.search
        else:
            if self.vectors is None:
                self.vectors = Vectors(LocalEmbedder())
            provider = SearchProvider(
                spec.search, self.vectors, lambda: self._gateways.get(key), self._task_group
            )
            provider.on_found = functools.partial(self._found, key)
            provider.knows = functools.partial(self._knows, key)
            self._search[key] = provider
        return provider

    def _code_provider(self, key: GatewayKey, spec: GatewaySpec) -> CodeModeProvider:
        """The gateway's code-mode tools (the same provider while its settings stay the same)."""
        provider = self._code.get(key)
        if provider is None or provider.spec != spec.code_mode:
            provider = CodeModeProvider(spec.code_mode, lambda: self._gateways.get(key))
            provider.interpreters = self.interpreters
            self._code[key] = provider
        return provider

    def _notify(self, key: GatewayKey) -> None:
        search = self._search.get(key)
        if search is not None:
            search.catalog_changed()
        for listener in list(self._listeners):
            listener(key)

    async def apply(self, tenant: str, specs: Sequence[GatewaySpec]) -> list[str]:
        """Make the tenant's live gateways match ``specs``; returns the names that changed.

        Raises:
            ConfigError: a target could not be built or its catalog is inconsistent.
                Nothing is swapped in that case; the running gateways stay as they were.
        """
        async with self._lock:
            return await self._apply(tenant, specs)

    async def _apply(self, tenant: str, specs: Sequence[GatewaySpec]) -> list[str]:
        opened: dict[tuple[str, str, str], _OpenProvider] = {}
        fresh: list[_OpenProvider] = []
        new: dict[GatewayKey, LiveGateway] = {}
        try:
            for spec in specs:
                providers: dict[str, ToolProvider] = {}
                for target in spec.targets:
                    key = (tenant, spec.name, target.name)
                    fingerprint = target.model_dump_json()
                    current = self._open.get(key)
                    if current is not None and current.fingerprint == fingerprint:
                        opened[key] = current
                    else:
                        op = await self._open_provider(tenant, spec.name, target, fingerprint)
                        fresh.append(op)
                        opened[key] = op
                    providers[target.name] = opened[key].provider
                if spec.search.on:
                    providers[SEARCH_TARGET] = self._search_provider((tenant, spec.name), spec)
                if spec.code_mode.enabled:
                    providers[CODE_TARGET] = self._code_provider((tenant, spec.name), spec)
                old = self._gateways.get((tenant, spec.name))
                if (
                    old is not None
                    and old.spec == spec
                    and old.catalog.providers.keys() == providers.keys()
                    and all(old.catalog.providers[n] is p for n, p in providers.items())
                ):
                    new[(tenant, spec.name)] = old  # nothing changed: keep its catalog (no re-listing)
                    continue
                catalog = Catalog(
                    providers, prefix=spec.prefix_tools, max_name_length=spec.max_tool_name_length
                )
                if old is not None:
                    catalog.snapshot = old.catalog.snapshot  # a target that is down keeps its tools listed
                try:
                    await catalog.refresh(CallContext(principal=Principal(tenant=tenant), gateway=spec.name))
                except ConfigError as exc:
                    raise ConfigError(
                        [ConfigIssue(i.message, f"gateways.{spec.name}.{i.location}") for i in exc.issues]
                    ) from None
                live = new[(tenant, spec.name)] = self._live(tenant, spec, catalog)
                if spec.search.list_found and spec.search.progressive:
                    live.found = self._search[(tenant, spec.name)].found
        except BaseException:
            with anyio.CancelScope(shield=True):
                for op in fresh:
                    await op.stack.aclose()
            raise
        changed = [
            name
            for (t, name), gw in new.items()
            if (old := self._gateways.get((t, name))) is None
            or old.spec != gw.spec
            or old.catalog.snapshot.fingerprint() != gw.catalog.snapshot.fingerprint()
        ]
        removed = [key for key in self._gateways if key[0] == tenant and key not in new]
        stale = [op for key, op in self._open.items() if key[0] == tenant and opened.get(key) is not op]
        for open_key in [k for k in self._open if k[0] == tenant]:
            del self._open[open_key]
        self._open.update(opened)
        for gw_key in removed:
            del self._gateways[gw_key]
        for gw_key in [k for k in self._search if k[0] == tenant]:
            if gw_key not in new or not new[gw_key].spec.search.on:
                del self._search[gw_key]  # (its gateway is gone, or searches no more)
        for gw_key in [k for k in self._code if k[0] == tenant]:
            if gw_key not in new or not new[gw_key].spec.code_mode.enabled:
                del self._code[gw_key]
        self._gateways.update(new)
        for op in fresh:
            op.provider.subscribe(self._provider_changed_cb(tenant, op))
        for name in changed:
            self._notify((tenant, name))
        for gw_key in removed:
            self._notify(gw_key)
        with anyio.CancelScope(shield=True):
            for op in stale:
                await op.stack.aclose()
        return changed + [k[1] for k in removed]

    async def _open_provider(
        self, tenant: str, gateway: str, target: TargetBase, fingerprint: str
    ) -> _OpenProvider:
        """Open a provider in a task of its own, which also closes it.

        Providers may hold task groups (an MCP client session does); those must be
        entered and left by one task, whichever task later asks for the close.
        """
        where = f"gateways.{gateway}.targets.{target.name}"
        try:
            pins = self.pins(tenant, gateway, target.name) if self.pins is not None else None
            provider = build_provider(
                target,
                gateway,
                pins,
                self.egress_allow_of(tenant),
                self.interpreters,
                self.runtimes,
                self.memory,
                self.shared.results,
            )
        except ConfigError as exc:
            raise _located(exc, where) from None
        if self._task_group is None:
            raise RuntimeError("Hub must be entered (async with Hub()) before it opens targets")
        opened, stop, done = anyio.Event(), anyio.Event(), anyio.Event()
        failure: list[BaseException] = []

        async def run() -> None:
            try:
                async with provider:
                    opened.set()
                    await stop.wait()
            except Exception as exc:  # noqa: BLE001 - boundary: reported to whoever opened the target
                failure.append(exc)
            finally:
                opened.set()
                done.set()

        self._task_group.start_soon(run)
        await opened.wait()
        if failure:
            problem = failure[0]
            if isinstance(problem, ConfigError):
                raise _located(problem, where) from None
            raise ConfigError(
                f"{where}: cannot start the target: {type(problem).__name__}: {problem}"
            ) from None

        async def close() -> None:
            stop.set()
            await done.wait()

        stack = AsyncExitStack()
        stack.push_async_callback(close)
        return _OpenProvider(fingerprint, provider, stack)

    def _live(self, tenant: str, spec: GatewaySpec, catalog: Catalog) -> LiveGateway:
        timeouts = {t.name: t.timeout_seconds for t in spec.targets}

        async def route(call: ToolCall, ctx: CallContext) -> ToolResult:
            entry = catalog.snapshot.tools.get(call.public_name)
            if entry is None:
                raise ToolNotFound(call.public_name)
            target = entry.provider.id
            timeout = min(timeouts.get(target, math.inf), ctx.remaining())
            with anyio.move_on_after(timeout):
                return catalog.finish(entry, await entry.provider.call_tool(call, ctx))
            raise UpstreamUnavailable(
                f"target {target!r} did not finish within {timeout:g}s; "
                "raise its timeout_seconds if that is expected"
            )

        chain = build_chain(
            tenant,
            spec,
            catalog,
            self.shared,
            route,
            egress_allow=self.egress_allow_of(tenant),
            extra=self.stages,
        )
        handler = chain.handler
        bind = self.credentials
        if bind is None:
            return LiveGateway(tenant, spec, catalog, handler, chain)
        bind(tenant, spec, Principal(tenant=tenant))  # reads the providers' secrets now: errors at load

        async def with_credentials(call: ToolCall, ctx: CallContext) -> ToolResult:
            ctx.credentials = bind(tenant, spec, ctx.principal)
            return await handler(call, ctx)

        return LiveGateway(tenant, spec, catalog, with_credentials, chain)

    async def refresh(self, tenant: str, names: Sequence[str] | None = None) -> None:
        """List the tenant's gateways (or ``names``) again; clients hear of what changed."""
        for gw in self.gateways(tenant):
            if names is None or gw.name in names:
                await self._refresh(gw)

    def _provider_changed_cb(self, tenant: str, op: _OpenProvider) -> Callable[[], None]:
        def changed() -> None:
            for (t, _), gw in self._gateways.items():
                if t == tenant and op.provider in gw.catalog.providers.values():
                    self._refresh_later(gw)

        return changed

    async def _refresh(self, gw: LiveGateway) -> None:
        before = gw.catalog.snapshot.fingerprint()
        try:
            await gw.catalog.refresh(CallContext(principal=Principal(tenant=gw.tenant), gateway=gw.name))
        except ConfigError as exc:
            logger.error("gateway %r: a target's new tool list was refused: %s", gw.name, exc)
            return
        if gw.catalog.snapshot.fingerprint() != before:
            self._notify((gw.tenant, gw.name))

    def _refresh_later(self, gw: LiveGateway) -> None:
        if self._task_group is not None:
            self._task_group.start_soon(self._refresh, gw)

    async def __aenter__(self) -> Self:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        if self.vectors is not None and self.vectors.path is not None:
            self._task_group.start_soon(keep_daily, self.vectors, self.live_vector_keys)
        return self

    def live_vector_keys(self) -> set[str]:
        """The texts whose vectors this process's search tools use now (see Vectors.keep)."""
        return set().union(*(provider.index.live_keys() for provider in self._search.values()))

    async def __aexit__(self, *exc_info: Any) -> None:
        """Close every provider."""
        async with self._lock:
            with anyio.CancelScope(shield=True):
                for op in self._open.values():
                    await op.stack.aclose()
            self._open.clear()
            self._gateways.clear()
        tg, self._task_group = self._task_group, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
