"""The result cache on its own (memory and Redis): per caller, read-only tools only,
successful results only, and a changed target never served stale."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from gateway.cache import CacheRule, GatewayCache, result_store
from gateway.core.catalog import Catalog
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, Principal, ToolCall, ToolResult, ToolSpec
from tests.support.services import redis_url

pytestmark = pytest.mark.anyio


class Counting(ToolProvider):
    kind = "test"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.calls = 0

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return [
            ToolSpec(name="read", input_schema={"type": "object"}, annotations={"readOnlyHint": True}),
            ToolSpec(name="write", input_schema={"type": "object"}),
            ToolSpec(name="flaky", input_schema={"type": "object"}, annotations={"readOnlyHint": True}),
        ]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        self.calls += 1
        if call.name == "flaky":
            return ToolResult.error("upstream hiccup")
        return ToolResult(content=({"type": "text", "text": f"#{self.calls} for {ctx.principal.subject}"},))


async def check(store_url: str | None) -> None:
    provider = Counting("t")
    cat = Catalog({"t": provider})
    await cat.refresh(CallContext())
    gateway = f"g-{uuid.uuid4().hex[:8]}"
    store = result_store(store_url)
    cache = GatewayCache("default", gateway, [CacheRule((), 60)], store, cat, {"t": "v1"})

    async def call(tool: str, user: str, args: dict[str, int] | None = None) -> str:
        entry, tool_call = cat.resolve(f"t___{tool}", args or {})
        result = await cache.stage(
            tool_call, CallContext(principal=Principal(subject=user)), entry_call(entry)
        )
        return str(result.content[0]["text"])

    def entry_call(entry: object) -> object:
        async def run(c: ToolCall, ctx: CallContext) -> ToolResult:
            return await provider.call_tool(c, ctx)

        return run

    assert await call("read", "alice") == "#1 for alice"
    assert await call("read", "alice") == "#1 for alice"  # a hit
    assert await call("read", "bob") == "#2 for bob"  # never alice's answer
    assert await call("read", "alice", {"page": 2}) == "#3 for alice"  # other arguments, other key
    assert await call("write", "alice") == "#4 for alice"
    assert await call("write", "alice") == "#5 for alice"  # not read-only: never cached
    assert await call("flaky", "alice") == "upstream hiccup"
    assert provider.calls == 6 and await call("flaky", "alice") == "upstream hiccup" and provider.calls == 7
    cache.fingerprints["t"] = "v2"  # the target changed
    assert await call("read", "alice") == "#8 for alice"
    assert cache.hits == 1
    await store.close()


async def test_in_memory() -> None:
    await check(None)


async def test_in_redis() -> None:
    await check(redis_url())
