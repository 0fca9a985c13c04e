"""The official `mcp` SDK client, in both protocol eras, against a real `switchboard serve`."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext

from tests.e2e.harness import Served

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]


@pytest.mark.parametrize("mode", ERAS)
async def test_lists_and_calls_tools(served: Served, mode: str) -> None:
    async with Client(served.mcp, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"fx___add", "fx___move", "fx___with_progress"} <= set(tools)
        assert tools["fx___add"].description == "Add two integers."
        result = await client.call_tool("fx___add", {"a": 40, "b": 2})
        assert not result.is_error
        assert result.structured_content == {"result": 42}
        moved = await client.call_tool("fx___move", {"p": {"x": 1, "y": 2}, "dx": 3})
        assert moved.structured_content == {"x": 4, "y": 2}


@pytest.mark.parametrize("mode", ERAS)
async def test_errors_are_is_error_results_or_protocol_errors(served: Served, mode: str) -> None:
    async with Client(served.mcp, mode=mode) as client:
        failed = await client.call_tool("fx___fails", {"reason": "disk full"})
        assert failed.is_error
        assert "disk full" in failed.content[0].text  # type: ignore[union-attr]
        invalid = await client.call_tool("fx___add", {"a": "forty"})
        assert invalid.is_error
        assert "argument 'a'" in invalid.content[0].text  # type: ignore[union-attr]
        with pytest.raises(Exception, match="Unknown tool 'fx___nope'"):
            await client.call_tool("fx___nope", {})


@pytest.mark.parametrize("mode", ERAS)
async def test_progress_reaches_the_client(served: Served, mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(served.mcp, mode=mode) as client:
        result = await client.call_tool("fx___with_progress", {"steps": 3}, progress_callback=on_progress)
    assert result.structured_content == {"steps": 3}
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


@pytest.mark.parametrize("mode", ERAS)
async def test_elicitation_round_trip(served: Served, mode: str) -> None:
    asked: list[str] = []

    async def on_elicit(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async with Client(served.mcp, mode=mode, elicitation_callback=on_elicit) as client:
        result = await client.call_tool("fx___ask_name", {})
    assert result.content[0].text == "hello Ada"  # type: ignore[union-attr]
    assert asked == ["What is your name?"]


@pytest.mark.parametrize("mode", ERAS)
async def test_sampling_round_trip(served: Served, mode: str) -> None:
    async def on_sample(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        text = params.messages[0].content.text  # type: ignore[union-attr]
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=text.upper()), model="test-model"
        )

    async with Client(served.mcp, mode=mode, sampling_callback=on_sample) as client:
        result = await client.call_tool("fx___ask_model", {"question": "why?"})
    assert result.content[0].text == "model said: WHY?"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ERAS)
async def test_named_gateway_serves_only_its_own_targets(served: Served, mode: str) -> None:
    async with Client(served.gateway("second"), mode=mode) as client:
        names = [t.name for t in (await client.list_tools()).tools]
    assert names == ["math___add"]
