"""The result cache on its own (memory and Redis): per caller, only tools the configuration
declares cacheable (an upstream's readOnlyHint counts for nothing), successful results only,
a changed target never served stale, and the in-memory store bounded in entries and bytes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from gateway.config import GatewaySpec
from gateway.core.catalog import Catalog
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, Principal, ToolCall, ToolResult, ToolSpec
from gateway.stages.cache import CacheRule, GatewayCache, MemoryResults, declared_annotations, result_store
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
            # says it is read-only; the configuration says nothing
            ToolSpec(name="hinted", input_schema={"type": "object"}, annotations={"readOnlyHint": True}),
        ]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        self.calls += 1
        if call.name == "flaky":
            return ToolResult.error("upstream hiccup")
        return ToolResult(content=({"type": "text", "text": f"#{self.calls} for {ctx.principal.subject}"},))


DECLARED = {("t", "read"): {"readOnlyHint": True}, ("t", "flaky"): {"readOnlyHint": True}}


async def check(store_url: str | None) -> None:
    provider = Counting("t")
    cat = Catalog({"t": provider})
    await cat.refresh(CallContext())
    gateway = f"g-{uuid.uuid4().hex[:8]}"
    store = result_store(store_url)
    cache = GatewayCache("default", gateway, [CacheRule((), 60)], store, cat, {"t": "v1"}, DECLARED)

    async def call(tool: str, user: str, args: dict[str, int] | None = None) -> str:
        entry, tool_call = cat.resolve(f"t___{tool}", args or {})
        result = await cache(tool_call, CallContext(principal=Principal(subject=user)), entry_call(entry))
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
    assert await call("hinted", "alice") == "#9 for alice"
    assert await call("hinted", "alice") == "#10 for alice"  # the upstream's own hint is not trusted
    await store.close()


async def test_in_memory() -> None:
    await check(None)


async def test_in_redis() -> None:
    await check(redis_url())


async def test_an_upstreams_read_only_hint_never_makes_a_tool_cacheable() -> None:
    provider = Counting("t")
    cat = Catalog({"t": provider})
    await cat.refresh(CallContext())
    store = result_store(None)
    every = GatewayCache("default", "g", [CacheRule((), 60)], store, cat, {})
    named = GatewayCache("default", "g", [CacheRule(("t___write",), 60)], store, cat, {})
    hinted, write = cat.snapshot.tools["t___hinted"], cat.snapshot.tools["t___write"]
    assert every._ttl("t___hinted", hinted) is None  # a rule for every tool: only declared ones
    assert named._ttl("t___write", write) == 60  # a rule naming the tool is the operator's word
    assert named._ttl("t___hinted", hinted) is None


def test_the_configuration_declares_annotations_through_overrides_and_tool_definitions() -> None:
    spec = GatewaySpec.model_validate(
        {
            "name": "g",
            "targets": [
                {
                    "name": "fx",
                    "kind": "function",
                    "functions": ["tests.fixtures.functions:add"],
                    "overrides": {
                        "add": {"name": "plus", "annotations": {"readOnlyHint": True}},
                        "move": {"annotations": {"idempotentHint": True}},
                    },
                }
            ],
        }
    )
    assert declared_annotations(spec.targets) == {
        ("fx", "plus"): {"readOnlyHint": True},
        ("fx", "move"): {"idempotentHint": True},
    }


async def test_the_memory_store_is_bounded_in_entries_and_bytes() -> None:
    store = MemoryResults(max_entries=3, max_bytes=100)
    for key in "abc":
        await store.set(key, "x" * 10, ttl=60)
    assert await store.get("a") == "x" * 10  # a is now the most recently used
    await store.set("d", "x" * 10, ttl=60)
    assert len(store) == 3 and await store.get("b") is None  # b was the least recently used
    await store.set("e", "y" * 80, ttl=60)  # 80 + 3 * 10 > 100: the oldest leave until it fits
    assert store.bytes <= 100 and await store.get("e") == "y" * 80 and await store.get("c") is None
    await store.set("f", "z" * 101, ttl=60)  # bigger than the whole store: not kept
    assert await store.get("f") is None and store.bytes <= 100
    await store.set("g", "é" * 40, ttl=60)  # counted in UTF-8 bytes (80)
    assert store.bytes <= 100 and await store.get("g") == "é" * 40 and await store.get("e") is None


async def test_expired_results_are_not_served() -> None:
    store = MemoryResults()
    await store.set("k", "v", ttl=0)
    assert await store.get("k") is None and len(store) == 0 and store.bytes == 0


def test_the_hub_keeps_the_result_store_it_is_given_even_while_it_is_empty() -> None:
    """An empty in-memory store is falsy (it has a length): the hub must still use it, with the
    limits the operator set, not make one of its own with the defaults."""
    from gateway.hub import Hub

    given = result_store(None, 5, 1000)
    assert not given  # empty
    assert Hub(results=given).shared.results is given
