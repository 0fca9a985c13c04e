"""Control plane: policy engines and their Cedar policies, governing gateways with AgentCore's
semantics (ADR 0032).

An engine and its policies are kept as tenant-level AgentCore resources (``StoreAws``). What
governs a gateway is only ever its configuration: attaching an engine writes the engine's
policies into the gateway's ``policies`` (``_engines``), and every change to an engine's policies
rewrites every gateway it is attached to through ``gateway.changes``, as the admin API would.
A policy is therefore checked the way any configuration is: compiled against the gateway's tools
before anything is stored; one that does not parse or validate is refused with a
``ValidationException`` that names the problem, and nothing changes. Status is ``ACTIVE`` at once.
"""

from __future__ import annotations

from typing import Any

from gateway import changes
from gateway.agentcore._call import AwsError, Call, Handler, Params, conflict, not_found, validation
from gateway.agentcore._engines import (
    ENGINE,
    GATEWAY,
    POLICY,
    Attached,
    Policy,
    as_policy,
    attached,
    engine,
    engine_arn,
    entries,
    gateway_arn,
    new_id,
    policies,
    policy_arn,
    resources,
    with_entries,
)
from gateway.agentcore._gateways import paged
from gateway.config import GatewaySpec, PolicySpec
from gateway.core.errors import ConfigError
from gateway.store import AwsResource, StoreAws
from gateway.system import compile_check

_ENGINE_FIELDS = ("policyEngineId", "name", "createdAt", "updatedAt", "policyEngineArn", "status")
_POLICY_FIELDS = ("policyId", "name", "policyEngineId", "createdAt", "updatedAt", "policyArn", "status")


# -- policy engines --------------------------------------------------------------


def _engine_out(call: Call, res: AwsResource, status: str = "ACTIVE") -> Params:
    a = res.attrs
    out: Params = {
        "policyEngineId": res.resource_id,
        "name": res.name,
        "createdAt": res.created_at,
        "updatedAt": res.updated_at,
        "policyEngineArn": engine_arn(call, res.resource_id),
        "status": status,
        "statusReasons": [],
    }
    for key in ("description", "encryptionKeyArn"):
        if a.get(key):
            out[key] = a[key]
    return out


def _no_information_providers(params: Params) -> None:
    if params.get("policyInformationProviderConfiguration"):
        raise validation(
            "policyInformationProviderConfiguration is not served by Switchboard: a policy reads the "
            "caller's token claims (principal tags) and the tool's input (context.input); leave it out"
        )


async def create_policy_engine(call: Call, params: Params) -> Params:
    aws = StoreAws(call.system.store)
    token = params.get("clientToken")
    if token:
        earlier = await aws.by_client_token(call.tenant, ENGINE, token)
        if earlier is not None:
            return _engine_out(call, earlier)  # the same request again: the same answer
    _no_information_providers(params)
    name = params["name"]
    if await aws.get(call.tenant, ENGINE, name) is not None:
        raise conflict(f"a policy engine named {name} exists")
    attrs = {k: params[k] for k in ("description", "encryptionKeyArn", "tags") if params.get(k)}
    res = await aws.ensure(call.tenant, ENGINE, name, lambda: new_id(name), attrs, token)
    return _engine_out(call, res)


async def get_policy_engine(call: Call, params: Params) -> Params:
    return _engine_out(call, await engine(call, params["policyEngineId"]))


async def get_policy_engine_summary(call: Call, params: Params) -> Params:
    out = await get_policy_engine(call, params)
    return {k: out[k] for k in (*_ENGINE_FIELDS, "encryptionKeyArn") if k in out}


async def _engines_page(call: Call, params: Params) -> tuple[list[Params], Params]:
    rows = await StoreAws(call.system.store).list(call.tenant, ENGINE)
    return paged(rows, params, lambda r: _engine_out(call, r))


async def list_policy_engines(call: Call, params: Params) -> Params:
    items, more = await _engines_page(call, params)
    return {"policyEngines": items, **more}


