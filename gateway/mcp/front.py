"""MCP front: Streamable HTTP for every gateway, both protocol eras on one endpoint.

The `mcp` SDK's lowlevel Server and session manager own the wire: era
detection, the initialize handshake and sessions (2025-11-25 and earlier),
per-request envelopes, ``server/discover`` and ``Mcp-Method``/``Mcp-Name``
checks (2026-07-28), SSE framing, Origin/Host validation and the body limit.
This module only adapts: it finds the gateway a request is for (from the
path), turns MCP requests into core calls, and core results and errors into
MCP results and errors. It never imports a provider.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import mcp_types as types
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.session import ServerSession
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ToolsListChanged,
)
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from gateway import __version__
from gateway.core.errors import (
    AuthError,
    InputRequired,
    InvalidArguments,
    RequestError,
)
from gateway.core.provider import PromptSpec, ResourceSpec, ResourceTemplateSpec
from gateway.core.types import JSON, CallContext, Principal, ToolResult
from gateway.hub import GatewayKey, Hub, LiveGateway
from gateway.mcp.channel import MODERN, McpChannel, input_required
from gateway.mcp.fast import FastPath, askable
from gateway.mcp.forms import (
    PRINCIPAL_KEY,
    SCOPE_KEY,
    cache_hints,
    page_of,
    result_to_wire,
    to_wire,
)
from gateway.mcp.middleware import Traced, header, typed_result
from gateway.mcp.sessions import SessionLimits, SessionTable, caller_of
from gateway.mcp.tasks import TASKS_EXTENSION, Owner, TaskTable
from gateway.mcp.wire import Refusal, check_headers, check_message
from gateway.serving import read_body

logger = logging.getLogger(__name__)


class _GatewayServer(Server[Any]):
    """The SDK server, announcing list_changed in the handshake era (our lists do change)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options
            or NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


