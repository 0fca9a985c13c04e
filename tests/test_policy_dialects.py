"""Policies written out: AgentCore's dialect (its entity model, its schema, its scope rules),
per-policy log-only, two dialects on one gateway, and what the audit keeps of a log-only denial."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jsonschema
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from gateway.config import (
    GatewaySpec,
    PolicySpec,
    gateway_from_store,
    json_schema,
    load_document,
    to_store,
    validate,
)
from gateway.core.catalog import Catalog
from gateway.core.errors import ConfigError
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, Principal, ToolCall, ToolResult, ToolSpec
from gateway.stages.audit import GatewayAudit
from gateway.stages.policy import Denied, GatewayPolicy, Unrepresentable
from gateway.store import CallRecord

pytestmark = pytest.mark.anyio

ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:gateway/shop-abcdefghij"
REFUND = 'AgentCore::Action::"shop___refund"'
LOOKUP = 'AgentCore::Action::"shop___lookup"'
GW = f'AgentCore::Gateway::"{ARN}"'
SB_LOOKUP = 'Switchboard::Action::"shop___lookup"'
IN_SALES = 'principal.hasTag("department") && principal.getTag("department") == "sales"'
IN_FINANCE = 'principal.hasTag("department") && principal.getTag("department") == "finance"'


class Shop(ToolProvider):
    kind = "test"

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        refund = {
            "type": "object",
            "properties": {
                "amount": {"type": "integer"},
                "price": {"type": "number"},
                "reason": {"type": "string"},
                "rates": {"type": "array", "items": {"type": "number"}},
            },
            "required": ["amount"],
        }
        return [
            ToolSpec(name="refund", input_schema=refund),
            ToolSpec(
                name="lookup", input_schema={"type": "object", "properties": {"id": {"type": "string"}}}
            ),
        ]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text(f"ran {call.name}")


async def catalog() -> Catalog:
    cat = Catalog({"shop": Shop("shop")})
    await cat.refresh(CallContext())
    return cat


def agentcore(cedar: str, *, mode: str = "enforce", id: str | None = None) -> PolicySpec:
    return PolicySpec(cedar=cedar, dialect="agentcore", mode=mode, id=id, gateway_arn=ARN)


FINANCE = Principal(
    subject="u-1",
    claims={
        "sub": "u-1",
        "department": "finance",
        "level": 3,
        "admin": True,
        "groups": ["refunds", "audit"],
        "nothing": None,
    },
)
SALES = Principal(subject="u-2", claims={"sub": "u-2", "department": "sales"})


async def policy(sources: Sequence[str | PolicySpec], mode: str = "enforce") -> GatewayPolicy:
    return GatewayPolicy("shop", sources, mode, await catalog())


SMALL_REFUNDS = agentcore(
    f"permit(principal is AgentCore::OAuthUser, action == {REFUND}, resource == {GW})"
    ' when { principal.hasTag("department") && principal.getTag("department") == "finance"'
    " && context.input.amount < 500 };",
    id="small_refunds",
)


async def test_agentcore_policies_read_claims_as_tags_and_arguments_under_input() -> None:
    p = await policy([SMALL_REFUNDS])
    assert p.allows(FINANCE, "shop___refund", "shop", {"amount": 450}) == (True, "small_refunds")
    assert p.allows(FINANCE, "shop___refund", "shop", {"amount": 450.0})[0]  # a whole float is the integer
    assert not p.allows(FINANCE, "shop___refund", "shop", {"amount": 900})[0]
    assert not p.allows(SALES, "shop___refund", "shop", {"amount": 5})[0]
    assert p.allows(FINANCE, "shop___lookup", "shop", {}) == (False, "no policy permits it")  # default deny
    assert p.visible(FINANCE, [("shop___refund", "shop"), ("shop___lookup", "shop")]) == {"shop___refund"}
    assert p.visible(SALES, [("shop___refund", "shop"), ("shop___lookup", "shop")]) == set()


@pytest.mark.parametrize(
    ("condition", "allowed"),
    [
        ('principal.id == "u-1"', True),  # the token's sub
        ('principal.hasTag("level") && principal.getTag("level") == "3"', True),  # numbers as JSON text
        ('principal.hasTag("admin") && principal.getTag("admin") == "true"', True),
        ('principal.hasTag("groups") && principal.getTag("groups") == "[\\"refunds\\",\\"audit\\"]"', True),
        ('principal.hasTag("groups") && principal.getTag("groups") like "*\\"refunds\\"*"', True),
        ('principal.hasTag("nothing")', False),  # a null claim gives no tag
        ('principal.hasTag("missing")', False),
    ],
)
async def test_every_claim_is_a_string_tag(condition: str, allowed: bool) -> None:
    p = await policy(
        [agentcore(f"permit(principal, action == {LOOKUP}, resource == {GW}) when {{ {condition} }};")]
    )
    assert p.allows(FINANCE, "shop___lookup", "shop", {})[0] is allowed


async def test_a_caller_without_a_token_is_an_oauth_user_made_of_what_switchboard_knows() -> None:
    permit = agentcore(
        f"permit(principal, action == {LOOKUP}, resource == {GW}) when "
        '{ principal.id == "ci" && principal.hasTag("sub") && principal.getTag("sub") == "ci" '
        '&& principal.hasTag("scope") && principal.getTag("scope") like "*math*" '
        '&& principal.hasTag("client_id") && principal.getTag("client_id") == "bot" };'
    )
    p = await policy([permit])
    keyed = Principal(subject="ci", client_id="bot", scopes=frozenset({"math", "read"}))
    assert p.allows(keyed, "shop___lookup", "shop", {})[0]
    assert not p.allows(Principal(), "shop___lookup", "shop", {})[0]  # auth: none: OAuthUser "anonymous"
    anonymous = agentcore(
        f'permit(principal == AgentCore::OAuthUser::"anonymous", action == {LOOKUP}, resource == {GW});'
    )
    assert (await policy([anonymous])).allows(Principal(), "shop___lookup", "shop", {})[0]


@pytest.mark.parametrize(
    ("arguments", "allowed"),
    [
        ({"amount": 1, "price": 2.49}, True),
        ({"amount": 1, "price": 2.5}, False),
        ({"amount": 1, "price": 2}, True),  # an integer in a `number` position is a decimal too
        ({"amount": 1, "price": 2.49999}, True),  # truncated to four places, as AgentCore does
        ({"amount": 1, "rates": [1.5, 3.25]}, False),
        ({"amount": 1, "rates": [1.5]}, True),
    ],
)
async def test_numbers_are_decimals(arguments: dict[str, Any], allowed: bool) -> None:
    p = await policy(
        [
            agentcore(f"permit(principal, action == {REFUND}, resource == {GW});"),
            agentcore(
                f"forbid(principal, action == {REFUND}, resource == {GW}) when "
                '{ (context.input has price && context.input.price.greaterThanOrEqual(decimal("2.5"))) '
                '|| (context.input has rates && context.input.rates.contains(decimal("3.25"))) };'
            ),
        ]
    )
    assert p.allows(FINANCE, "shop___refund", "shop", arguments)[0] is allowed


async def test_a_number_beyond_cedars_decimals_is_refused() -> None:
    p = await policy(
        [
            agentcore(
                f"permit(principal, action == {REFUND}, resource == {GW}) when {{ context.input has price }};"
            )
        ]
    )
    with pytest.raises(Unrepresentable) as refused:
        p.allows(FINANCE, "shop___refund", "shop", {"amount": 1, "price": 1e300})
    assert refused.value.path == "price" and "decimal range" in refused.value.reason


async def test_action_groups_cover_every_tool() -> None:
    p = await policy(
        [
            agentcore(
                'permit(principal, action in AgentCore::Action::"CallTool", resource is AgentCore::Gateway);'
            ),
            agentcore(
                'forbid(principal, action, resource is AgentCore::Gateway) when { principal.id == "u-2" };'
            ),
        ]
    )
    assert (
        p.allows(FINANCE, "shop___lookup", "shop", {})[0]
        and p.allows(FINANCE, "shop___refund", "shop", {"amount": 1})[0]
    )
    assert not p.allows(SALES, "shop___lookup", "shop", {})[0]


async def run(c: ToolCall, ctx: CallContext) -> ToolResult:
    return ToolResult.text("ran")


async def test_a_log_only_forbid_is_recorded_and_never_refuses() -> None:
    logged = agentcore(
        f"forbid(principal, action == {REFUND}, resource == {GW}) when {{ context.input.amount > 100 }};",
        mode="log_only",
        id="big_refunds",
    )
    p = await policy([SMALL_REFUNDS, logged])
    decision = p.judge(FINANCE, "shop___refund", "shop", {"amount": 300})
    assert decision.allowed and decision.logged == ("deny", "big_refunds")
    assert p.judge(FINANCE, "shop___refund", "shop", {"amount": 50}).logged is None  # nothing would change
    ctx = CallContext(principal=FINANCE)
    span = TracerProvider().get_tracer("test").start_span("tools/call")
    with trace.use_span(span, end_on_exit=True):
        answer = await p(ToolCall("refund", {"amount": 300}, public_name="shop___refund"), ctx, run)
    assert answer.content[0]["text"] == "ran" and ctx.policy_log == ("deny", "big_refunds")
    assert isinstance(span, ReadableSpan) and span.attributes is not None
    assert span.attributes["switchboard.policy.log_only"] == "would deny: big_refunds"
    with pytest.raises(Denied, match="no policy permits it"):  # the enforced permit still decides
        await p(
            ToolCall("refund", {"amount": 900}, public_name="shop___refund"),
            CallContext(principal=FINANCE),
            run,
        )


async def test_a_log_only_permit_says_what_it_would_allow() -> None:
    trial = agentcore(
        f"permit(principal, action == {LOOKUP}, resource == {GW});", mode="log_only", id="trial"
    )
    p = await policy([SMALL_REFUNDS, trial])
    decision = p.judge(FINANCE, "shop___lookup", "shop", {})
    assert not decision.allowed and decision.logged == ("allow", "trial")
    assert p.visible(FINANCE, [("shop___lookup", "shop")]) == set()  # log-only permits show nothing


async def test_only_log_only_policies_allow_everything_and_record_the_default_deny() -> None:
    p = await policy(
        [agentcore(f"permit(principal, action == {LOOKUP}, resource == {GW});", mode="log_only")]
    )
    decision = p.judge(FINANCE, "shop___refund", "shop", {"amount": 1})
    assert decision.allowed and decision.logged == ("deny", "no policy permits it")
    assert p.visible(FINANCE, [("shop___refund", "shop")]) == {"shop___refund"}


async def test_an_enforced_entry_without_a_statement_denies_what_nothing_permits() -> None:
    empty = PolicySpec(
        cedar="// engine attached: nothing permitted yet", dialect="agentcore", gateway_arn=ARN
    )
    p = await policy([empty])
    assert p.allows(FINANCE, "shop___lookup", "shop", {}) == (False, "no policy permits it")
    assert (await policy([empty.model_copy(update={"mode": "log_only"})])).allows(
        FINANCE, "shop___lookup", "shop", {}
    )[0]


async def test_two_dialects_on_one_gateway() -> None:
    sb_permit = 'permit(principal, action == Switchboard::Action::"shop___lookup", resource);'
    ac_forbid = agentcore(
        f"forbid(principal, action == {LOOKUP}, resource == {GW}) when {{ {IN_SALES} }};",
        id="no_sales",
    )
    p = await policy([sb_permit, ac_forbid, SMALL_REFUNDS])
    assert p.allows(FINANCE, "shop___lookup", "shop", {}) == (True, "policy0")  # Switchboard's permit
    assert p.allows(SALES, "shop___lookup", "shop", {}) == (False, "no_sales")  # AgentCore's forbid wins
    assert p.allows(FINANCE, "shop___refund", "shop", {"amount": 10})[0]  # AgentCore's permit allows
    assert not p.allows(SALES, "shop___refund", "shop", {"amount": 10})[0]  # default deny over both
    tools = [("shop___lookup", "shop"), ("shop___refund", "shop")]
    assert p.visible(FINANCE, tools) == {"shop___lookup", "shop___refund"}
    assert p.visible(SALES, tools) == set()
    sb_forbid = PolicySpec(
        cedar='forbid(principal, action, resource) when { principal.tenant == "default" };', id="nobody"
    )
    assert not (await policy([sb_forbid, SMALL_REFUNDS])).allows(
        FINANCE, "shop___refund", "shop", {"amount": 1}
    )[0]


async def test_decisions_that_ignore_the_arguments_are_remembered_per_caller_and_claims() -> None:
    p = await policy(
        [agentcore(f"permit(principal, action == {LOOKUP}, resource == {GW}) when {{ {IN_FINANCE} }};")]
    )
    assert p.allows(FINANCE, "shop___lookup", "shop", {})[0]
    moved = Principal(
        subject="u-1", claims={"sub": "u-1", "department": "sales"}
    )  # same subject, other claims
    assert not p.allows(moved, "shop___lookup", "shop", {})[0]
    assert len(p._decisions) == 2 and p.caller_key(FINANCE) != p.caller_key(moved)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (
            agentcore(
                'permit(principal, action == AgentCore::Action::"shop___delete", resource == ' + GW + ");",
                id="gone",
            ),
            ["policies[0]", "policy gone", "shop___delete"],
        ),
        (
            agentcore(
                f'permit(principal, action == {REFUND}, resource == {GW}) when {{ principal.nick == "x" }};',
                id="attr",
            ),
            ["policy attr", "nick"],
        ),  # OAuthUser has no custom attributes: tags
        (
            agentcore(
                f"permit(principal, action == {REFUND}, resource == {GW}) when {{ context.colour == 1 }};",
                id="ctx",
            ),
            ["policy ctx", "colour"],
        ),  # only context.input
        (
            agentcore(
                f"permit(principal, action == {REFUND}, resource == {GW}) when {{ context.input.hue == 1 }};",
                id="arg",
            ),
            ["policy arg", "hue"],
        ),
        (
            agentcore(f"permit(principal, action == {REFUND}, resource);", id="wild"),
            ["policy wild", "wildcard resource"],
        ),
        (
            agentcore(f"permit(principal, action == {REFUND}, resource is AgentCore::Gateway);", id="loose"),
            ["policy loose", "names actions"],
        ),
        (
            agentcore(
                f'permit(principal, action == {REFUND}, resource == AgentCore::Gateway::"arn:other");',
                id="other",
            ),
            ["policy other", "arn:other"],
        ),
        (
            agentcore("permit(principal, action, resource == " + GW + ");", id="every"),
            ["policy every", "by type"],
        ),
        (
            agentcore("permit(principal, action, resource", id="broken"),
            ["policies[0]", "policy broken does not parse"],
        ),
        (
            PolicySpec(
                cedar=f"permit(principal, action == {LOOKUP}, resource is AgentCore::Gateway);",
                id="sb",
            ),
            ["policy sb", "AgentCore::Action"],
        ),  # Switchboard's dialect knows no AgentCore entities
    ],
)
async def test_policies_that_do_not_fit_their_dialect_are_refused_by_name(
    entry: PolicySpec, words: list[str]
) -> None:
    with pytest.raises(ConfigError) as refused:
        await policy([entry])
    text = " | ".join(f"{i.location}: {i.message}" for i in refused.value.issues)
    for word in words:
        assert word in text, text


async def test_ids_are_unique_and_agentcore_entries_share_one_gateway_arn() -> None:
    permit = f"permit(principal, action == {LOOKUP}, resource == {GW});"
    with pytest.raises(ConfigError, match="two policies are named 'twice'"):
        await policy([agentcore(permit, id="twice"), agentcore(permit, id="twice")])
    other = PolicySpec(cedar="// nothing", dialect="agentcore", gateway_arn="arn:elsewhere")
    with pytest.raises(ConfigError, match="gateway_arn"):
        await policy([agentcore(permit), other])
    named = await policy(
        [
            PolicySpec(
                cedar=f'permit(principal, action == {LOOKUP}, resource == AgentCore::Gateway::"shop");',
                dialect="agentcore",
            )
        ]
    )
    assert named.allows(FINANCE, "shop___lookup", "shop", {})[0]  # no gateway_arn: the gateway's name


def forbid_id(value: str) -> str:
    condition = f'context has id && context.id == "{value}"'
    return f"forbid(principal, action == {SB_LOOKUP}, resource) when {{ {condition} }};"


async def test_plain_strings_keep_their_names_beside_entries() -> None:
    p = await policy(
        [
            'permit(principal, action == Switchboard::Action::"shop___lookup", resource);',
            PolicySpec(cedar=f"{forbid_id('x')}\n{forbid_id('y')}", id="pair"),
        ]
    )
    assert p.allows(FINANCE, "shop___lookup", "shop", {"id": "a"}) == (True, "policy0")
    assert p.allows(FINANCE, "shop___lookup", "shop", {"id": "y"}) == (False, "pair[1]")


async def test_gateway_wide_log_only_allows_and_records() -> None:
    p = await policy(
        ['permit(principal, action == Switchboard::Action::"shop___lookup", resource);'], "log_only"
    )
    decision = p.judge(FINANCE, "shop___refund", "shop", {"amount": 1})
    assert decision.allowed and decision.logged == ("deny", "no policy permits it")


class Records:
    def __init__(self) -> None:
        self.kept: list[CallRecord] = []

    def refusing(self) -> str | None:
        return None

    async def record(self, record: CallRecord) -> None:
        self.kept.append(record)


async def test_the_audit_keeps_what_a_log_only_policy_would_have_denied() -> None:
    logged = agentcore(
        f"forbid(principal, action == {REFUND}, resource == {GW}) when {{ context.input.amount > 100 }};",
        mode="log_only",
        id="big_refunds",
    )
    p = await policy([SMALL_REFUNDS, logged])
    records = Records()
    audit = GatewayAudit("default", "shop", records)  # type: ignore[arg-type]

    async def through_policy(c: ToolCall, ctx: CallContext) -> ToolResult:
        return await p(c, ctx, run)

    for amount in (50, 300):
        call = ToolCall("refund", {"amount": amount}, public_name="shop___refund")
        await audit(call, CallContext(principal=FINANCE), through_policy)
    first, second = records.kept
    assert (first.decision, first.outcome, first.error) == ("allowed", "ok", None)
    assert (second.decision, second.outcome) == ("would_deny", "ok")
    assert second.error == "log-only policies would deny this call (big_refunds)"


def test_entries_are_configuration_like_any_other() -> None:
    doc = load_document(
        f"""