async def list_policy_engine_summaries(call: Call, params: Params) -> Params:
    items, more = await _engines_page(call, params)
    keep = (*_ENGINE_FIELDS, "encryptionKeyArn")
    return {"policyEngines": [{k: i[k] for k in keep if k in i} for i in items], **more}


async def update_policy_engine(call: Call, params: Params) -> Params:
    res = await engine(call, params["policyEngineId"])
    _no_information_providers(params)
    attrs = dict(res.attrs)
    if "description" in params:  # an UpdatedDescription: its optionalValue, or none to clear it
        attrs["description"] = (params["description"] or {}).get("optionalValue")
    aws = StoreAws(call.system.store)
    await aws.update(call.tenant, ENGINE, res.name, attrs)
    return _engine_out(call, await aws.get(call.tenant, ENGINE, res.name) or res)


async def delete_policy_engine(call: Call, params: Params) -> Params:
    res = await engine(call, params["policyEngineId"])
    held = await policies(call, res.resource_id)
    if held:
        raise conflict(f"policy engine {res.resource_id} still has {len(held)} policies; delete them first")
    users = await attached(call, res.resource_id, await changes.specs(call.system, call.tenant))
    if users:
        names = ", ".join(a.gateway.resource_id for a in users)
        raise conflict(
            f"policy engine {res.resource_id} is attached to gateway {names}; update the gateway without "
            "policyEngineConfiguration first"
        )
    await StoreAws(call.system.store).delete(call.tenant, ENGINE, res.name)
    return _engine_out(call, res, "DELETING")


# -- policies --------------------------------------------------------------------


def _policy_out(call: Call, res: AwsResource, status: str = "ACTIVE") -> Params:
    a = res.attrs
    engine_id = res.name.partition("/")[0]
    out: Params = {
        "policyId": res.resource_id,
        "name": res.name.partition("/")[2],
        "policyEngineId": engine_id,
        "createdAt": res.created_at,
        "updatedAt": res.updated_at,
        "policyArn": policy_arn(call, engine_id, res.resource_id),
        "status": status,
        "enforcementMode": a.get("enforcementMode") or "ACTIVE",
        "definition": {"cedar": {"statement": a.get("statement", "")}},
        "statusReasons": [],
    }
    if a.get("description"):
        out["description"] = a["description"]
    return out


def _statement(definition: Params) -> str:
    """The Cedar text of a policy's definition, which must hold exactly one Cedar policy."""
    if definition.get("policyGeneration"):
        raise validation(
            "definition.policyGeneration is not served by Switchboard (it does not generate policies from "
            "natural language); send the Cedar text as definition.cedar.statement"
        )
    if definition.get("policy"):
        raise validation(
            "definition.policy (a temporal, session-aware policy) is not served by Switchboard; send a "
            "Cedar policy as definition.cedar.statement"
        )
    text = str((definition.get("cedar") or {}).get("statement") or "")
    if not text:
        raise validation("definition.cedar.statement is required: the policy's Cedar text")
    count = len(resources(text))  # (parses it; refuses a resource left unconstrained)
    if count != 1:
        raise validation(f"definition.cedar.statement must hold one Cedar policy; it holds {count}")
    return text


def _refused(exc: ConfigError, gateway: str, ignoring: bool) -> AwsError:
    """A gateway's refusal of the policies, as AgentCore's ValidationException naming each problem."""
    where = f"gateway {gateway}"
    issues = "; ".join(
        f"{where} {i.location}: {i.message}" if i.location else f"{where}: {i.message}" for i in exc.issues
    )
    note = (
        " (validationMode IGNORE_ALL_FINDINGS cannot be honoured: Switchboard validates a gateway's "
        "policies whenever it loads the gateway, so a policy with findings cannot govern it)"
        if ignoring
        else ""
    )
    return validation(f"the policy was refused; nothing was stored: {issues}{note}")


