from __future__ import annotations

import threading

import anyio
import pytest

from gateway.config import FunctionRef, FunctionTarget
from gateway.core.errors import ConfigError, ToolExecutionError
from gateway.core.types import CallContext, ToolCall
from gateway.providers.function import FunctionProvider

pytestmark = pytest.mark.anyio

F = "tests.fixtures.functions"


def provider(*functions: str | FunctionRef) -> FunctionProvider:
    return FunctionProvider(FunctionTarget(name="f", kind="function", functions=list(functions)))


async def test_schema_and_description_from_type_hints() -> None:
    p = provider(f"{F}:add", f"{F}:move")
    tools = {t.name: t for t in await p.list_tools(CallContext())}
    assert tools["add"].description == "Add two integers."
    assert tools["add"].input_schema == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 1}},
        "required": ["a"],
        "additionalProperties": False,
    }
    move = tools["move"].input_schema
    assert move["properties"]["p"] == {"$ref": "#/$defs/Point"}
    assert move["$defs"]["Point"]["required"] == ["x", "y"]


async def test_results_become_structured_and_text() -> None:
    p = provider(f"{F}:add", f"{F}:move")
    r = await p.call_tool(ToolCall("add", {"a": 2}), CallContext())
    assert r.structured == {"result": 3} and r.content[0]["text"] == "3"
    r = await p.call_tool(ToolCall("move", {"p": {"x": 1, "y": 2}, "dx": 5}), CallContext())
    assert r.structured == {"x": 6, "y": 2}
    assert r.content[0]["text"] == '{"x":6,"y":2}'


async def test_sync_functions_run_off_the_event_loop() -> None:
    p = provider(f"{F}:blocking_sleep")
    ticks = 0
    done = threading.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        await p.call_tool(ToolCall("blocking_sleep", {"seconds": 0.2}), CallContext())
        done.set()
    assert ticks >= 5  # the loop kept running while the function slept


async def test_exception_propagates_for_the_pipeline_to_map() -> None:
    p = provider(f"{F}:fails")
    with pytest.raises(ValueError, match="boom"):
        await p.call_tool(ToolCall("fails", {"reason": "boom"}), CallContext())


async def test_bad_arguments_are_tool_errors() -> None:
    p = provider(f"{F}:add")
    with pytest.raises(ToolExecutionError, match="Invalid argument 'a'"):
        await p.call_tool(ToolCall("add", {"a": "x"}), CallContext())


def test_import_errors_name_the_function() -> None:
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module'"):
        provider("no_such_module:f")
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        provider(f"{F}:nope")


async def test_explicit_name_description_and_schema() -> None:
    p = provider(
        FunctionRef(function=f"{F}:add", name="plus", description="Plus.", input_schema={"type": "object"})
    )
    (tool,) = await p.list_tools(CallContext())
    assert (tool.name, tool.description, dict(tool.input_schema)) == ("plus", "Plus.", {"type": "object"})


def test_duplicate_function_names_refused() -> None:
    with pytest.raises(ConfigError, match="two functions are named 'add'"):
        provider(f"{F}:add", f"{F}:add")
