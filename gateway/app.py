"""Wiring: the store, the hub of live gateways, the MCP front and the admin API in one ASGI app.

The store is the source of truth. ``serve --config FILE`` applies FILE to the
store first (as ``switchboard apply -f`` would); the admin API writes to the
store. Either way the change reaches the hub: at once in this process, and in
other processes or replicas when they see the store's revision move (polled
every ``config_poll_seconds``). A change that cannot be compiled is refused
before it is stored, so a bad edit never takes a running gateway down.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import httpx2
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from gateway.audit import AuditLog
from gateway.auth import (
    METADATA_PREFIX,
    Authenticator,
    Revocations,
    consent_user,
    credentials_for,
    open_vault,
)
from gateway.cache import result_store
from gateway.config import Document, to_store
from gateway.egress import Reach
from gateway.hub import Hub
from gateway.mcp import McpFront, SessionLimits
from gateway.mcp.forms import PRINCIPAL_KEY
from gateway.pins import store_pins
from gateway.ratelimit import Counters, shared_counters
from gateway.serving import Forwarder, forwarded_client, session_owner
from gateway.settings import Settings
from gateway.store import Store, StoreApprovals, StoreCalls, StoreTraces
from gateway.system import (
    CALLBACK_PATH,
    DEFAULT_TENANT,
    Switchboard,
    compile_check,
    mcp_endpoint,
    state_key,
)
from gateway.telemetry import HttpSpans, Telemetry
from gateway.ui import ui_routes
from identity.api import IdentityServices, WorkloadTokens, identity_routes
from identity.inbound import Refused
from identity.outbound import Broker, redis_locks

logger = logging.getLogger(__name__)


class _Edge:
    """The outermost ASGI app: MCP endpoints go straight to the front (the hot path, no
    router or middleware stack in between); everything else to the Starlette app."""

    def __init__(self, app: Starlette, holder: dict[str, Any]) -> None:
        self.state = app.state
        self.holder = holder
        self.app = HttpSpans(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            forwarded_client(scope, self.holder["own_socket"])
            found = mcp_endpoint(scope["path"])
            if found is not None:
                tenant, name = found
                live = self.holder["system"].hub.get(tenant, name)
                if live is not None:  # (an unknown gateway: the front answers 404)
                    auth: Authenticator = self.holder["auth"]
                    try:
                        principal = await auth.principal(tenant, name, live.spec.auth, scope)
                    except Refused as exc:
                        await auth.challenge(exc, scope, send)
                        return
                    scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
                await self.holder["front"].handle((tenant, name), scope, receive, send)
                return
        await self.app(scope, receive, send)


_FRONTS: list[McpFront] = []


def close_listen_streams() -> None:
    """End the subscriptions/listen streams of every front in this process (they would hold a
    graceful shutdown open until its timeout)."""
    for front in list(_FRONTS):
        front.close_streams()


def create_app(
    settings: Settings,
    *,
    config_path: str | Path | None = None,
    on_ready: Any = None,
    base_url: str | None = None,
    worker_run_dir: Path | None = None,
    own_socket: str | None = None,
) -> _Edge:
    """The whole gateway as one ASGI app; everything opens in its lifespan.

    ``worker_run_dir`` and ``own_socket``: this app is one of several workers
    (gateway.serving), which pass each other requests for their sessions.
    """
    holder: dict[str, Any] = {"own_socket": own_socket}
    # DNS-rebinding protection: only loopback names unless the operator names more
    # (SWITCHBOARD_ALLOWED_HOSTS / _ORIGINS, or the host of SWITCHBOARD_PUBLIC_URL).
    allowed_hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *settings.allowed_hosts]
    allowed_origins = [
        "http://127.0.0.1:*",
        "http://localhost:*",
        "http://[::1]:*",
        *settings.allowed_origins,
    ]
    if settings.public_url:
        public = urlsplit(settings.public_url)
        allowed_hosts += [public.netloc, f"{public.hostname}:*"]
        allowed_origins.append(f"{public.scheme}://{public.netloc}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = await Store.open(settings.resolved_database_url())
        stack = contextlib.AsyncExitStack()
        try:
            vault = await open_vault(settings, store)
            base = (settings.public_url or base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
            locks, close_locks = redis_locks(settings.redis_url) if settings.redis_url else (None, None)
            broker = Broker(
                vault,
                state_key(settings.data_dir),
                f"{base}{CALLBACK_PATH}",
                shared_locks=locks,
                # tenants' token endpoints: only public addresses (or what the operator allows)
                tenant_http=httpx2.AsyncClient(
                    timeout=httpx2.Timeout(15.0), transport=Reach(tuple(settings.egress_allow)).transport()
                ),
                operator_tenant=DEFAULT_TENANT,
            )
            if close_locks is not None:
                stack.push_async_callback(close_locks)
            counters = Counters(shared_counters(settings.redis_url))
            results = result_store(settings.redis_url, settings.cache_max_entries, settings.cache_max_bytes)
            calls = StoreCalls(store)
            stack.push_async_callback(calls.aclose)  # (after the writers below have ended)
            audit = AuditLog(
                calls.write,
                spill=settings.data_dir / "audit-spill.jsonl",
                unwritable=settings.audit_unwritable,
            )
            if not settings.audit:
                logger.warning("SWITCHBOARD_AUDIT=false: tool calls are not recorded in the call audit")
            traces = StoreTraces(store)
            stack.push_async_callback(traces.aclose)  # (after the span writer below has ended)
            telemetry = Telemetry(
                tracing=settings.tracing,
                store=(traces.write, traces.purge) if settings.trace_store else None,
                retention_seconds=settings.trace_retention_hours * 3600,
                health=lambda: _health(holder),
            )
            holder["telemetry"], holder["traces"] = telemetry, traces
            # The writers of audit records and spans: the group ends once they have flushed.
            async with anyio.create_task_group() as writers:
                writers.start_soon(audit.run)
                if telemetry.sink is not None:
                    writers.start_soon(telemetry.sink.run)
                telemetry.start()
                try:
                    hub_cm = Hub(
                        pins=store_pins(store),
                        credentials=credentials_for(broker),
                        counters=counters,
                        results=results,
                        audit=audit if settings.audit else None,
                        approvals=StoreApprovals(store),
                        observe=(settings.trace_content, settings.trace_content_bytes),
                        egress_allow=settings.egress_allow,
                    )
                    async with hub_cm as hub:
                        system = Switchboard(settings, store, hub)
                        system.vault, system.broker = vault, broker
                        holder["identity"] = IdentityServices(
                            broker,
                            WorkloadTokens(state_key(settings.data_dir)),
                            system.admin_tenant,
                            system.providers_of,
                            consent_user(hub.spec_of, lambda: holder["auth"]),
                        )
                        if config_path is not None:
                            doc = load_and_check(config_path)
                            # Checked before it is stored, in the hub that serves it: the reload
                            # takes its open targets over instead of building them again.
                            specs = list(doc.gateways)
                            for warning in await compile_check(DEFAULT_TENANT, specs, hub, str(config_path)):
                                logger.warning("%s: %s", config_path, warning)
                            await store.apply(DEFAULT_TENANT, [to_store(g) for g in specs])
                        await system.reload()
                        admin_key = await system.ensure_admin_key()
                        forwarder = (
                            Forwarder(settings.max_request_bytes) if worker_run_dir is not None else None
                        )
                        if forwarder is not None:
                            stack.push_async_callback(forwarder.aclose)
                        front = McpFront(
                            hub,
                            allowed_hosts=allowed_hosts,
                            allowed_origins=allowed_origins,
                            max_request_bytes=settings.max_request_bytes,
                            state_keys=[state_key(settings.data_dir)],
                            session_owner=session_owner(worker_run_dir) if worker_run_dir else None,
                            forward=forwarder,
                            session_limits=SessionLimits(
                                max_sessions=settings.max_sessions,
                                per_caller=settings.sessions_per_caller,
                                idle_seconds=settings.session_idle_seconds,
                                handshake_seconds=settings.session_handshake_seconds,
                            ),
                        )
                        holder["system"] = system
                        holder["front"] = front
                        holder["auth"] = system.authenticator = authenticator = Authenticator(
                            store,
                            settings.public_url,
                            Revocations(settings.redis_url),
                            egress_allow=settings.egress_allow,
                        )
                        app.state.system = system
                        app.state.front = front
                        _FRONTS.append(front)
                        stack.callback(_FRONTS.remove, front)
                        async with front, anyio.create_task_group() as tg:
                            tg.start_soon(system.watch)
                            if on_ready is not None:
                                on_ready(system, admin_key)
                            yield
                            tg.cancel_scope.cancel()
                        await authenticator.aclose()
                        await broker.aclose()
                    await results.close()
                    await counters.close()
                finally:
                    _stop_writers(audit, telemetry)
        finally:
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            await store.close()

    async def health(request: Request) -> JSONResponse:
        system: Switchboard = holder["system"]
        return JSONResponse({"status": "ok", "gateways": [g.name for g in system.hub.gateways()]})

    async def protected_resource(request: Request) -> JSONResponse:
        """RFC 9728: how to get a token for a gateway's MCP endpoint."""
        system: Switchboard = holder["system"]
        found = mcp_endpoint("/" + request.path_params["resource"])
        live = system.hub.get(*found) if found is not None else None
        metadata = (
            await holder["auth"].protected_resource(live.tenant, live.name, live.spec.auth, request.scope)
            if live is not None
            else None
        )
        if metadata is None:
            return JSONResponse({"error": "no OAuth-protected resource at this path"}, 404)
        return JSONResponse(metadata)

    async def metrics(request: Request) -> Response:
        """Prometheus metrics: to a scraper with SWITCHBOARD_METRICS_TOKEN, else to loopback only."""
        token = settings.metrics_token
        if token:
            given = request.headers.get("authorization", "")
            if not (given.lower().startswith("bearer ") and same_secret_text(given[7:].strip(), token)):
                return JSONResponse(
                    {"error": "GET /metrics needs the bearer token set in SWITCHBOARD_METRICS_TOKEN"},
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        elif not _loopback(request):
            return JSONResponse(
                {
                    "error": "GET /metrics is served to loopback clients only; set SWITCHBOARD_METRICS_TOKEN "
                    "and give your scraper that bearer token"
                },
                403,
            )
        telemetry: Telemetry = holder["telemetry"]
        return Response(telemetry.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    from gateway.admin import admin_routes

    routes: list[BaseRoute] = [
        Route("/healthz", endpoint=health, methods=["GET"]),
        Route(METADATA_PREFIX + "/{resource:path}", endpoint=protected_resource, methods=["GET"]),
        *identity_routes(lambda: holder["identity"]),  # the OAuth callback (CALLBACK_PATH) too
        Route("/metrics", endpoint=metrics, methods=["GET"]),
        *admin_routes(lambda: holder["system"]),
        *ui_routes(lambda: holder["system"], lambda: holder["traces"]),
    ]
    return _Edge(Starlette(routes=routes, lifespan=lifespan), holder)


def _health(holder: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Each target's reachability: its connection, and its circuit breaker when it has one."""
    system: Switchboard | None = holder.get("system")
    up = []
    for gw in system.hub.gateways() if system is not None else []:
        for name, provider in gw.catalog.providers.items():
            breaker = gw.resilience.breakers.get(name) if gw.resilience is not None else None
            up.append(
                (
                    gw.tenant,
                    gw.name,
                    name,
                    provider.healthy() and (breaker is None or breaker.opened_at is None),
                )
            )
    return up


def _stop_writers(audit: AuditLog, telemetry: Telemetry) -> None:
    """Stop recording and end the writers' queues: they write what is queued, then return."""
    telemetry.stop()
    if telemetry.sink is not None:
        telemetry.sink.close()
    audit.close()


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_secret_text(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def load_and_check(path: str | Path) -> Document:
    """Read a config file (ConfigError with file/line/field when it is wrong)."""
    from gateway.config import load_file

    return load_file(path)
