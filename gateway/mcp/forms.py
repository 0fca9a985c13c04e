"""The wire forms the MCP front answers in: pages of a list and their cursors, tool results,
request errors as JSON-RPC errors; and the keys the front keeps in an ASGI scope."""

from __future__ import annotations

import base64
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST, MISSING_REQUIRED_CLIENT_CAPABILITY

from gateway.core.errors import AuthError, MissingClientCapability, RequestError
from gateway.core.types import ToolResult

SCOPE_KEY = "switchboard.gateway"
PRINCIPAL_KEY = "switchboard.principal"
PAGE_SIZE = 100
LIST_TTL_MS = 60_000


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        if raw.startswith("o:") and (value := int(raw[2:])) >= 0:
            return value
    except (ValueError, UnicodeDecodeError):
        pass
    raise MCPError(INVALID_PARAMS, "Invalid cursor: pass back the nextCursor of the previous page unchanged.")


def page_of(items: list[Any], cursor: str | None, key: str) -> dict[str, Any]:
    start = _offset(cursor)
    page: dict[str, Any] = {key: items[start : start + PAGE_SIZE]}
    if start + PAGE_SIZE < len(items):
        page["nextCursor"] = _cursor(start + PAGE_SIZE)
    return page


def cache_hints(page: dict[str, Any], modern: bool) -> dict[str, Any]:
    if modern:
        # Lists change through config (clients hear list_changed); they may differ per caller.
        page["ttlMs"] = LIST_TTL_MS
        page["cacheScope"] = "private"
    return page


def result_to_wire(result: ToolResult) -> dict[str, Any]:
    """A core ToolResult as a ``CallToolResult`` dict."""
    wire: dict[str, Any] = {"content": list(result.content)}
    if result.structured is not None:
        wire["structuredContent"] = result.structured
    if result.is_error:
        wire["isError"] = True
    return wire


def to_wire(exc: RequestError | AuthError, data: Any = None) -> MCPError:
    """Our request errors as JSON-RPC errors (the fronts' one mapping)."""
    if isinstance(exc, MissingClientCapability):
        return MCPError(
            MISSING_REQUIRED_CLIENT_CAPABILITY, str(exc), {"requiredCapabilities": {exc.capability: {}}}
        )
    if isinstance(exc, RequestError):
        return MCPError(INVALID_PARAMS, str(exc), data)
    return MCPError(INVALID_REQUEST, str(exc))
