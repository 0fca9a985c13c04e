"""Cedar policies on their own: validation against the catalog, decisions, what tools/list shows."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.core.catalog import Catalog
from gateway.core.errors import ConfigError
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, Principal, ToolCall, ToolResult, ToolSpec
from gateway.stages.policy import Denied, GatewayPolicy, Unrepresentable

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
        await GatewayPolicy("g", POLICIES, "enforce", cat)(call, CallContext(principal=ALICE), run)
    logged = await GatewayPolicy("g", POLICIES, "log_only", cat)(call, CallContext(principal=ALICE), run)
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


class Payments(ToolProvider):
    """One tool whose arguments cover every JSON type a policy can read."""

    kind = "test"

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        schema = {
            "type": "object",
            "properties": {
                "amount": {"type": "integer"},
                "price": {"type": "number"},
                "urgent": {"type": "boolean"},
                "memo": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "limits": {"type": "array", "items": {"type": "integer"}},
                "meta": {
                    "type": "object",
                    "properties": {
                        "level": {"type": "integer"},
                        "inner": {"type": "object", "properties": {"depth": {"type": "integer"}}},
                    },
                },
                "ratio": {"type": "number"},  # no policy reads it
            },
        }
        return [ToolSpec(name="pay", input_schema=schema)]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text("paid")


PAY = 'Switchboard::Action::"p___pay"'
PAYMENT_POLICIES = [
    f"permit(principal, action == {PAY}, resource);",
    f"forbid(principal, action == {PAY}, resource) when {{ context has amount && context.amount > 100 }};",
    f"forbid(principal, action == {PAY}, resource) when {{ context has price && context.price > 100 }};",
    f"forbid(principal, action == {PAY}, resource) when {{ context has urgent && context.urgent }};",
    f'forbid(principal, action == {PAY}, resource) when {{ context has memo && context.memo == "wire" }};',
    f"forbid(principal, action == {PAY}, resource) when "
    '{ context has tags && context.tags.contains("x") };',
    f"forbid(principal, action == {PAY}, resource) when "
    "{ context has limits && context.limits.contains(1000000) };",
    f"forbid(principal, action == {PAY}, resource) when "
    "{ context has meta && context.meta has level && context.meta.level > 3 };",
    f"forbid(principal, action == {PAY}, resource) when "
    "{ context has meta && context.meta has inner && context.meta.inner has depth "
    "&& context.meta.inner.depth > 1 };",
]


async def payments() -> GatewayPolicy:
    cat = Catalog({"p": Payments("p")})
    await cat.refresh(CallContext())
    return GatewayPolicy("g", PAYMENT_POLICIES, "enforce", cat)


@pytest.mark.parametrize(
    ("arguments", "allowed"),
    [
        ({"amount": 1000000}, False),  # int
        ({"amount": 1000000.0}, False),  # whole float: the same integer
        ({"amount": 1e6}, False),  # exponent form
        ({"amount": 5}, True),
        ({"amount": 5.0}, True),
        ({"amount": -(2**63)}, True),  # the edges of Cedar's range are exact
        ({"amount": 2**63 - 1}, False),
        ({"price": 1000000.0}, False),  # a `number` argument read as a whole number
        ({"urgent": True}, False),  # bool
        ({"urgent": False}, True),
        ({"memo": "wire"}, False),  # string
        ({"memo": "cash"}, True),
        ({"tags": ["a", "x"]}, False),  # array
        ({"tags": ["a"]}, True),
        ({"limits": [1, 1e6]}, False),  # array holding a whole float
        ({"meta": {"level": 5}}, False),  # object
        ({"meta": {"level": 5.0}}, False),
        ({"meta": {"level": 1}}, True),
        ({"meta": {"inner": {"depth": 2.0}}}, False),  # nested
        ({"meta": {"inner": {"depth": 1}}}, True),
        ({"ratio": 0.25, "amount": 5}, True),  # a fraction no policy reads is not the policy's business
    ],
)
async def test_every_json_type_meets_a_forbid_rule_exactly(
    arguments: dict[str, object], allowed: bool
) -> None:
    policy = await payments()
    assert policy.allows(ALICE, "p___pay", "p", arguments)[0] is allowed


@pytest.mark.parametrize(
    ("arguments", "path", "reason"),
    [
        ({"amount": 1000000.5}, "amount", "has a fraction"),  # fractional float
        ({"price": 2.5}, "price", "has a fraction"),
        ({"amount": 2**63}, "amount", "64-bit integer range"),  # huge int
        ({"amount": -(2**63) - 1}, "amount", "64-bit integer range"),
        ({"amount": 1e300}, "amount", "64-bit integer range"),  # a whole float too big
        ({"amount": float("nan")}, "amount", "not a finite number"),
        ({"amount": float("inf")}, "amount", "not a finite number"),
        ({"amount": None}, "amount", "null"),  # null
        ({"memo": "w" * 70_000}, "memo", "longer than"),  # a string too long to compare cheaply
        ({"limits": [1, 2.5]}, "limits[1]", "has a fraction"),
        ({"meta": {"level": 0.5}}, "meta.level", "has a fraction"),
        ({"meta": {"inner": {"depth": None}}}, "meta.inner.depth", "null"),
        ({"meta": {"__entity": {"type": "Switchboard::User", "id": "x"}}}, "meta.__entity", "reserved"),
        ({"meta": {"__extn": {"fn": "decimal", "arg": "1.0"}}}, "meta.__extn", "reserved"),
    ],
)
async def test_a_value_the_policy_cannot_represent_is_refused_not_dropped(
    arguments: dict[str, object], path: str, reason: str
) -> None:
    policy = await payments()
    with pytest.raises(Unrepresentable) as refused:
        policy.allows(ALICE, "p___pay", "p", arguments)
    assert refused.value.path == path and reason in refused.value.reason


async def test_the_stage_names_the_argument_it_cannot_compare() -> None:
    policy = await payments()
    call = ToolCall("pay", {"amount": 1000000.5}, public_name="p___pay")

    async def run(c: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text("ran")

    with pytest.raises(Denied, match=r"reads the argument `amount` of p___pay, and its value has a fraction"):
        await policy(call, CallContext(principal=ALICE), run)


async def test_a_forbid_that_cannot_be_evaluated_denies() -> None:
    # the catalog refuses a string where an integer is asked only after policy; the forbid's type
    # error must not skip it (Cedar skips a policy that errors, so the permit alone would allow)
    allowed, why = (await payments()).allows(ALICE, "p___pay", "p", {"amount": "1000000"})
    assert not allowed and "cannot be evaluated" in why and "policy1" in why


async def test_a_tool_that_appears_after_the_policy_was_built_has_its_arguments_checked() -> None:
    """A tool added later (an upstream's list_changed, a target that recovers) meets the rules
    that read arguments like any other: its decision is not taken once without them and kept."""
    policies = [
        "permit(principal, action, resource);",
        "forbid(principal, action, resource) when { context has amount && context.amount > 100 };",
    ]
    cat = Catalog({"p": Payments("p")})
    await cat.refresh(CallContext())
    policy = GatewayPolicy("g", policies, "enforce", cat)  # built before p___later exists
    assert policy.allows(ALICE, "p___later", "p", {"amount": 5})[0]
    assert not policy.allows(ALICE, "p___later", "p", {"amount": 1000000})[0]
    assert not policy.allows(ALICE, "p___later", "p", {"amount": 1e6})[0]
