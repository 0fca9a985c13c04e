"""The parts of a running gateway process, made once at start-up, in order, and closed in reverse.

``open_services`` opens the store, the vault and the token broker, the writers of the call audit
and of spans, the hub of live gateways (with the stages' shared parts), the inbound
authenticator and the MCP front; it applies ``serve --config FILE`` to the store first (as
``switchboard apply -f`` would) and loads every tenant's gateways. What it yields, ``Services``,
is handed to the fronts, the admin API and the UI (``gateway.app``); none of them makes a part
of its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import httpx2

from gateway.a2a import LazyA2a
from gateway.auth import AccessKeys, Authenticator, Revocations, consent_user, credentials_for, open_vault
from gateway.config import load_file, to_store
from gateway.egress import Reach
from gateway.hub import Hub
from gateway.interpreters import CodeInterpreters
from gateway.mcp import McpFront, SessionLimits
from gateway.memories import embedder, open_memory
from gateway.pins import store_pins
from gateway.runtimes import Runtimes, apply_runtimes
from gateway.search import Vectors
from gateway.serving import Forwarder, session_owner
from gateway.settings import Settings
from gateway.stages import AuditLog, Counters, RequestRate, result_store, shared_counters
from gateway.store import Store, StoreA2a, StoreApprovals, StoreCalls, StoreTraces
from gateway.system import CALLBACK_PATH, DEFAULT_TENANT, Switchboard, compile_check, state_key
from gateway.telemetry import Telemetry
from identity.api import IdentityServices, WorkloadTokens
from identity.outbound import Broker, redis_locks
from identity.vault import Vault

if TYPE_CHECKING:
    from gateway.a2a._front import A2aFront

logger = logging.getLogger(__name__)

OnReady = Callable[[Switchboard, str | None], None]


@dataclass(frozen=True, slots=True)
class Services:
    """What the fronts, the admin API and the UI of one process share."""

    settings: Settings
    system: Switchboard  # the store, the hub of live gateways, the vault and broker, admin keys
    front: McpFront
    a2a: LazyA2a
    auth: Authenticator
    identity: IdentityServices
    telemetry: Telemetry
    traces: StoreTraces
    aws_keys: AccessKeys  # what AgentCore's clients sign with
    aws_rate: RequestRate  # how many requests an access key may make


@dataclass(frozen=True, slots=True)
class Edge:
    """Where this process is reached and whom it answers: the ``Host`` and ``Origin`` values it
    accepts (DNS-rebinding protection), its base URL, and, as one of several workers, its run
    directory (gateway.serving)."""

    allowed_hosts: Sequence[str]
    allowed_origins: Sequence[str]
    base_url: str
    worker_run_dir: Path | None = None


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, edge: Edge, *, config_path: str | Path | None = None, on_ready: OnReady | None = None
) -> AsyncIterator[Services]:
    """Everything opened, the configuration loaded; closed in reverse when the block ends."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = await Store.open(settings.resolved_database_url())
    stack = contextlib.AsyncExitStack()
    try:
        vault = await open_vault(settings, store)
        broker = _broker(settings, vault, edge.base_url, stack)
        stack.push_async_callback(broker.aclose)
        counters = Counters(shared_counters(settings.redis_url))
        stack.push_async_callback(counters.close)
        results = result_store(settings.redis_url, settings.cache_max_entries, settings.cache_max_bytes)
        stack.push_async_callback(results.close)
        calls = StoreCalls(store)
        stack.push_async_callback(calls.aclose)  # (after the writers below have ended)
        audit = AuditLog(
            calls.write, spill=settings.data_dir / "audit-spill.jsonl", unwritable=settings.audit_unwritable
        )
        if not settings.audit:
            logger.warning("SWITCHBOARD_AUDIT=false: tool calls are not recorded in the call audit")
        traces = StoreTraces(store)
        stack.push_async_callback(traces.aclose)  # (after the span writer below has ended)
        hub: Hub | None = None
        telemetry = Telemetry(
            tracing=settings.tracing,
            store=(traces.write, traces.purge) if settings.trace_store else None,
            retention_seconds=settings.trace_retention_hours * 3600,
            health=lambda: target_health(hub),
        )
        # The writers of audit records and spans: the group ends once they have flushed.
        async with anyio.create_task_group() as writers:
            writers.start_soon(audit.run)
            if telemetry.sink is not None:
                writers.start_soon(telemetry.sink.run)
            telemetry.start()
            try:
                interpreters = CodeInterpreters(settings, urlsplit(edge.base_url).port)
                runtimes = Runtimes(settings)
                embeddings = embedder(settings)  # (memory's records and the tool search's tools)
                memory = await open_memory(settings, store, embeddings)
                async with (
                    interpreters.open(),
                    runtimes.open(),
                    Hub(
                        interpreters=interpreters,
                        runtimes=runtimes,
                        memory=memory,
                        vectors=Vectors(embeddings, settings.data_dir / "tool-vectors.db"),
                        pins=store_pins(store),
                        credentials=credentials_for(broker),
                        counters=counters,
                        results=results,
                        audit=audit if settings.audit else None,
                        approvals=StoreApprovals(store),
                        observe=(settings.trace_content, settings.trace_content_bytes),
                        egress_allow=settings.egress_allow,
                    ) as hub,
                ):
                    system = Switchboard(settings, store, hub)
                    system.vault, system.broker = vault, broker
                    system.interpreters = interpreters
                    system.runtimes = runtimes
                    system.memory = memory
                    runtimes.audit = audit if settings.audit else None
                    runtimes.vault = vault
                    interpreters.shared = hub.shared
                    auth = system.authenticator = Authenticator(
                        store,
                        settings.public_url,
                        Revocations(settings.redis_url),
                        egress_allow=settings.egress_allow,
                    )
                    stack.push_async_callback(auth.aclose)
                    system.aws_keys = aws_keys = AccessKeys(store, vault, auth.revocations)
                    runtimes.aws_keys = aws_keys
                    runtimes.tokens = tokens = WorkloadTokens(state_key(settings.data_dir))
                    identity = IdentityServices(
                        broker,
                        tokens,
                        system.admin_tenant,
                        system.providers_of,
                        consent_user(hub.spec_of, lambda: auth),
                    )
                    if config_path is not None:
                        await _apply_file(config_path, hub, store, runtimes)
                    await system.reload()
                    admin_key = await system.ensure_admin_key()
                    front = _front(settings, edge, hub, stack)
                    a2a = LazyA2a(lambda: _a2a(settings, edge, hub, store, auth, broker))
                    aws_rate = RequestRate(counters, settings.agentcore_rate, "agentcore")
                    services = Services(
                        settings, system, front, a2a, auth, identity, telemetry, traces, aws_keys, aws_rate
                    )
                    async with front, a2a, anyio.create_task_group() as tg:
                        tg.start_soon(system.watch)
                        tg.start_soon(memory.run)
                        if on_ready is not None:
                            on_ready(system, admin_key)
                        yield services
                        tg.cancel_scope.cancel()
            finally:
                telemetry.stop()  # stop recording and end the writers' queues: they write what is queued
                if telemetry.sink is not None:
                    telemetry.sink.close()
                audit.close()
    finally:
        try:
            with anyio.CancelScope(shield=True):
                await stack.aclose()
        finally:
            await store.close()


