"""The resilience stage on its own: retries only for tools the configuration declares
idempotent (never on an upstream's word), the breaker's three states, one deadline that
retries cannot stretch, and the per-target concurrency cap."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from gateway.core.catalog import Catalog
from gateway.core.errors import UpstreamUnavailable
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, ToolCall, ToolResult, ToolSpec
from gateway.stages.resilience import GatewayResilience, Settings

pytestmark = pytest.mark.anyio


class Flaky(ToolProvider):
    """Fails to be reached `fail` times, then answers; `slow` sleeps."""

    kind = "test"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.fail = 0
        self.calls = 0
        self.in_flight = 0
        self.most = 0

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return [
            ToolSpec(name="get", input_schema={"type": "object"}, annotations={"idempotentHint": True}),
            ToolSpec(name="post", input_schema={"type": "object"}),
            ToolSpec(name="slow", input_schema={"type": "object"}, annotations={"readOnlyHint": True}),
        ]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        self.calls += 1
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            if call.name == "slow":
                await anyio.sleep(float(call.arguments.get("seconds", 0.1)))
            elif self.fail > 0:
                self.fail -= 1
                raise UpstreamUnavailable("connection refused")
            return ToolResult.text("ok")
        finally:
            self.in_flight -= 1


DECLARED = {("t", "get"): {"idempotentHint": True}, ("t", "slow"): {"readOnlyHint": True}}


async def setup(declared: object = DECLARED, **settings: float) -> tuple[Flaky, GatewayResilience]:
    provider = Flaky("t")
    cat = Catalog({"t": provider})
    await cat.refresh(CallContext())
    return provider, GatewayResilience(cat, Settings(**settings), declared)  # type: ignore[arg-type]


async def run(stage: GatewayResilience, provider: Flaky, tool: str, **args: float) -> str:
    async def terminal(call: ToolCall, ctx: CallContext) -> ToolResult:
        return await provider.call_tool(call, ctx)

    try:
        result = await stage(ToolCall(tool, dict(args), public_name=f"t___{tool}"), CallContext(), terminal)
    except UpstreamUnavailable as exc:
        return f"unavailable: {exc}"
    return str(result.content[0]["text"])


async def test_retries_only_what_is_idempotent() -> None:
    provider, stage = await setup(failures=10)
    provider.fail = 2
    assert await run(stage, provider, "get") == "ok" and provider.calls == 3
    provider.fail, provider.calls = 1, 0
    assert (await run(stage, provider, "post")).startswith("unavailable") and provider.calls == 1


async def test_an_upstreams_idempotent_hint_never_earns_a_retry() -> None:
    provider, stage = await setup(declared={}, failures=10)  # `get` says idempotentHint itself
    provider.fail = 1
    assert (await run(stage, provider, "get")).startswith("unavailable") and provider.calls == 1


async def test_the_breaker_opens_fails_fast_and_recovers() -> None:
    provider, stage = await setup(failures=3, open_seconds=0.3, retries=0)
    provider.fail = 100
    for _ in range(3):
        assert "connection refused" in await run(stage, provider, "post")
    calls = provider.calls
    fast = await run(stage, provider, "post")
    assert "circuit open after 3 failures" in fast and provider.calls == calls  # not called at all
    await anyio.sleep(0.35)
    provider.fail = 0  # the upstream is back: the half-open trial closes the breaker
    assert await run(stage, provider, "post") == "ok"
    assert await run(stage, provider, "post") == "ok"


async def test_one_deadline_for_the_whole_call() -> None:
    provider, stage = await setup(call_timeout_seconds=0.3)
    answer = await run(stage, provider, "slow", seconds=5)
    assert "did not finish within the call's deadline (0.3 s)" in answer
    assert provider.calls == 1  # the deadline ended it; no retry started after it


async def test_the_concurrency_cap_per_target() -> None:
    provider, stage = await setup(max_concurrent=2)
    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(run, stage, provider, "slow")
    assert provider.calls == 6 and provider.most == 2
