"""A call is run once, whichever path serves it: the fast path is chosen before a call starts
(only for clients that cannot be asked anything mid-call), and a call that started there is
answered there, never handed to the SDK path to run again (SECURITY.md: a call that has started
upstream is never run a second time by a fallback path)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.e2e.harness import ACCEPT, INIT, Served, serve_config

pytestmark = pytest.mark.anyio

CONFIG = """
gateways:
  - name: default
    targets:
      - name: cx
        kind: function
        functions:
          - tests.fixtures.counting:ask_counted
          - tests.fixtures.counting:log_counted
          - tests.fixtures.counting:runs
"""
MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def counting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_config(tmp_path_factory.mktemp("counting"), CONFIG) as served:
        yield served


async def runs(client: Client, key: str) -> int:
    result = await client.call_tool("cx___runs", {"key": key})
    assert result.structured_content is not None
    return int(result.structured_content["result"])


@pytest.mark.parametrize("mode", MODES)
async def test_a_tool_asking_a_plain_client_is_not_run_again(counting: Served, mode: str) -> None:
    key = f"ask-{mode}"
    async with Client(counting.mcp, mode=mode) as client:  # declares no elicitation
        with pytest.raises(MCPError, match="elicitation"):
            await client.call_tool("cx___ask_counted", {"key": key})
        assert await runs(client, key) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_tool_logging_to_a_plain_client_is_not_run_again(counting: Served, mode: str) -> None:
    key = f"log-{mode}"
    async with Client(counting.mcp, mode=mode) as client:
        result = await client.call_tool("cx___log_counted", {"key": key})
        assert not result.is_error and isinstance(result.content[0], types.TextContent)
        assert result.content[0].text == f"logged {key}"
        assert await runs(client, key) == 1


async def test_a_client_that_can_be_asked_is_served_by_the_sdk_path_once(counting: Served) -> None:
    async def on_elicit(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async with Client(counting.mcp, mode="legacy", elicitation_callback=on_elicit) as client:
        result = await client.call_tool("cx___ask_counted", {"key": "asked"})
        assert isinstance(result.content[0], types.TextContent) and result.content[0].text == "hello Ada"
        assert await runs(client, "asked") == 1


async def test_a_raw_session_call_that_asks_is_answered_once(counting: Served) -> None:
    """A handshake-era session of a client that declared nothing (as bench clients are)."""
    async with httpx2.AsyncClient(timeout=30) as http:
        made = await http.post(counting.mcp, json=INIT, headers=ACCEPT)
        headers = {
            **ACCEPT,
            "Mcp-Session-Id": made.headers["mcp-session-id"],
            "MCP-Protocol-Version": "2025-11-25",
        }
        await http.post(
            counting.mcp, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )
        listed = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        assert (await http.post(counting.mcp, json=listed, headers=headers)).status_code == 200
        params = {"name": "cx___ask_counted", "arguments": {"key": "raw"}}
        asked = await http.post(
            counting.mcp,
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params},
            headers=headers,
        )
        assert asked.status_code == 200
        assert asked.headers["content-type"].startswith("application/json")  # served by the fast path
        assert "elicitation" in asked.json()["error"]["message"]
        params = {"name": "cx___runs", "arguments": {"key": "raw"}}
        counted = await http.post(
            counting.mcp,
            json={"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params},
            headers=headers,
        )
        assert counted.json()["result"]["structuredContent"] == {"result": 1}
