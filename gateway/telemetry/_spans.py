"""The spans the gateway makes, named and attributed after the OpenTelemetry MCP and GenAI
semantic conventions (``mcp.method.name``, ``gen_ai.tool.name``, ``gen_ai.operation.name``,
``mcp.session.id``, ``jsonrpc.request.id``, ``error.type``...), plus ``switchboard.*`` for
what only a gateway knows (tenant, gateway, target, the pipeline's decisions).

- One SERVER span per MCP JSON-RPC request, ``{method} {tool}``. Its parent is the trace
  context in the request's ``params._meta`` (SEP-414), else the HTTP ``traceparent``
  header, else none; when both are present and differ, the HTTP context is linked.
- One INTERNAL span per pipeline decision (policy, rate limit, interceptors, approval,
  cache), covering the decision only: it ends when the stage passes the call on.
- One CLIENT span per HTTP request to an OpenAPI, HTTP or interceptor upstream (see
  ``_http``), which also carries the context there. MCP upstreams get the ``mcp`` SDK's
  ``MCP send ...`` CLIENT span, with the context in ``_meta`` (the SDK posts from a task
  of its own, outside the call's context).
- One SERVER span per other HTTP request (admin API, trace viewer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Link, Span, SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.telemetry._metrics import current
from gateway.telemetry._record import TENANT_ATTR
from gateway.telemetry._tracing import enabled, tracer

# Clients' baggage is not taken: it would travel on to every upstream as headers they set.
_PROPAGATED = (b"traceparent", b"tracestate")
# The methods MCP defines: metrics name these, and `other` for anything a client makes up.
METHODS = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "subscriptions/listen",
        "server/discover",
        "tasks/get",
        "tasks/update",
        "tasks/cancel",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)


def http_context(headers: Sequence[tuple[bytes, bytes]]) -> otel_context.Context | None:
    """The W3C trace context an HTTP request carries in its headers, if any."""
    carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in _PROPAGATED}
    return _valid(extract(carrier)) if "traceparent" in carrier else None


def meta_context(meta: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The W3C trace context an MCP request carries in ``params._meta`` (SEP-414), if any."""
    if not meta or not isinstance(meta.get("traceparent"), str):
        return None
    carrier = {k: v for k in ("traceparent", "tracestate") if isinstance(v := meta.get(k), str)}
    return _valid(extract(carrier))


def _valid(ctx: otel_context.Context) -> otel_context.Context | None:
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


@contextmanager
def mcp_span(
    method: str,
    *,
    tenant: str,
    gateway: str,
    target: str | None = None,
    request_id: Any = None,
    meta: Mapping[str, Any] | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    protocol_version: str | None = None,
    session: str | None = None,
    abandon: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> Iterator[Span | None]:
    """The span of one MCP request, current for what runs inside (None: tracing is off);
    counted in ``switchboard_mcp_requests``. An ``abandon`` exception (the request goes
    another way and is served, and counted, there) leaves the span unfinished: never exported.
    """
    metrics = current()
    if not enabled():
        outcome = "ok"
        try:
            yield None
        except abandon:
            metrics = None
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            if metrics is not None:
                metrics.requests.labels(tenant, gateway, _label(method), outcome).inc()
        return
    from_meta, from_http = meta_context(meta), http_context(headers)
    parent = from_meta or from_http
    links = []
    if from_meta is not None and from_http is not None:
        http_span = trace.get_current_span(from_http).get_span_context()
        if http_span.trace_id != trace.get_current_span(from_meta).get_span_context().trace_id:
            links.append(Link(http_span))
    attributes: dict[str, Any] = {
        "mcp.method.name": method,
        TENANT_ATTR: tenant,
        "switchboard.gateway": gateway,
    }
    if request_id is not None:
        attributes["jsonrpc.request.id"] = str(request_id)
    if protocol_version:
        attributes["mcp.protocol.version"] = protocol_version
    if session:
        attributes["mcp.session.id"] = session
    if method == "tools/call":
        attributes["gen_ai.operation.name"] = "execute_tool"
        if target:
            attributes["gen_ai.tool.name"] = target
    elif method == "prompts/get" and target:
        attributes["gen_ai.prompt.name"] = target
    name = f"{method} {target}" if target and method in ("tools/call", "prompts/get") else method
    span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes, links=links)
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    finished, outcome = True, "ok"
    try:
        yield span
    except abandon:
        finished = False
        raise
    except BaseException as exc:
        outcome = "error"
        code = getattr(getattr(exc, "error", None), "code", None)  # a JSON-RPC error (MCPError)
        if isinstance(code, int):
            span.set_attribute("rpc.response.status_code", str(code))
            fail(span, str(code), str(getattr(exc.error, "message", "")))  # type: ignore[attr-defined]
        else:
            fail(span, type(exc).__qualname__, str(exc))
        raise
    finally:
        otel_context.detach(token)
        if finished:
            span.end()
            if metrics is not None:
                metrics.requests.labels(tenant, gateway, _label(method), outcome).inc()


def tool_failed(span: Span | None, result: Any) -> None:
    """A tools/call answered with ``isError``: its span says ``tool_error`` (the pipeline's
    telemetry stage says so with the reason; this covers answers made before the pipeline,
    such as arguments that fail the tool's schema)."""
    if span is None or not isinstance(result, dict) or result.get("isError") is not True:
        return
    status = getattr(span, "status", None)
    if status is None or status.status_code != StatusCode.ERROR:
        fail(span, "tool_error")


def _label(method: str) -> str:
    return method if method in METHODS else "other"


def fail(span: Span, error_type: str, message: str | None = None) -> None:
    """Mark a span failed the conventional way (``error.type`` and an ERROR status)."""
    span.set_attribute("error.type", error_type)
    span.set_status(StatusCode.ERROR, message[:500] if message else None)


class HttpSpans:
    """ASGI middleware: a SERVER span for each HTTP request it wraps (admin API, viewer)."""

    def __init__(self, app: ASGIApp, tenant_of: Callable[[Scope], str | None] | None = None) -> None:
        """``tenant_of``: the tenant a request is known to be for as it starts (its span is then
        filed in that tenant's traces, with everything under it)."""
        self.app = app
        self.tenant_of = tenant_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not enabled():
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": scope.get("path", "")}
        tenant = self.tenant_of(scope) if self.tenant_of is not None else None
        if tenant is not None:
            attributes[TENANT_ATTR] = tenant
        span = tracer.start_span(
            method,
            context=http_context(scope.get("headers", [])),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span))

        async def send_(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    fail(span, str(status))
            await send(message)

        try:
            await self.app(scope, receive, send_)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template:
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
            otel_context.detach(token)
            span.end()


@contextmanager
def tool_span(tool: str, *, tenant: str, gateway: str, via: str) -> Iterator[Span | None]:
    """The span of a tool call a front other than MCP's makes (``via``: the A2A agent, say),
    under the current span, named and described as an MCP ``tools/call`` span is."""
    if not enabled():
        yield None
        return
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        TENANT_ATTR: tenant,
        "switchboard.gateway": gateway,
        "switchboard.via": via,
    }
    span = tracer.start_span(f"tools/call {tool}", kind=SpanKind.INTERNAL, attributes=attributes)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except BaseException as exc:
        fail(span, type(exc).__qualname__, str(exc))
        raise
    finally:
        otel_context.detach(token)
        span.end()


def tag_tenant(tenant: str) -> None:
    """Put the current span (an admin request's) in ``tenant``'s traces."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(TENANT_ATTR, tenant)
