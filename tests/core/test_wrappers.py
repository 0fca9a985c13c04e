from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.core.errors import ToolNotFound
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, ToolCall, ToolResult, ToolSpec
from gateway.core.wrappers import Filtered, Overridden

pytestmark = pytest.mark.anyio

SCHEMA = {
    "type": "object",
    "properties": {"q": {"type": "string"}, "tenant": {"type": "string"}},
    "required": ["q", "tenant"],
}


class Recorder(ToolProvider):
    kind = "test"

    def __init__(self) -> None:
        super().__init__("r")
        self.calls: list[ToolCall] = []

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return [ToolSpec("search", "Search.", SCHEMA), ToolSpec("drop", "Drop.")]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        self.calls.append(call)
        return ToolResult.text("ok")


async def test_fixed_arguments_are_hidden_and_always_sent() -> None:
    inner = Recorder()
    p = Overridden(
        inner, {"search": {"name": "find", "description": "Find.", "arguments": {"tenant": "acme"}}}
    )
    tools = {t.name: t for t in await p.list_tools(CallContext())}
    assert tools["find"].description == "Find."
    assert tools["find"].input_schema == {
        "type": "object",
        "properties": {"q": {"type": "string"}},
        "required": ["q"],
    }
    await p.call_tool(ToolCall("find", {"q": "x", "tenant": "evil"}), CallContext())
    assert inner.calls[-1].name == "search" and inner.calls[-1].arguments == {"q": "x", "tenant": "acme"}
    with pytest.raises(ToolNotFound):
        await p.call_tool(ToolCall("search", {"q": "x"}), CallContext())  # the old name is gone


async def test_a_tool_renamed_to_its_own_name_can_be_called() -> None:
    inner = Recorder()
    p = Overridden(inner, {"search": {"name": "search", "description": "Search well."}})
    assert [t.name for t in await p.list_tools(CallContext())] == ["search", "drop"]
    await p.call_tool(ToolCall("search", {"q": "x", "tenant": "t"}), CallContext())
    assert inner.calls[-1].name == "search"


async def test_filtered_hides_and_refuses() -> None:
    p = Filtered(Recorder(), include=["se*"])
    assert [t.name for t in await p.list_tools(CallContext())] == ["search"]
    with pytest.raises(ToolNotFound):
        await p.call_tool(ToolCall("drop", {}), CallContext())
