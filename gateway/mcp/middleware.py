"""What the MCP front puts around the SDK's request handlers: each request's span (the fast
path makes its own), and 2026-era results typed (``resultType``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from starlette.types import Scope

from gateway.mcp.channel import MODERN
from gateway.mcp.forms import SCOPE_KEY
from gateway.telemetry import mcp_span, tool_failed


def typed_result(handler: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
    """2026-07-28 results say what they are (``resultType``); our handlers answer plain dicts."""

    async def wrapped(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
        result = await handler(ctx, params)
        if isinstance(result, dict) and ctx.protocol_version >= MODERN and "resultType" not in result:
            result["resultType"] = "complete"
        return result

    return wrapped


class Traced:
    """The span of each request on the SDK path (the fast path makes its own)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        scope = ctx.request.scope if ctx.request is not None else {}
        if ctx.method == "tools/list" and header(scope, b"mcp-method") == "tools/call":
            # The SDK lists tools itself to check a call's Mcp-Param headers: not a request.
            return await call_next(ctx)
        tenant, gateway = scope.get("state", {}).get(SCOPE_KEY) or ("", "")
        name = ctx.params.get("name") if ctx.params else None
        with mcp_span(
            ctx.method,
            tenant=tenant,
            gateway=gateway,
            target=name if isinstance(name, str) else None,
            request_id=ctx.request_id,
            meta=ctx.meta,
            headers=scope.get("headers", []),
            protocol_version=ctx.protocol_version,
            session=header(scope, MCP_SESSION_ID_HEADER.lower().encode()) if scope else None,
        ) as span:
            result = await call_next(ctx)
            if ctx.method == "tools/call":
                tool_failed(span, result)
            return result


def header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return str(v.decode("latin-1"))
    return None
