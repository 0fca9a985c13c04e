"""AgentCore policy engines as a gateway's configuration sees them (ADR 0032).

A policy engine and its policies are tenant-level AgentCore resources (``StoreAws`` rows). They
govern nothing by themselves: attaching an engine to a gateway (``policyEngineConfiguration``
on CreateGateway/UpdateGateway) writes its policies into that gateway's ``policies`` as entries
of the ``agentcore`` dialect, so that the YAML, the admin API and ``switchboard tools`` show what
decides the gateway's calls, and the gateway's own load validates them. Each entry carries the
engine's ARN (``engine``), by which it is found and replaced whenever the engine's policies or
the attachment change; what else the gateway's ``policies`` hold is left as it is.

What is written for an engine attached in ``mode`` (ENFORCE or LOG_ONLY):

- a first entry with no statement, only a comment naming the engine: in ENFORCE mode it makes
  the gateway deny what no policy permits, as AgentCore does as soon as an engine is attached,
  even before the engine has a policy that applies;
- one entry per policy of the engine that can apply to this gateway (its resource is the
  gateway's ARN, or any ``AgentCore::Gateway``), enforced when the policy is ACTIVE and the
  attachment ENFORCE, log-only otherwise.

This module is shared by the gateway handlers (``_gateways``) and the policy handlers
(``_policy``), and imports neither.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from gateway.agentcore._call import Call, Params, not_found, validation
from gateway.config import GatewaySpec, PolicySpec, cedar_shape
from gateway.store import AwsResource, StoreAws

ENGINE, POLICY = "policy_engine", "policy"
GATEWAY = "gateway"  # the kind _gateways keeps gateways under
ATTACHMENT = "policyEngineConfiguration"
_ENGINE_ARN = re.compile(
    r"^arn:aws(?:-[^:]+)?:bedrock-agentcore:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"policy-engine/(?P<id>[A-Za-z][A-Za-z0-9_-]*-[a-z0-9_]{10})$"
)


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy of an engine, as the gateway's entries are written from it."""

    policy_id: str
    name: str
    statement: str
    active: bool  # enforcementMode ACTIVE (else LOG_ONLY)


def new_id(name: str) -> str:
    """A policy engine's or policy's id: its name, a dash, 10 random lowercase letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return f"{name}-{''.join(secrets.choice(alphabet) for _ in range(10))}"


def engine_arn(call: Call, engine_id: str) -> str:
    return call.arn("bedrock-agentcore", f"policy-engine/{engine_id}")


def policy_arn(call: Call, engine_id: str, policy_id: str) -> str:
    return call.arn("bedrock-agentcore", f"policy-engine/{engine_id}/policy/{policy_id}")


def gateway_arn(call: Call, gateway_id: str, region: str | None = None) -> str:
    """A gateway's ARN, in ``region`` (default: the request's)."""
    return f"arn:aws:bedrock-agentcore:{region or call.region}:{call.account}:gateway/{gateway_id}"


def engine_of(call: Call, arn: str) -> str:
    """The id of the engine ``arn`` names, when it is one of this tenant's ARNs in this region."""
    found = _ENGINE_ARN.match(arn or "")
    if found is None:
        raise validation(f"{arn!r} is not a policy engine's ARN (policyEngineArn from CreatePolicyEngine)")
    if found["account"] != call.account or found["region"] != call.region:
        raise validation(
            f"policy engine {arn} is not in this account ({call.account}) and region ({call.region})"
        )
    return found["id"]


async def engine(call: Call, engine_id: str) -> AwsResource:
    found = await StoreAws(call.system.store).by_id(call.tenant, ENGINE, engine_id)
    if found is None:
        raise not_found(f"policy engine {engine_id} does not exist")
    return found


def as_policy(row: AwsResource) -> Policy:
    a = row.attrs
    name = row.name.partition("/")[2]
    return Policy(row.resource_id, name, str(a.get("statement", "")), a.get("enforcementMode") != "LOG_ONLY")


async def policies(call: Call, engine_id: str) -> list[AwsResource]:
    """The engine's policies' rows, by name."""
    rows = await StoreAws(call.system.store).list(call.tenant, POLICY)
    return [r for r in rows if r.name.startswith(f"{engine_id}/")]