def _broker(settings: Settings, vault: Vault, base_url: str, stack: contextlib.AsyncExitStack) -> Broker:
    """The outbound token broker: consent callbacks at this process's URL, locks shared through
    Redis when there is one, tenants' token endpoints reached only at public addresses (or what
    the operator allows)."""
    locks, close_locks = redis_locks(settings.redis_url) if settings.redis_url else (None, None)
    if close_locks is not None:
        stack.push_async_callback(close_locks)
    return Broker(
        vault,
        state_key(settings.data_dir),
        f"{base_url}{CALLBACK_PATH}",
        shared_locks=locks,
        tenant_http=httpx2.AsyncClient(
            timeout=httpx2.Timeout(15.0), transport=Reach(tuple(settings.egress_allow)).transport()
        ),
        operator_tenant=DEFAULT_TENANT,
    )


async def _apply_file(config_path: str | Path, hub: Hub, store: Store, runtimes: Runtimes) -> None:
    """``serve --config FILE``: checked in the hub that will serve it (the reload then takes its
    open targets over instead of building them again), then stored as the operator's; its
    runtimes deployed where their folders changed."""
    document = load_file(config_path)
    specs = list(document.gateways)
    for warning in await compile_check(DEFAULT_TENANT, specs, hub, str(config_path)):
        logger.warning("%s: %s", config_path, warning)
    await store.apply(DEFAULT_TENANT, [to_store(g) for g in specs])
    deployments = runtimes.deployments(DEFAULT_TENANT)
    for line in await apply_runtimes(
        document.runtimes, deployments, Path(config_path).parent, str(config_path)
    ):
        logger.info("%s: %s", config_path, line)


def _front(settings: Settings, edge: Edge, hub: Hub, stack: contextlib.AsyncExitStack) -> McpFront:
    forwarder = Forwarder(settings.max_request_bytes) if edge.worker_run_dir is not None else None
    if forwarder is not None:
        stack.push_async_callback(forwarder.aclose)
    return McpFront(
        hub,
        allowed_hosts=list(edge.allowed_hosts),
        allowed_origins=list(edge.allowed_origins),
        max_request_bytes=settings.max_request_bytes,
        state_keys=[state_key(settings.data_dir)],
        session_owner=session_owner(edge.worker_run_dir) if edge.worker_run_dir else None,
        forward=forwarder,
        session_limits=SessionLimits(
            max_sessions=settings.max_sessions,
            per_caller=settings.sessions_per_caller,
            idle_seconds=settings.session_idle_seconds,
            handshake_seconds=settings.session_handshake_seconds,
        ),
    )


def _a2a(
    settings: Settings, edge: Edge, hub: Hub, store: Store, auth: Authenticator, broker: Broker
) -> A2aFront:
    """The A2A front (imported here, on the first A2A request: see gateway.a2a)."""
    from gateway.a2a._front import A2aFront
    from gateway.a2a._keys import push_key

    return A2aFront(
        hub,
        StoreA2a(store),
        auth.principal,
        auth.challenge,
        edge.base_url,
        broker.seal,
        broker.unseal,
        tuple(settings.egress_allow),
        push_key(settings.data_dir),
        allowed_hosts=list(edge.allowed_hosts),
        allowed_origins=list(edge.allowed_origins),
        max_request_bytes=settings.max_request_bytes,
    )


def target_health(hub: Hub | None) -> list[tuple[str, str, str, bool]]:
    """Each target's reachability: its connection, and its circuit breaker when it has one."""
    up = []
    for gw in hub.gateways() if hub is not None else []:
        for name, provider in gw.catalog.providers.items():
            breaker = gw.resilience.breakers.get(name) if gw.resilience is not None else None
            healthy = provider.healthy() and (breaker is None or breaker.opened_at is None)
            up.append((gw.tenant, gw.name, name, healthy))
    return up