async def _named_gateway(call: Call, text: str, specs: dict[str, GatewaySpec]) -> Attached | None:
    """The gateway a policy's resource names (an ARN of this account and region), if it names one.

    Raises:
        AwsError: it names a gateway that is not this tenant's.
    """
    named = next((r for r in resources(text) if r is not None), None)
    if named is None:
        return None
    gateway_id = named.rsplit("/", 1)[-1]
    row = await StoreAws(call.system.store).by_id(call.tenant, GATEWAY, gateway_id)
    spec = specs.get(row.name) if row is not None else None
    if row is None or spec is None or named != gateway_arn(call, gateway_id):
        raise validation(
            f"the policy's resource names gateway {named}, which is not a gateway of account {call.account} "
            f"in {call.region}"
        )
    governing = {p.gateway_arn for p in spec.policies if isinstance(p, PolicySpec) and p.gateway_arn}
    if governing and named not in governing:  # an engine attached from another region names it so
        raise validation(
            f"the policy's resource names gateway {named}, but its policies name it "
            f"{', '.join(sorted(governing))}: use that ARN (the region the engine was attached from)"
        )
    return Attached(row, spec, named, "ENFORCE")


async def _govern(
    call: Call, engine_id: str, found: list[Policy], changed: Policy | None, ignoring: bool = False
) -> list[GatewaySpec]:
    """Check the engine's policies ``found`` on every gateway they would govern, and return the
    attached gateways' new configurations (nothing is stored). ``changed``: the policy being
    created or updated, which is also checked on the gateway it names if that one is not attached.

    Raises:
        AwsError: a gateway would refuse the policies (ValidationException naming the problem).
    """
    specs = await changes.specs(call.system, call.tenant)
    arn_of_engine = engine_arn(call, engine_id)
    users = await attached(call, engine_id, specs)
    rewritten = [with_entries(a.spec, entries(engine_id, arn_of_engine, a.mode, found, a.arn)) for a in users]
    checks = list(rewritten)
    if changed is not None:
        named = await _named_gateway(call, changed.statement, specs)
        if named is not None and named.gateway.resource_id not in {a.gateway.resource_id for a in users}:
            checks.append(
                with_entries(named.spec, entries(engine_id, arn_of_engine, "ENFORCE", [changed], named.arn))
            )
    if len(checks) > len(rewritten) or len(rewritten) > 1:  # (one attached gateway: put_gateway checks it)
        for spec in checks:
            try:
                await compile_check(call.tenant, [spec])
            except ConfigError as exc:
                raise _refused(exc, spec.name, ignoring) from None
    return rewritten


async def _apply(call: Call, specs: list[GatewaySpec], ignoring: bool = False) -> None:
    for spec in specs:
        try:
            await changes.put_gateway(call.system, call.tenant, spec)
        except ConfigError as exc:
            raise _refused(exc, spec.name, ignoring) from None


def _mode(params: Params, default: str = "ACTIVE") -> str:
    return str(params.get("enforcementMode") or default)


async def create_policy(call: Call, params: Params) -> Params:
    res = await engine(call, params["policyEngineId"])
    aws = StoreAws(call.system.store)
    token = params.get("clientToken")
    if token:
        earlier = await aws.by_client_token(call.tenant, POLICY, token)
        if earlier is not None and earlier.name.startswith(f"{res.resource_id}/"):
            return _policy_out(call, earlier)  # the same request again: the same answer
    name = params["name"]
    key = f"{res.resource_id}/{name}"
    if await aws.get(call.tenant, POLICY, key) is not None:
        raise conflict(f"policy engine {res.resource_id} has a policy named {name}")
    text = _statement(params["definition"])
    made = Policy(new_id(name), name, text, _mode(params) == "ACTIVE")
    ignoring = params.get("validationMode") == "IGNORE_ALL_FINDINGS"
    found = [as_policy(r) for r in await policies(call, res.resource_id)] + [made]
    rewritten = await _govern(call, res.resource_id, found, made, ignoring)
    await _apply(call, rewritten, ignoring)
    attrs = {"statement": text, "enforcementMode": _mode(params), "description": params.get("description")}
    stored = await aws.ensure(call.tenant, POLICY, key, lambda: made.policy_id, attrs, token)
    return _policy_out(call, stored)


