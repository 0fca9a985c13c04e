"""Rate limits on their own: per caller and per tool, in memory and in Redis, and a Redis that
fails counted locally (never unlimited)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from gateway.core.catalog import Catalog
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, Principal, ToolCall, ToolResult, ToolSpec
from gateway.stages.ratelimit import Counters, GatewayLimits, RateLimited, parse_rule, shared_counters
from tests.support.services import redis_url

pytestmark = pytest.mark.anyio


class Two(ToolProvider):
    kind = "test"

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return [ToolSpec(name=n, input_schema={"type": "object"}) for n in ("a", "b")]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text("ok")


async def run(limits: GatewayLimits, tool: str, user: str) -> str:
    async def terminal(call: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text("ok")

    try:
        await limits(
            ToolCall(tool, {}, public_name=f"t___{tool}"),
            CallContext(principal=Principal(subject=user)),
            terminal,
        )
    except RateLimited as exc:
        return f"limited {exc.retry_after}"
    return "ok"


async def limits_with(counters: Counters, *rules: tuple[str, str, Sequence[str]]) -> GatewayLimits:
    cat = Catalog({"t": Two("t")})
    await cat.refresh(CallContext())
    gateway = f"g-{uuid.uuid4().hex[:8]}"  # fresh counters in a shared store
    return GatewayLimits("default", gateway, [parse_rule(*r) for r in rules], counters, cat)


async def check(counters: Counters) -> None:
    limits = await limits_with(counters, ("2/minute", "caller", ()), ("3/minute", "tool", ["t___b"]))
    assert [await run(limits, "a", "alice") for _ in range(3)] == ["ok", "ok", "limited 60"]
    assert await run(limits, "a", "bob") == "ok"  # per caller: bob has his own two
    assert [await run(limits, "b", u) for u in ("carol", "dave", "erin", "fay")] == [
        "ok",
        "ok",
        "ok",
        "limited 60",
    ]


async def test_in_memory() -> None:
    await check(Counters())


async def test_in_redis() -> None:
    counters = Counters(shared_counters(redis_url()))
    await check(counters)
    assert counters.fallbacks == 0
    await counters.close()


async def test_a_failing_redis_still_limits() -> None:
    counters = Counters(shared_counters("redis://127.0.0.1:1/0"))  # nothing listens there
    limits = await limits_with(counters, ("2/minute", "caller", ()))
    assert [await run(limits, "a", "alice") for _ in range(3)] == ["ok", "ok", "limited 60"]
    assert counters.fallbacks == 3
    await counters.close()


def test_a_bad_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="not like '100/minute'"):
        parse_rule("lots", "caller", ())


async def test_in_a_group_the_most_specific_limit_counts_a_call() -> None:
    """AgentCore's entries: alice has 3 a minute, everyone else 1; a call is counted once."""
    cat = Catalog({"t": Two("t")})
    await cat.refresh(CallContext())
    rules = [
        parse_rule("1/minute", "caller", (), (), "per-user"),
        parse_rule("3/minute", "caller", (), ("alice",), "per-user"),
    ]
    limits = GatewayLimits("default", f"g-{uuid.uuid4().hex[:8]}", rules, Counters(), cat)
    assert [await run(limits, "a", "alice") for _ in range(4)] == ["ok", "ok", "ok", "limited 60"]
    assert [await run(limits, "a", "bob") for _ in range(2)] == ["ok", "limited 60"]


async def test_two_rules_with_the_same_limit_over_different_tools_count_apart() -> None:
    limits = await limits_with(
        Counters(), ("1/minute", "caller", ["t___a"]), ("1/minute", "caller", ["t___b"])
    )
    assert [await run(limits, tool, "alice") for tool in ("a", "b")] == ["ok", "ok"]
    assert await run(limits, "a", "alice") == "limited 60"


async def test_a_rate_of_zero_blocks() -> None:
    limits = await limits_with(Counters(), ("0/minute", "caller", ["t___b"]))
    assert await run(limits, "a", "alice") == "ok"
    assert await run(limits, "b", "alice") == "limited 60"