gateways:
  - name: shop
    policies:
      - 'permit(principal, action, resource);'
      - cedar: 'forbid(principal, action, resource);'
        mode: log_only
        id: trial
      - cedar: 'permit(principal, action == {REFUND}, resource == {GW});'
        dialect: agentcore
        gateway_arn: {ARN}
""",
        "sw.yaml",
    )
    (spec,) = doc.gateways
    assert spec.policies[0] == "permit(principal, action, resource);"
    assert isinstance(spec.policies[1], PolicySpec) and spec.policies[1].mode == "log_only"
    name, stored, _ = to_store(spec)
    assert stored["policies"][1] == {
        "cedar": "forbid(principal, action, resource);",
        "mode": "log_only",
        "id": "trial",
    }
    assert gateway_from_store({**stored, "name": name}, [], source="store") == spec
    with pytest.raises(ConfigError, match="gateway_arn"):
        validate(GatewaySpec, {"name": "g", "policies": [{"cedar": "", "gateway_arn": ARN}]}, source="t")
    defs = json_schema()["$defs"]
    assert set(defs["PolicySpec"]["properties"]) == {
        "cedar",
        "mode",
        "dialect",
        "id",
        "gateway_arn",
        "engine",
    }
    assert all(
        defs["PolicySpec"]["properties"][k].get("description") for k in defs["PolicySpec"]["properties"]
    )


def test_an_attached_engine_writes_its_policies_as_entries_it_can_find_again() -> None:
    from gateway.agentcore._engines import Policy, entries, with_entries

    engine = "arn:aws:bedrock-agentcore:us-west-2:123456789012:policy-engine/rules-abcdefghij"
    other = ARN.replace("shop-abcdefghij", "else-abcdefghij")
    found = [
        Policy("b-0123456789", "b", f"permit(principal, action == {REFUND}, resource == {GW});", True),
        Policy(
            "a-0123456789",
            "a",
            "forbid(principal, action, resource is AgentCore::Gateway) when { false };",
            False,
        ),
        Policy(
            "c-0123456789",
            "c",
            f'permit(principal, action == {REFUND}, resource == AgentCore::Gateway::"{other}");',
            True,
        ),
    ]
    written = entries("rules-abcdefghij", engine, "ENFORCE", found, ARN)
    assert [(e.id, e.mode) for e in written] == [
        ("rules-abcdefghij", "enforce"),  # the engine itself: what nothing permits is denied
        ("a-0123456789", "log_only"),  # a LOG_ONLY policy
        ("b-0123456789", "enforce"),
    ]  # c names another gateway: it can never decide this one's calls
    assert all(e.dialect == "agentcore" and e.engine == engine and e.gateway_arn == ARN for e in written)
    assert {e.mode for e in entries("rules-abcdefghij", engine, "LOG_ONLY", found, ARN)} == {"log_only"}
    spec = GatewaySpec(name="shop", policies=["permit(principal, action, resource);", *written])
    assert with_entries(spec, []).policies == ["permit(principal, action, resource);"]
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_decisions_are_remembered_by_the_tags_the_statements_read_not_every_claim() -> None:
    from gateway.stages._agentcore import AgentCoreDialect, tags_read

    texts = [
        'permit(principal, action, resource is AgentCore::Gateway) when { principal.getTag("team") == "a" };'
    ]
    assert tags_read(texts) == frozenset({"team"})
    assert (
        tags_read(["forbid(principal, action, resource) when { principal.hasTag(context.input.k) };"]) is None
    )
    dialect = AgentCoreDialect("arn:g", Catalog({}), tags_read(texts))
    first = Principal(subject="u", claims={"sub": "u", "team": "a", "iat": 1, "exp": 2, "jti": "x"})
    second = Principal(subject="u", claims={"sub": "u", "team": "a", "iat": 3, "exp": 4, "jti": "y"})
    other = Principal(subject="u", claims={"sub": "u", "team": "b", "iat": 3, "exp": 4, "jti": "y"})
    assert dialect.caller_key(first) == dialect.caller_key(second) != dialect.caller_key(other)