class McpFront:
    """Serves every live gateway of a Hub over MCP Streamable HTTP."""

    def __init__(
        self,
        hub: Hub,
        *,
        allowed_hosts: list[str],
        allowed_origins: list[str],
        max_request_bytes: int,
        state_keys: list[bytes],
        fast_path: bool = True,
        session_owner: Callable[[str], Any] | None = None,
        forward: Callable[[Any, Scope, Receive, Send], Awaitable[None]] | None = None,
        session_limits: SessionLimits | None = None,
    ) -> None:
        """``session_owner`` and ``forward``: with several workers, where another worker's
        session lives, and how a request is passed there (gateway.serving).
        ``session_limits``: how many handshake-era sessions, and for how long (ADR 0021)."""
        self.hub = hub
        self.max_request_bytes = max_request_bytes
        self.session_owner = session_owner
        self.forward = forward
        self.server: Server[Any] = _GatewayServer(
            "switchboard",
            version=__version__,
            title="Switchboard MCP gateway",
        )
        self.tasks = TaskTable(self._owner)
        self.server.extensions[TASKS_EXTENSION] = {}  # in server/discover (2026-07-28 only)
        # Registered one by one because the handlers answer with wire dicts
        # (no pydantic round trip on the hot path), which the SDK accepts.
        for method, params_type, handler in (
            ("tools/list", types.PaginatedRequestParams, self._list_tools),
            ("tools/call", types.CallToolRequestParams, self._call_tool),
            ("resources/list", types.PaginatedRequestParams, self._list_resources),
            ("resources/templates/list", types.PaginatedRequestParams, self._list_resource_templates),
            ("resources/read", types.ReadResourceRequestParams, self._read_resource),
            ("prompts/list", types.PaginatedRequestParams, self._list_prompts),
            ("prompts/get", types.GetPromptRequestParams, self._get_prompt),
            ("completion/complete", types.CompleteRequestParams, self._complete),
            ("subscriptions/listen", types.SubscriptionsListenRequestParams, self._listen),
            ("logging/setLevel", types.SetLevelRequestParams, self._set_level),
            ("resources/subscribe", types.SubscribeRequestParams, self._subscribe),
            ("resources/unsubscribe", types.UnsubscribeRequestParams, self._unsubscribe),
        ):
            self.server.add_request_handler(method, params_type, typed_result(handler))
        for method, task_params, task_handler in self.tasks.handlers():
            self.server.add_request_handler(method, task_params, typed_result(task_handler))
        # Our span per request replaces the SDK's (same conventions, plus tenant and gateway,
        # and the HTTP traceparent as parent when _meta has none).
        self.server.middleware[:] = [
            Traced(),
            *(m for m in self.server.middleware if not isinstance(m, OpenTelemetryMiddleware)),
        ]
        # Seals 2026-07-28 requestState, bound to the request and the caller.
        self.server.middleware.append(
            RequestStateBoundary(
                RequestStateSecurity(keys=state_keys, bind_principal=_principal_of),
                default_audience="switchboard",
            )
        )
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=allowed_hosts,
            allowed_origins=allowed_origins,
        )
        self.manager = SessionTable(
            self.server,
            security_settings=security,
            max_request_body_size=max_request_bytes,
            limits=session_limits or SessionLimits(),
            on_end=self._forget,
        )
        self.fast: FastPath | None = (
            FastPath(
                security,
                max_request_bytes,
                self.server.server_info_stamp,
                self._fast_list_page,
                result_to_wire,
                self._session_alive,
                to_wire,
            )
            if fast_path
            else None
        )
        self._buses: dict[GatewayKey, InMemorySubscriptionBus] = {}
        self._listen_handlers: dict[GatewayKey, ListenHandler] = {}
        # Legacy-era sessions by id: which gateway they belong to, and a session
        # handle whose connection carries list_changed on the standalone stream.
        self._sessions: dict[str, tuple[GatewayKey, ServerSession | None]] = {}
        # Handshake-era session state: the log level a session asked for, and the
        # resources it subscribed to.
        self._log_levels: dict[str, str] = {}
        self._resource_subscriptions: dict[str, set[str]] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        hub.subscribe(self._gateway_changed)
        hub.subscribe_sessions(self._session_changed)
        hub.knows_session = self._knows_session
        self._telling: set[str] = set()  # (sessions a list_changed is on its way to)

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> McpFront:
        self._cm = self.manager.run()
        await self._cm.__aenter__()
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self.tasks.bind(self._task_group)
        return self

    def close_streams(self) -> None:
        """End every subscriptions/listen stream gracefully (they would hold a shutdown open)."""
        for handler in self._listen_handlers.values():
            handler.close()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close_streams()
        tg, self._task_group = self._task_group, None
        self.tasks.bind(None)
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        await self._cm.__aexit__(None, None, None)

    # -- ASGI --------------------------------------------------------------

    async def handle(self, key: GatewayKey, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request for the gateway ``key``."""
        if self.hub.get(*key) is None:
            response = JSONResponse(
                {"error": f"No gateway named {key[1]!r}. GET /admin/v1/gateways lists the gateways."}, 404
            )
            await response(scope, receive, send)
            return
        refusal = check_headers(scope.get("headers", []))
        if refusal is not None:
            await refusal.response()(scope, receive, send)
            return
        session_id = header(scope, MCP_SESSION_ID_HEADER.lower().encode())
        if session_id is not None and self.session_owner is not None and self.forward is not None:
            owner = self.session_owner(session_id)
            if owner is not None:  # another worker's session
                await self.forward(owner, scope, receive, send)
                return
        state = scope.setdefault("state", {})
        principal = state.get(PRINCIPAL_KEY)
        caller = caller_of(scope, principal if isinstance(principal, Principal) else None)
        if session_id is not None:
            known = self._sessions.get(session_id)
            # A session belongs to the gateway and the principal that created it; for any
            # other it does not exist.
            if (known is not None and known[0] != key) or not self.manager.belongs_to(session_id, caller):
                await _SESSION_NOT_FOUND.response()(scope, receive, send)
                return
            if scope.get("method") == "DELETE":
                self._forget(session_id)
        state[SCOPE_KEY] = key
        version = header(scope, b"mcp-protocol-version")
        handshake_era = version is None or version in HANDSHAKE_PROTOCOL_VERSIONS
        opening = False
        if scope.get("method") == "POST" and _is_json(scope):
            body, receive = await read_body(receive, self.max_request_bytes)
            if body is not None:  # (over the limit: the SDK answers 413)
                checked = check_message(body)
                if isinstance(checked, Refusal):
                    await checked.response()(scope, receive, send)
                    return
                opening = handshake_era and session_id is None
                if opening and checked.method != "initialize":
                    await _NO_SESSION.response()(scope, receive, send)
                    return
        if opening and (why := self.manager.refusal(caller)) is not None:
            await Refusal(429, why, INVALID_REQUEST).response()(scope, receive, send)
            return
        if session_id is not None and handshake_era:
            with self.manager.using(session_id):
                await self._serve(key, scope, receive, send, session_id)
        else:
            with self.manager.opening(caller):
                await self._serve(key, scope, receive, send, session_id)

    async def _serve(
        self, key: GatewayKey, scope: Scope, receive: Receive, send: Send, session_id: str | None
    ) -> None:

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and session_id is None:
                for name, value in message.get("headers", []):
                    if name.lower() == b"mcp-session-id":
                        self._remember(value.decode(), key)
            await send(message)

        gw = self.hub.get(*key)
        if gw is not None and self.fast is not None:
            replay = await self.fast.handle(gw, key, scope, receive, send, session_id)
            if replay is None:
                return
            receive = replay
        await self.manager.handle_request(scope, receive, send_wrapper)

    # -- handlers ----------------------------------------------------------

    async def _interactive(
        self,
        ctx: ServerRequestContext[Any, Any],
        params: types.RequestParams,
        run: Callable[[LiveGateway, CallContext], Awaitable[dict[str, Any]]],
        error_data: Any = None,
    ) -> dict[str, Any]:
        """Run a request that may ask the client questions (tools/call, prompts/get, resources/read)."""
        gw, call_ctx = self._gateway(ctx)
        call_ctx.channel = McpChannel(ctx, params, log_level=self._log_levels.get(call_ctx.session_id or ""))
        try:
            return await run(gw, call_ctx)
        except InputRequired as pending:
            return input_required(pending)
        except (RequestError, AuthError) as exc:
            raise to_wire(exc, error_data) from None

    def _gateway(self, ctx: ServerRequestContext[Any, Any]) -> tuple[LiveGateway, CallContext]:
        request = ctx.request
        key: GatewayKey | None = None
        if request is not None:
            key = request.scope.get("state", {}).get(SCOPE_KEY)
        if key is None:
            raise MCPError(INVALID_REQUEST, "This server serves MCP only over its HTTP gateway endpoints.")
        gw = self.hub.get(*key)
        if gw is None:
            raise MCPError(INVALID_REQUEST, f"Gateway {key[1]!r} no longer exists.")
        session_id = request.headers.get(MCP_SESSION_ID_HEADER) if request is not None else None
        if session_id is not None and session_id in self._sessions and self._sessions[session_id][1] is None:
            self._sessions[session_id] = (key, ctx.session)
        meta = dict(ctx.params.get("_meta") or {}) if isinstance(ctx.params, Mapping) else {}
        principal = request.scope.get("state", {}).get(PRINCIPAL_KEY) if request is not None else None
        call_ctx = CallContext(
            principal=principal if isinstance(principal, Principal) else Principal(tenant=key[0]),
            gateway=key[1],
            session_id=session_id,
            deadline=math.inf,
            request_id=ctx.request_id,
            meta=meta,
        )
        return gw, call_ctx

    def _owner(self, ctx: ServerRequestContext[Any, Any]) -> Owner:
        _, call_ctx = self._gateway(ctx)
        return (call_ctx.tenant, call_ctx.gateway, call_ctx.principal.subject)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> dict[str, Any]:
        gw, call_ctx = self._gateway(ctx)
        tools = gw.tool_list(call_ctx.principal, call_ctx.session_id)
        return self._cacheable(ctx, page_of(tools, params.cursor if params else None, "tools"))

    def _fast_list_page(
        self, gw: LiveGateway, cursor: str | None, modern: bool, principal: Principal, session: str | None
    ) -> dict[str, Any]:
        return cache_hints(page_of(gw.tool_list(principal, session), cursor, "tools"), modern)

    def _session_alive(self, session_id: str, version: str) -> bool:
        """A handshake-era session the SDK still holds, initialised, speaking ``version``, whose
        client cannot be asked anything mid-call (the fast path's condition: it has no back-channel)."""
        known = self._sessions.get(session_id)
        # The SDK ends idle sessions on its own; its table of live transports is the truth.
        alive = session_id in self.manager._server_instances
        session = known[1] if known is not None else None
        return (
            alive
            and session is not None
            and session.protocol_version == version
            and not askable(session.client_capabilities)
            and session_id not in self._log_levels
        )

    def _cacheable(self, ctx: ServerRequestContext[Any, Any], page: dict[str, Any]) -> dict[str, Any]:
        return cache_hints(page, ctx.protocol_version >= MODERN)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> dict[str, Any]:
        async def run(gw: LiveGateway, call_ctx: CallContext) -> dict[str, Any]:
            try:
                tasked = await self.tasks.call_tool(ctx, gw, call_ctx, params.name, params.arguments)
                if tasked is not None:
                    return tasked
                return result_to_wire(await gw.call(params.name, params.arguments, call_ctx))
            except InvalidArguments as exc:
                # Input validation errors are tool errors, so the model can correct itself.
                return result_to_wire(ToolResult.error(str(exc)))

        return await self._interactive(ctx, params, run)

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> dict[str, Any]:
        gw, _ = self._gateway(ctx)
        items = [
            _described({"uri": r.uri, "name": r.name}, r) for _, r in gw.catalog.snapshot.resources.values()
        ]
        return self._cacheable(ctx, page_of(items, params.cursor if params else None, "resources"))

    async def _list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> dict[str, Any]:
        gw, _ = self._gateway(ctx)
        items = [
            _described({"uriTemplate": t.uri_template, "name": t.name}, t)
            for _, t in gw.catalog.snapshot.templates
        ]
        return self._cacheable(ctx, page_of(items, params.cursor if params else None, "resourceTemplates"))

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> dict[str, Any]:
        async def run(gw: LiveGateway, call_ctx: CallContext) -> dict[str, Any]:
            contents = await gw.catalog.read_resource(str(params.uri), call_ctx)
            return self._cacheable(ctx, {"contents": list(contents)})

        return await self._interactive(ctx, params, run, error_data={"uri": str(params.uri)})

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> dict[str, Any]:
        gw, _ = self._gateway(ctx)
        items = []
        for name, (_, p) in gw.catalog.snapshot.prompts.items():
            item = _described({"name": name}, p)
            if p.arguments:
                item["arguments"] = list(p.arguments)
            items.append(item)
        return self._cacheable(ctx, page_of(items, params.cursor if params else None, "prompts"))

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> dict[str, Any]:
        async def run(gw: LiveGateway, call_ctx: CallContext) -> dict[str, Any]:
            return await gw.catalog.get_prompt(params.name, params.arguments or {}, call_ctx)

        return await self._interactive(ctx, params, run)

    async def _complete(
        self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> dict[str, Any]:
        gw, call_ctx = self._gateway(ctx)
        ref = params.ref.model_dump(by_alias=True, exclude_none=True)
        argument = params.argument.model_dump(by_alias=True, exclude_none=True)
        context = params.context.model_dump(by_alias=True, exclude_none=True) if params.context else None
        provider = (
            gw.catalog.provider_for_prompt(ref.get("name", ""))
            if ref.get("type") == "ref/prompt"
            else gw.catalog.provider_for_template(ref.get("uri", ""))
        )
        if provider is None:
            return {"completion": {"values": [], "hasMore": False}}
        if ref.get("type") == "ref/prompt":
            hit = gw.catalog.snapshot.prompts[ref["name"]]
            ref = {**ref, "name": hit[1].name}
        else:
            ref = {**ref, "uri": gw.catalog.local_uri(provider, ref.get("uri", ""))}
        return {"completion": await provider.complete(ref, argument, context, call_ctx)}

    async def _set_level(
        self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> JSON:
        _, call_ctx = self._gateway(ctx)
        if call_ctx.session_id:
            self._log_levels[call_ctx.session_id] = params.level
        return {}

    async def _subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> JSON:
        _, call_ctx = self._gateway(ctx)
        if call_ctx.session_id:
            self._resource_subscriptions.setdefault(call_ctx.session_id, set()).add(str(params.uri))
        return {}

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> JSON:
        _, call_ctx = self._gateway(ctx)
        if call_ctx.session_id:
            self._resource_subscriptions.get(call_ctx.session_id, set()).discard(str(params.uri))
        return {}

    async def _listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        gw, _ = self._gateway(ctx)
        key = (gw.tenant, gw.name)
        handler = self._listen_handlers.get(key)
        if handler is None:
            bus = self._buses.setdefault(key, InMemorySubscriptionBus())
            handler = self._listen_handlers[key] = ListenHandler(bus)
        return await handler(ctx, params)

    # -- change notifications -----------------------------------------------

    def _gateway_changed(self, key: GatewayKey) -> None:
        if self._task_group is not None:
            self._task_group.start_soon(self._notify, key)

    async def _notify(self, key: GatewayKey) -> None:
        bus = self._buses.get(key)
        if bus is not None:
            await bus.publish(ToolsListChanged())
            await bus.publish(PromptsListChanged())
            await bus.publish(ResourcesListChanged())
        for session_id, (skey, session) in list(self._sessions.items()):
            if skey == key and session is not None:
                await self._tell(session_id, session, every=True)

    async def _tell(self, session_id: str, session: ServerSession, every: bool = False) -> None:
        """A session hears its tools changed (``every``: its prompts and resources too)."""
        try:
            await session.send_tool_list_changed()
            if every:
                await session.send_prompt_list_changed()
                await session.send_resource_list_changed()
        except Exception as exc:  # noqa: BLE001 - boundary: a gone session must not stop the others
            logger.debug("dropping session %s from notifications: %s", session_id[:8], exc)
            self._forget(session_id)

    def _session_changed(self, key: GatewayKey, session_id: str) -> None:
        """One session's list changed (its searches found tools: ``list_found``): it hears so,
        once for the changes made while a notice to it is on its way."""
        known = self._sessions.get(session_id)
        if self._task_group is None or known is None or known[0] != key or known[1] is None:
            return
        if session_id not in self._telling:
            self._telling.add(session_id)
            self._task_group.start_soon(self._tell_once, session_id, known[1])

    async def _tell_once(self, session_id: str, session: ServerSession) -> None:
        self._telling.discard(session_id)  # (a change from here on is told again)
        await self._tell(session_id, session)

    def _knows_session(self, key: GatewayKey, session_id: str) -> bool:
        """Whether ``session_id`` names a live handshake-era session of the gateway ``key``."""
        known = self._sessions.get(session_id)
        return known is not None and known[0] == key and self.manager.known(session_id)

    def _remember(self, session_id: str, key: GatewayKey) -> None:
        if self.manager.known(session_id):  # (a session that ended meanwhile is not kept)
            self._sessions[session_id] = (key, None)

    def _forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
        self._log_levels.pop(session_id, None)
        self._resource_subscriptions.pop(session_id, None)
        self.hub.session_ended(session_id)


def _described(item: JSON, spec: ResourceSpec | ResourceTemplateSpec | PromptSpec) -> JSON:
    """Add the optional display fields a resource, template or prompt has."""
    for attr, wire in (("title", "title"), ("description", "description"), ("mime_type", "mimeType")):
        if getattr(spec, attr, None):
            item[wire] = getattr(spec, attr)
    return item


_SESSION_NOT_FOUND = Refusal(404, "Session not found", INVALID_REQUEST)
_NO_SESSION = Refusal(
    400,
    "Bad Request: Missing session ID: send initialize first, then its Mcp-Session-Id with every request",
    INVALID_REQUEST,
)


def _is_json(scope: Scope) -> bool:
    content_type = header(scope, b"content-type") or ""
    return content_type.lower().startswith("application/json")


def _principal_of(ctx: ServerRequestContext[Any, Any]) -> str | None:
    principal = ctx.request.scope.get("state", {}).get(PRINCIPAL_KEY) if ctx.request is not None else None
    return f"{principal.tenant}/{principal.subject}" if isinstance(principal, Principal) else None