async def _policy(call: Call, params: Params) -> AwsResource:
    res = await engine(call, params["policyEngineId"])
    found = await StoreAws(call.system.store).by_id(call.tenant, POLICY, params["policyId"])
    if found is None or not found.name.startswith(f"{res.resource_id}/"):
        raise not_found(f"policy {params['policyId']} does not exist in policy engine {res.resource_id}")
    return found


async def get_policy(call: Call, params: Params) -> Params:
    return _policy_out(call, await _policy(call, params))


async def get_policy_summary(call: Call, params: Params) -> Params:
    out = await get_policy(call, params)
    return {k: out[k] for k in (*_POLICY_FIELDS, "enforcementMode")}


async def _policies_page(call: Call, params: Params) -> tuple[list[Params], Params]:
    res = await engine(call, params["policyEngineId"])
    rows = await policies(call, res.resource_id)
    scope = params.get("targetResourceScope")
    if scope:  # the policies that can decide calls on that resource
        rows = [r for r in rows if all(f is None or f == scope for f in resources(as_policy(r).statement))]
    return paged(rows, params, lambda r: _policy_out(call, r))


async def list_policies(call: Call, params: Params) -> Params:
    items, more = await _policies_page(call, params)
    return {"policies": items, **more}


async def list_policy_summaries(call: Call, params: Params) -> Params:
    items, more = await _policies_page(call, params)
    keep = (*_POLICY_FIELDS, "enforcementMode")
    return {"policies": [{k: i[k] for k in keep} for i in items], **more}


async def update_policy(call: Call, params: Params) -> Params:
    row = await _policy(call, params)
    engine_id = row.name.partition("/")[0]
    attrs: dict[str, Any] = dict(row.attrs)
    if params.get("definition"):
        attrs["statement"] = _statement(params["definition"])
    if params.get("enforcementMode"):
        attrs["enforcementMode"] = params["enforcementMode"]
    if "description" in params:  # an UpdatedDescription: its optionalValue, or none to clear it
        attrs["description"] = (params["description"] or {}).get("optionalValue")
    changed = Policy(
        row.resource_id, row.name.partition("/")[2], attrs["statement"], _mode(attrs) == "ACTIVE"
    )
    found = [
        changed if r.resource_id == row.resource_id else as_policy(r) for r in await policies(call, engine_id)
    ]
    ignoring = params.get("validationMode") == "IGNORE_ALL_FINDINGS"
    await _apply(call, await _govern(call, engine_id, found, changed, ignoring), ignoring)
    aws = StoreAws(call.system.store)
    await aws.update(call.tenant, POLICY, row.name, attrs)
    return _policy_out(call, await aws.get(call.tenant, POLICY, row.name) or row)


async def delete_policy(call: Call, params: Params) -> Params:
    row = await _policy(call, params)
    engine_id = row.name.partition("/")[0]
    found = [as_policy(r) for r in await policies(call, engine_id) if r.resource_id != row.resource_id]
    await _apply(call, await _govern(call, engine_id, found, None))
    await StoreAws(call.system.store).delete(call.tenant, POLICY, row.name)
    return _policy_out(call, row, "DELETING")


CONTROL: dict[str, Handler] = {
    "CreatePolicyEngine": create_policy_engine,
    "GetPolicyEngine": get_policy_engine,
    "GetPolicyEngineSummary": get_policy_engine_summary,
    "ListPolicyEngines": list_policy_engines,
    "ListPolicyEngineSummaries": list_policy_engine_summaries,
    "UpdatePolicyEngine": update_policy_engine,
    "DeletePolicyEngine": delete_policy_engine,
    "CreatePolicy": create_policy,
    "GetPolicy": get_policy,
    "GetPolicySummary": get_policy_summary,
    "ListPolicies": list_policies,
    "ListPolicySummaries": list_policy_summaries,
    "UpdatePolicy": update_policy,
    "DeletePolicy": delete_policy,
}
