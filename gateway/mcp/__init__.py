"""The MCP front: a thin adapter between the Streamable HTTP wire (both protocol eras) and the core."""

from gateway.mcp.front import McpFront
from gateway.mcp.sessions import SessionLimits

__all__ = ["McpFront", "SessionLimits"]
