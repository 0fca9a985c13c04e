"""Cedar policies on their own: validation against the catalog, decisions, what tools/list shows."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.core.catalog import Catalog
from gateway.core.errors import ConfigError
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, Principal, ToolCall, ToolResult, ToolSpec
from gateway.policy import Denied, GatewayPolicy

pytestmark = pytest.mark.anyio


class Tickets(ToolProvider):
    kind = "test"

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        amount = {"type": "object", "properties": {"amount": {"type": "integer"}, "note": {"type": "string"}}}
        return [
            ToolSpec(name="read", input_schema={"type": "object"}),
            ToolSpec(name="refund", input_schema=amount),
        ]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text(f"ran {call.name}")


POLICIES = [
    'permit(principal, action == Switchboard::Action::"t___read", resource);',
    'permit(principal, action == Switchboard::Action::"t___refund", resource)'
    ' when { principal.scopes.contains("refunds") };',
    'forbid(principal, action == Switchboard::Action::"t___refund", resource)'
    " when { context has amount && context.amount > 500 };",
]
ALICE = Principal(subject="alice")
CLERK = Principal(subject="bob", scopes=frozenset({"refunds"}))


async def catalog() -> Catalog:
    cat = Catalog({"t": Tickets("t")})
    await cat.refresh(CallContext())
    return cat


async def test_decisions_and_visibility() -> None:
    policy = GatewayPolicy("g", POLICIES, "enforce", await catalog())
    assert policy.allows(ALICE, "t___read", "t", {})[0]
    assert not policy.allows(ALICE, "t___refund", "t", {"amount": 5})[0]  # no permit: default deny
    assert policy.allows(CLERK, "t___refund", "t", {"amount": 5})[0]
    allowed, why = policy.allows(CLERK, "t___refund", "t", {"amount": 900})
    assert not allowed and "policy2" in why  # the forbid wins, and is named
    assert policy.visible(ALICE, [("t___read", "t"), ("t___refund", "t")]) == {"t___read"}
    assert policy.visible(CLERK, [("t___read", "t"), ("t___refund", "t")]) == {"t___read", "t___refund"}


async def test_the_stage_refuses_or_only_logs() -> None:
    cat = await catalog()
    call = ToolCall("refund", {"amount": 5}, public_name="t___refund")

    async def run(c: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text("ran")

    with pytest.raises(Denied, match="does not allow t___refund"):
        await GatewayPolicy("g", POLICIES, "enforce", cat).stage(call, CallContext(principal=ALICE), run)
    logged = await GatewayPolicy("g", POLICIES, "log_only", cat).stage(
        call, CallContext(principal=ALICE), run
    )
    assert logged.content[0]["text"] == "ran"


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        ('permit(principal, action == Switchboard::Action::"t___delete", resource);', "t___delete"),
        ('permit(principal, action, resource) when { context.colour == "red" };', "colour"),
        ("permit(principal, action, resource", "does not parse"),
    ],
)
async def test_policies_that_do_not_fit_the_catalog_are_refused(policy: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        GatewayPolicy("g", [policy], "enforce", await catalog())


async def test_decisions_that_ignore_the_arguments_are_remembered() -> None:
    policy = GatewayPolicy("g", POLICIES, "enforce", await catalog())
    assert policy.allows(ALICE, "t___read", "t", {"x": 1})[0]
    assert policy.allows(ALICE, "t___read", "t", {"x": 2})[0]
    assert len(policy._decisions) == 1  # t___read's policies never look at the arguments
    assert policy.allows(CLERK, "t___refund", "t", {"amount": 5})[0]
    assert not policy.allows(CLERK, "t___refund", "t", {"amount": 900})[0]  # refund's do: decided each time
    assert len(policy._decisions) == 1
