"""The gateway as one ASGI app: the MCP front, the admin API, the UI and the identity routes
over the services that its lifespan opens (gateway.services).

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
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from gateway.a2a import a2a_endpoint
from gateway.a2a._keys import JWKS_PATH, jwks, push_key
from gateway.admin import admin_routes
from gateway.agentcore import Backend, agentcore_routes
from gateway.auth import METADATA_PREFIX
from gateway.mcp import McpFront
from gateway.mcp.forms import PRINCIPAL_KEY
from gateway.runtime_routes import runtime_routes
from gateway.runtimes import Runtimes
from gateway.services import Edge, OnReady, Services, open_services
from gateway.serving import Forwarder, forwarded_client, from_runtime_link, runtime_owner
from gateway.settings import Settings
from gateway.system import mcp_endpoint
from gateway.telemetry import HttpSpans
from gateway.ui import ui_routes
from identity.api import identity_routes
from identity.inbound import Refused

logger = logging.getLogger(__name__)


class _Edge:
    """The outermost ASGI app: MCP endpoints go straight to the front (the hot path, no
    router or middleware stack in between); everything else to the Starlette app."""

    def __init__(
        self,
        app: Starlette,
        own_socket: str | None,
        link: str | None = None,
        run_dir: Path | None = None,
        max_body: int = 4 * 1024 * 1024,
    ) -> None:
        self.state = app.state
        self.app = HttpSpans(app)
        self.own_socket = own_socket
        self.link = link  # (the socket hosted agents reach the gateway on: never a loopback client)
        # Several workers: a hosted agent's session lives in one, which every request naming it
        # reaches (the HTTP routes and AgentCore's; a WebSocket stays where it lands).
        self.runtime_owner = runtime_owner(run_dir) if run_dir is not None else None
        self.forward = Forwarder(max_body) if run_dir is not None else None
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        """The running process's parts (from the lifespan's start to its end)."""
        if self._services is None:
            raise RuntimeError("the gateway has not started: its lifespan opens its services")
        return self._services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            from_runtime_link(scope, self.link)
        if scope["type"] == "http":
            forwarded_client(scope, self.own_socket)
            if self.runtime_owner is not None and self.forward is not None:
                owner = self.runtime_owner(scope)
                if owner is not None:
                    await self.forward(owner, scope, receive, send)
                    return
            found = mcp_endpoint(scope["path"])
            if found is not None:
                services = self.services
                tenant, name = found
                live = services.system.hub.get(tenant, name)
                if live is not None:  # (an unknown gateway: the front answers 404)
                    try:
                        principal = await services.auth.principal(tenant, name, live.spec.auth, scope)
                    except Refused as exc:
                        await services.auth.challenge(exc, scope, send)
                        return
                    scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
                await services.front.handle((tenant, name), scope, receive, send)
                return
            if "/a2a/" in scope["path"] and a2a_endpoint(scope["path"]) is not None:
                await self.services.a2a(scope, receive, send)
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
    on_ready: OnReady | None = None,
    base_url: str | None = None,
    worker_run_dir: Path | None = None,
    own_socket: str | None = None,
) -> _Edge:
    """The whole gateway as one ASGI app; its services open in its lifespan (gateway.services).

    ``worker_run_dir`` and ``own_socket``: this app is one of several workers
    (gateway.serving), which pass each other requests for their sessions.
    """
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
    base = (settings.public_url or base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    where = Edge(allowed_hosts, allowed_origins, base, worker_run_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings, where, config_path=config_path, on_ready=on_ready) as services:
            edge._services = services
            _FRONTS.append(services.front)
            try:
                yield
            finally:
                _FRONTS.remove(services.front)
                if edge.forward is not None:
                    await edge.forward.aclose()
                edge._services = None

    def current() -> Services:
        return edge.services

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "gateways": [g.name for g in current().system.hub.gateways()]})

    async def protected_resource(request: Request) -> JSONResponse:
        """RFC 9728: how to get a token for a gateway's MCP endpoint."""
        services = current()
        path = "/" + request.path_params["resource"]
        found = mcp_endpoint(path)
        agent = a2a_endpoint(path)
        if found is None and agent is not None and not agent[3]:  # an A2A agent's URL is a resource too
            found = agent[:2]
        live = services.system.hub.get(*found) if found is not None else None
        metadata = (
            await services.auth.protected_resource(live.tenant, live.name, live.spec.auth, request.scope)
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
        return Response(current().telemetry.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    published: list[dict[str, object]] = []  # (read once)

    async def push_keys(request: Request) -> JSONResponse:
        """The public key A2A push notifications are signed with (ADR 0037)."""
        if not published:
            published.append(jwks(push_key(settings.data_dir)))
        return JSONResponse(published[0], headers={"Cache-Control": "max-age=300"})

    # DNS rebinding: a web page may not reach a hosted agent through a name it made point here.
    runtime_security = TransportSecurityMiddleware(
        TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins
        )
    )

    async def runtime_caller(tenant: str, request: HTTPConnection) -> object:
        """A hosted agent's caller, authenticated as the tenant's default gateway authenticates
        (and from a Host and Origin of this gateway's)."""
        refused = await runtime_security.validate_request(
            Request({**request.scope, "type": "http"}), is_post=False
        )
        if refused is not None:
            return refused
        services = current()
        live = services.system.hub.get(tenant, "default")
        if live is None:
            problem = (
                f"tenant {tenant!r} has no gateway `default`: its callers are authenticated as that one's"
            )
            return JSONResponse({"error": problem}, 404)
        try:
            return await services.auth.principal(tenant, "default", live.spec.auth, request.scope)
        except Refused as exc:
            return JSONResponse(
                {"error": exc.description},
                exc.status,
                headers={"WWW-Authenticate": f'Bearer error="{exc.error}"'},
            )

    routes: list[BaseRoute] = [
        Route("/healthz", endpoint=health, methods=["GET"]),
        Route(JWKS_PATH, endpoint=push_keys, methods=["GET"]),
        Route(METADATA_PREFIX + "/{resource:path}", endpoint=protected_resource, methods=["GET"]),
        *identity_routes(lambda: current().identity),  # the OAuth callback (CALLBACK_PATH) too
        Route("/metrics", endpoint=metrics, methods=["GET"]),
        *admin_routes(lambda: current().system),
        *agentcore_routes(
            lambda: Backend(
                current().system,
                current().identity,
                current().aws_keys,
                settings.public_url,
                settings.agentcore_unsigned_loopback,
                settings.aws_accounts,
                settings.aws_regions,
                current().aws_rate.over,
            ),
            max_body=settings.max_request_bytes,
        ),
        *ui_routes(lambda: current().system, lambda: current().traces),
        *runtime_routes(_runtimes(current), runtime_caller, settings.max_request_bytes),
    ]
    starlette = Starlette(routes=routes, lifespan=lifespan)
    link = settings.runtime_gateway_socket
    edge = _Edge(starlette, own_socket, link, worker_run_dir, settings.max_request_bytes)
    return edge


def _runtimes(current: Callable[[], Services]) -> Callable[[], Runtimes]:
    def found() -> Runtimes:
        runtimes = current().system.runtimes
        if runtimes is None:
            raise RuntimeError("the gateway has not started: its lifespan opens the hosted agents")
        return runtimes

    return found


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_secret_text(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