def resources(statement: str) -> list[str | None]:
    """The gateway each statement of ``statement`` names (None: any ``AgentCore::Gateway``).

    Raises:
        AwsError: it does not parse, or a statement leaves its resource unconstrained.
    """
    import cedarpy

    problem = cedar_shape(statement)
    if problem is not None:  # measured before the Cedar library sees it: deep nesting ends the process
        raise validation(f"definition.cedar.statement {problem}")
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(statement))
    except ValueError as exc:
        raise validation(f"definition.cedar.statement does not parse as Cedar: {exc}") from None
    out: list[str | None] = []
    for policy in parsed.get("staticPolicies", {}).values():
        scope = policy.get("resource") or {}
        if scope.get("op") == "All":
            raise validation(
                "a wildcard resource was detected: write `resource is AgentCore::Gateway` (any action) or "
                '`resource == AgentCore::Gateway::"<gatewayArn>"` (named actions)'
            )
        out.append((scope.get("entity") or {}).get("id") if scope.get("op") == "==" else None)
    return out


def applies(policy: Policy, arn: str) -> bool:
    """Whether ``policy`` can decide calls on the gateway ``arn``."""
    return all(found is None or found == arn for found in resources(policy.statement))


def entries(engine_id: str, arn_of_engine: str, mode: str, found: list[Policy], arn: str) -> list[PolicySpec]:
    """What an engine attached in ``mode`` writes into the policies of the gateway ``arn``."""
    log_all = mode != "ENFORCE"
    header = PolicySpec(
        cedar=f"// AgentCore policy engine {engine_id}, attached in {mode} mode: calls no policy permits "
        "are denied.",
        mode="log_only" if log_all else "enforce",
        dialect="agentcore",
        id=engine_id,
        gateway_arn=arn,
        engine=arn_of_engine,
    )
    written = [
        PolicySpec(
            cedar=p.statement,
            mode="enforce" if p.active and not log_all else "log_only",
            dialect="agentcore",
            id=p.policy_id,
            gateway_arn=arn,
            engine=arn_of_engine,
        )
        for p in sorted(found, key=lambda p: p.name)
        if applies(p, arn)
    ]
    return [header, *written]


def with_entries(spec: GatewaySpec, written: list[PolicySpec]) -> GatewaySpec:
    """``spec`` with the entries an engine wrote replaced by ``written``; the rest kept as they are."""
    kept = [p for p in spec.policies if isinstance(p, str) or p.engine is None]
    return spec.model_copy(update={"policies": [*kept, *written]})


async def governed(call: Call, spec: GatewaySpec, attachment: Params | None, gateway_id: str) -> GatewaySpec:
    """``spec`` governed by the engine ``attachment`` (``{arn, mode}``) names, or by none.

    Raises:
        AwsError: the attachment names no engine of this tenant and region.
    """
    if not attachment:
        return with_entries(spec, [])
    engine_id = engine_of(call, attachment.get("arn", ""))
    found = await StoreAws(call.system.store).by_id(call.tenant, ENGINE, engine_id)
    if found is None:
        raise validation(f"policy engine {attachment['arn']} does not exist")
    rows = await policies(call, engine_id)
    arn = gateway_arn(call, gateway_id)
    written = entries(
        engine_id, engine_arn(call, engine_id), attachment["mode"], [as_policy(r) for r in rows], arn
    )
    return with_entries(spec, written)


@dataclass(frozen=True, slots=True)
class Attached:
    """A gateway an engine is attached to: its row, its configuration, its ARN and the mode."""

    gateway: AwsResource
    spec: GatewaySpec
    arn: str
    mode: str


async def attached(call: Call, engine_id: str, specs: dict[str, GatewaySpec]) -> list[Attached]:
    """The tenant's gateways the engine is attached to (by their AgentCore record)."""
    out = []
    for row in await StoreAws(call.system.store).list(call.tenant, GATEWAY):
        config: Any = row.attrs.get(ATTACHMENT)
        spec = specs.get(row.name)
        if not isinstance(config, dict) or spec is None:
            continue
        found = _ENGINE_ARN.match(str(config.get("arn", "")))
        if found is None or found["id"] != engine_id:
            continue
        arn = gateway_arn(call, row.resource_id, found["region"])
        out.append(Attached(row, spec, arn, str(config.get("mode", "ENFORCE"))))
    return out
