"""Tool search through a real `switchboard serve` (ADR 0047): an MCP SDK client of either era
sees only the search tool and the pinned ones, finds a tool by a plain request, calls it by
name; another caller's policies hide what they may not call; each search is audited and traced
like any call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client

from tests.e2e.harness import Served, keyed_client, serve
from tests.fixtures.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.anyio
Live = tuple[Served, OtlpReceiver]

CONFIG = """
gateways:
  - name: default
    auth: {kind: api_key}
    search: {progressive: true, pinned: ["fx___move"]}
    policies:
      - 'permit(principal == Switchboard::User::"ops", action, resource);'
      - 'permit(principal == Switchboard::User::"guest", action in
          [Switchboard::Action::"switchboard_search", Switchboard::Action::"fx___move"], resource);'
    targets:
      - name: fx
        kind: function
        functions:
          - tests.fixtures.functions:add
          - tests.fixtures.functions:move
          - tests.fixtures.functions:blocking_sleep
  - name: found
    search: {progressive: true, list_found: true}
    targets:
      - name: fx
        kind: function
        functions: ["tests.fixtures.functions:add", "tests.fixtures.functions:move"]
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, OtlpReceiver]]:
    root = tmp_path_factory.mktemp("search")
    (root / "switchboard.yaml").write_text(CONFIG)
    with (
        OtlpReceiver() as receiver,
        serve(root / "data", root / "switchboard.yaml", env=receiver.env) as served,
    ):
        yield served, receiver


async def found(mcp: Client, query: str) -> list[dict[str, Any]]:
    result = await mcp.call_tool("switchboard_search", {"query": query})
    assert not result.is_error, result
    assert isinstance(result.structured_content, dict)
    tools: list[dict[str, Any]] = result.structured_content["tools"]
    assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return tools


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_client_finds_a_tool_and_calls_it_by_name(
    live: tuple[Served, OtlpReceiver], mode: str
) -> None:
    served, receiver = live
    async with keyed_client(served, "ops", mode) as mcp:
        listed = [t.name for t in (await mcp.list_tools()).tools]
        assert listed == ["fx___move", "switchboard_search"]
        tools = await found(mcp, "add two integers together")
        assert tools[0]["name"] == "fx___add" and tools[0]["inputSchema"]["required"] == ["a"]
        added = await mcp.call_tool("fx___add", {"a": 40, "b": 2})
        assert added.structured_content == {"result": 42}
        also = await mcp.call_tool("x_amz_bedrock_agentcore_search", {"query": "sleep for some seconds"})
        assert also.structured_content is not None
        assert also.structured_content["tools"][0]["name"] == "fx___blocking_sleep"
    with anyio.fail_after(20):
        while not any(s.attributes.get("gen_ai.tool.name") == "switchboard_search" for s in receiver.spans):  # noqa: ASYNC110
            await anyio.sleep(0.1)
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        query = {"gateway": "default", "tool": "switchboard_search"}
        audit = (await admin.get("/admin/v1/audit", params=query)).json()["records"]
    assert audit and all(r["subject"] == "ops" and r["outcome"] == "ok" for r in audit)


async def test_a_tool_the_callers_policies_deny_is_never_found(live: Live) -> None:
    served, _ = live
    async with keyed_client(served, "guest") as mcp:
        assert [t.name for t in (await mcp.list_tools()).tools] == ["fx___move", "switchboard_search"]
        for query in ("add two integers together", "sleep for some seconds", "add", "blocking"):
            assert [t["name"] for t in await found(mcp, query)] in ([], ["fx___move"])
        denied = await mcp.call_tool("fx___add", {"a": 1})
        assert denied.is_error


async def test_a_2025_session_gets_the_tools_it_found_added_to_its_list(live: Live) -> None:
    """list_found: a handshake-era session hears list_changed after a search, and its list then
    holds what it found (for clients that call listed tools only); another session's list, and a
    2026-era client's (no session), stay the search tool alone."""
    served, _ = live
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    url = served.gateway("found")
    async with (
        Client(url, mode="legacy", message_handler=on_message) as mcp,
        Client(url, mode="legacy") as other,
        Client(url, mode="2026-07-28") as modern,
    ):
        assert [t.name for t in (await mcp.list_tools()).tools] == ["switchboard_search"]
        tools = await found(mcp, "add two integers together")
        with anyio.fail_after(15):
            await changed.wait()
        listed = [t.name for t in (await mcp.list_tools()).tools]
        assert listed[0] == "switchboard_search" and set(listed[1:]) == {t["name"] for t in tools}
        assert "fx___add" in listed
        assert (await mcp.call_tool("fx___add", {"a": 1, "b": 2})).structured_content == {"result": 3}
        assert [t.name for t in (await other.list_tools()).tools] == ["switchboard_search"]
        assert (await found(modern, "add two integers"))[0]["name"] == "fx___add"
        assert [t.name for t in (await modern.list_tools()).tools] == ["switchboard_search"]
