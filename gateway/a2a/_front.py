"""The A2A front (ADR 0037): each agent a gateway serves, at its own URL, in A2A 1.0 over both
bindings (JSON-RPC at the URL, HTTP+JSON under it), with the 0.3 methods where ``a2a-sdk``
keeps them; ``a2a-sdk``'s request handler and routes do the protocol.

    /a2a/{agent}                                   the default tenant's default gateway
    /gateways/{gateway}/a2a/{agent}                the default tenant's gateway
    /tenants/{tenant}/gateways/{gateway}/a2a/{agent}
    .../.well-known/agent-card.json                its card (public; skills once authenticated)

Every request but the card's is authenticated as the gateway's MCP endpoint is (401 with
``WWW-Authenticate``); the caller's principal then scopes tasks and push configs, and every
message runs as a tool call through the gateway's pipeline (``_executor``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from a2a.auth.user import User
from a2a.server.agent_execution import SimpleRequestContextBuilder
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes, create_rest_routes
from a2a.types import AgentCapabilities, AgentCard
from a2a.utils.errors import ExtendedAgentCardNotConfiguredError, VersionNotSupportedError
from google.protobuf.json_format import MessageToDict
from joserfc.jwk import ECKey
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount
from starlette.types import Receive, Scope, Send

from gateway.a2a._agents import VERSION, Agent, agent, card
from gateway.a2a._executor import GatewayExecutor
from gateway.a2a._paths import DEFAULT, a2a_agents, a2a_endpoint
from gateway.a2a._push import SignedPush
from gateway.a2a._stores import Fresh, Seal, StoredPushConfigs, StoredTasks, Unseal, push_url_guard
from gateway.core.types import Principal
from gateway.egress import Reach
from gateway.hub import Hub
from gateway.serving import read_body
from gateway.store import StoreA2a
from gateway.telemetry import HttpSpans
from identity.inbound import Refused

CARD = "/.well-known/agent-card.json"
PREFIXES = (
    "/a2a/{agent}",
    "/gateways/{gateway}/a2a/{agent}",
    "/tenants/{tenant}/gateways/{gateway}/a2a/{agent}",
)
SUPPORTED = ("1.0", "0.3")
MAX_ID = 128  # characters of an id a caller chooses (the store keeps no more)
STATE = "a2a"  # the request scope's state key: what the front resolved for the SDK's handler

Authenticate = Callable[[str, str, Any, Scope], Awaitable[Principal]]
Challenge = Callable[[Refused, Scope, Send], Awaitable[None]]


def _overlong_ids(body: bytes) -> str | None:
    """The name of a message id the caller chose (messageId, contextId, taskId) that is longer
    than the store keeps, if any (a body that is not JSON is the SDK's to refuse)."""
    if not body or (b'Id"' not in body and b'_id"' not in body):
        return None
    try:
        sent = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    params = sent.get("params", sent) if isinstance(sent, dict) else None
    message = params.get("message") if isinstance(params, dict) else None
    if isinstance(message, dict):  # (both spellings: the SDK's parser takes either)
        for field in ("messageId", "contextId", "taskId", "message_id", "context_id", "task_id"):
            value = message.get(field)
            if isinstance(value, str) and len(value) > MAX_ID:
                return f"message.{field}"
    return None


async def _invalid(scope: Scope, receive: Receive, send: Send, body: bytes, problem: str) -> None:
    """An invalid-params error in the request's binding (JSON-RPC at the agent's URL, else REST)."""
    sent = orjson.loads(body)
    if isinstance(sent, dict) and "jsonrpc" in sent:
        error = {"jsonrpc": "2.0", "id": sent.get("id"), "error": {"code": -32602, "message": problem}}
        await JSONResponse(error)(scope, receive, send)
    else:
        error = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": problem}}
        await JSONResponse(error, 400, media_type="application/a2a+json")(scope, receive, send)


class _Caller(User):
    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return self.principal.subject != "anonymous"

    @property
    def user_name(self) -> str:
        return self.principal.subject


class _Context(DefaultServerCallContextBuilder):
    """The SDK's call context with what the front resolved: which agent, who calls; and the
    version checked on major and minor (the SDK reads only the header, and only the major)."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        version = request.headers.get("a2a-version") or request.query_params.get("A2A-Version") or ""
        if version:
            context.state["headers"]["a2a-version"] = version
            if ".".join(version.split(".")[:2]) not in SUPPORTED:
                raise VersionNotSupportedError(
                    message=f"A2A-Version {version} is not supported: send A2A-Version: {VERSION} (or 0.3)"
                )
        context.state.update(request.scope["state"][STATE])
        return context

    def build_user(self, request: Request) -> User:
        return _Caller(request.scope["state"][STATE]["principal"])


class A2aFront:
    """Every gateway's A2A agents, for one process."""

    def __init__(
        self,
        hub: Hub,
        store: StoreA2a,
        authenticate: Authenticate,
        challenge: Challenge,
        base_url: str,
        seal: Seal,
        unseal: Unseal,
        egress_allow: tuple[str, ...],
        push_key: ECKey,
        *,
        allowed_hosts: list[str],
        allowed_origins: list[str],
        max_request_bytes: int,
    ) -> None:
        self.hub, self.authenticate, self.challenge = hub, authenticate, challenge
        self.security = TransportSecurityMiddleware(
            TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=allowed_hosts,
                allowed_origins=allowed_origins,
            )
        )
        self.max_request_bytes = max_request_bytes
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(
            transport=Reach(egress_allow).httpx_transport(), timeout=httpx.Timeout(15.0)
        )
        pushes = StoredPushConfigs(store, seal, unseal)
        self.tasks = StoredTasks(store)
        self.push = SignedPush(self.http, pushes, push_key, self.base_url)
        # One handler serves every agent: its card says only what all of them can do (the SDK
        # checks methods against it); each agent's own card is made per request (``_card``,
        # ``_extended``), from its gateway's tools and the caller.
        served = AgentCard(
            name="switchboard",
            description="Every A2A agent of this gateway process",
            version=VERSION,
            capabilities=AgentCapabilities(streaming=True, push_notifications=True, extended_agent_card=True),
        )
        self.handler = DefaultRequestHandler(
            agent_executor=GatewayExecutor(hub),
            task_store=self.tasks,
            agent_card=served,
            push_config_store=pushes,
            push_sender=self.push,
            push_url_validator=push_url_guard(egress_allow),  # type: ignore[arg-type]
            extended_agent_card=served,
            extended_card_modifier=self._extended,
            request_context_builder=SimpleRequestContextBuilder(
                should_populate_referred_tasks=False,
                task_store=None,
                task_id_generator=Fresh(self.tasks, pushes),
            ),
        )
        builder = _Context()
        routes: list[BaseRoute] = []
        for prefix in PREFIXES:
            routes += create_jsonrpc_routes(
                self.handler, rpc_url=prefix, context_builder=builder, enable_v0_3_compat=True
            )
            routes.append(Mount(prefix, routes=create_rest_routes(self.handler, context_builder=builder)))
        self.app = HttpSpans(Starlette(routes=routes), lambda scope: scope["state"][STATE]["target"][0])

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.handler.aclose()
        await self.tasks.aclose()
        await self.push.aclose()
        await self.http.aclose()

    def _url(self, tenant: str, gateway: str, name: str) -> str:
        path = f"/a2a/{name}"
        if (tenant, gateway) != DEFAULT:
            path = f"/gateways/{gateway}{path}"
        if tenant != DEFAULT[0]:
            path = f"/tenants/{tenant}{path}"
        return self.base_url + path

    async def _extended(self, served: AgentCard, context: ServerCallContext) -> AgentCard:
        tenant, gateway, name = context.state["target"]
        live = self.hub.get(tenant, gateway)
        found = agent(live, name, context.state["principal"]) if live is not None else None
        if live is None or found is None:  # (the agent went away since the request came in)
            raise ExtendedAgentCardNotConfiguredError(message=f"agent {name!r} is no longer served")
        return card(live, found, self._url(tenant, gateway, name), with_skills=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = a2a_endpoint(scope["path"])
        assert found is not None, "the edge sends only A2A paths here"
        tenant, gateway, name, rest = found
        refused = await self.security.validate_request(Request(scope), is_post=False)  # (Host, Origin)
        if refused is not None:  # (a Host or Origin not this gateway's: DNS rebinding)
            await refused(scope, receive, send)
            return
        live = self.hub.get(tenant, gateway)
        if live is None or name not in a2a_agents(live.spec):
            where = f"gateway {gateway!r}" + (f" of tenant {tenant!r}" if tenant != DEFAULT[0] else "")
            problem = f"{where} serves no A2A agent {name!r}" if live is not None else f"there is no {where}"
            await JSONResponse({"error": problem}, 404)(scope, receive, send)
            return
        # Credentials are checked against the agent's URL (a JWT's audience), whatever lies under it.
        agent_scope = {
            **scope,
            "path": scope["path"][: len(scope["path"]) - len(rest)] if rest else scope["path"],
        }
        if rest == CARD:
            await self._card(live, tenant, gateway, name, agent_scope, receive, send)
            return
        try:
            principal = await self.authenticate(tenant, gateway, live.spec.auth, agent_scope)
        except Refused as exc:
            await self.challenge(exc, agent_scope, send)
            return
        body, replay = await read_body(receive, self.max_request_bytes)
        if body is None:  # (over the limit, or the client left)
            limit = self.max_request_bytes
            problem = f"the request body is larger than {limit} bytes (SWITCHBOARD_MAX_REQUEST_BYTES)"
            await JSONResponse({"error": problem}, 413)(scope, receive, send)
            return
        too_long = _overlong_ids(body)
        if too_long is not None:
            await _invalid(scope, receive, send, body, f"{too_long} is longer than {MAX_ID} characters")
            return
        scope.setdefault("state", {})[STATE] = {"target": (tenant, gateway, name), "principal": principal}
        await self.app(scope, replay, send)

    async def _card(
        self, live: Any, tenant: str, gateway: str, name: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The card: public; with the caller's skills when the request authenticates."""
        principal: Principal | None
        try:
            principal = await self.authenticate(tenant, gateway, live.spec.auth, scope)
        except Refused:
            principal = None
        found: Agent | None = agent(live, name, principal)
        assert found is not None
        made = card(live, found, self._url(tenant, gateway, name), with_skills=principal is not None)
        await JSONResponse(MessageToDict(made))(scope, receive, send)
