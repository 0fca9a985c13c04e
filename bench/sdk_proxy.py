"""The reference: a minimal proxy on the `mcp` SDK's own Streamable HTTP server.

One tool, `getItem`, forwarding to the local upstream with one shared httpx2
client: what a gateway built directly on the SDK costs per hop.

    python bench/sdk_proxy.py PORT UPSTREAM_URL
"""

from __future__ import annotations

import sys
from typing import Any

import httpx2
import mcp_types as types
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server

UPSTREAM = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8090"
client = httpx2.AsyncClient(base_url=UPSTREAM)
TOOL = types.Tool(
    name="items___getItem",
    description="Read one item.",
    input_schema={"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
)


async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[TOOL])


async def call_tool(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    item = (params.arguments or {})["id"]
    response = await client.get(f"/items/{item}")
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=response.text)], structured_content=response.json()
    )


server: Server[Any] = Server("sdk-proxy", on_list_tools=list_tools, on_call_tool=call_tool)
app = server.streamable_http_app(host="127.0.0.1")

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
