"""Control plane: a gateway's rate limits, as AgentCore describes them, on the gateway's own
``rate_limits`` (ADR 0031).

An AgentCore rate limit is a group of Switchboard rate-limit rules (``group`` = its
``rateLimitId``): each entry's request rate is one rule, the entry's dimension values become the
rule's tools and callers, and within the group the most specific rule that applies to a call is
the one that counts it, as AgentCore's most-specific entry does. Dimension keys served:
``toolName``, ``targetName`` and ``$.context.jwt.sub`` (the caller). Token and connection
rates, and other dimensions (other JWT claims, IAM identities, request headers), are refused by
name.
"""

from __future__ import annotations

import secrets
import string

from gateway import changes
from gateway.agentcore._call import AwsError, Call, Handler, Params, not_found, validation
from gateway.agentcore._gateways import _gateway_by_id, page, refused
from gateway.config import GatewaySpec, RateLimitSpec, parse_limit
from gateway.core.errors import ConfigError
from gateway.store import AwsResource, StoreAws

RATE_LIMIT = "rate_limit"
CALLER, TOOL, TARGET = "$.context.jwt.sub", "toolName", "targetName"
MAX_PER_GATEWAY = 50
_PERIODS = {"second": 1, "minute": 60, "hour": 3600}


def _per(keys: list[str]) -> str:
    served = {CALLER, TOOL, TARGET}
    unserved = [k for k in keys if k not in served]
    if unserved:
        raise validation(
            f"dimension key {unserved[0]} is not served by Switchboard yet; use toolName, targetName or "
            "$.context.jwt.sub"
        )
    if len(set(keys)) != len(keys):
        raise validation("dimensionKeys names a key twice")
    caller, tool, target = CALLER in keys, TOOL in keys, TARGET in keys
    if caller and (tool or target):
        if not tool:
            raise validation(
                "$.context.jwt.sub with targetName is not served; use $.context.jwt.sub with toolName"
            )
        return "caller_tool"
    return "caller" if caller else "tool" if tool else "target"


def _limit(rate: float, period: str) -> str:
    """A rate as the limits library's text, in the largest unit that keeps it whole."""
    seconds = _PERIODS[period]
    for unit, length in _PERIODS.items():
        if length < seconds:
            continue
        amount = rate * length / seconds
        if abs(amount - round(amount)) < 1e-9:
            return f"{round(amount)}/{unit}"
    raise validation(
        f"a rate of {rate:g} per {period} is no whole number of requests a second, minute or hour"
    )


def rules_of(rate_limit_id: str, keys: list[str], entries: list[Params]) -> list[RateLimitSpec]:
    """The gateway's rate-limit rules for one AgentCore rate limit."""
    per = _per(keys)
    out = []
    for i, entry in enumerate(entries):
        dims = entry.get("dimensions") or {}
        if set(dims) != set(keys):
            raise validation(f"entries.{i + 1}.dimensions must give a value for each of {', '.join(keys)}")
        for unserved in ("tokens", "connections"):
            if entry.get(unserved):
                raise validation(
                    f"entries.{i + 1}.{unserved} limits are not served by Switchboard; limit requests"
                )
        tool, target, caller = dims.get(TOOL, "*"), dims.get(TARGET, "*"), dims.get(CALLER, "*")
        if tool != "*" and target != "*" and not tool.startswith(f"{target}___"):
            raise validation(f"entries.{i + 1}: tool {tool} is not a tool of target {target}")
        tools = [tool] if tool != "*" else [f"{target}___*"] if target != "*" else []
        callers = [caller] if caller != "*" else []
        if not entry.get("requests"):
            raise validation(f"entries.{i + 1}.requests is required: the rate of requests it allows")
        for rate in entry["requests"]:
            limit = _limit(float(rate["rate"]), rate["period"])
            out.append(RateLimitSpec(limit=limit, per=per, tools=tools, callers=callers, group=rate_limit_id))
    return out


def _new_id() -> str:
    return "rl-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))


async def _put(call: Call, spec: GatewaySpec, wanted: dict[str, list[RateLimitSpec]]) -> None:
    """The gateway with the rules of each rate limit in ``wanted`` replaced by the ones given."""
    kept = [r for r in spec.rate_limits if r.group not in wanted]
    groups = {r.group for r in kept if r.group is not None} | set(wanted)
    if len(groups) > MAX_PER_GATEWAY:
        raise AwsError(
            "ServiceQuotaExceededException", f"a gateway has at most {MAX_PER_GATEWAY} rate limits", 402
        )
    rules = kept + [r for group in wanted.values() for r in group]
    try:
        await changes.put_gateway(call.system, call.tenant, spec.model_copy(update={"rate_limits": rules}))
    except ConfigError as exc:
        raise refused(exc) from None


def _out(gateway_id: str, rate_limit_id: str, spec: GatewaySpec, res: AwsResource | None) -> Params:
    a = res.attrs if res is not None else _described(spec, rate_limit_id)
    out: Params = {
        "rateLimitId": rate_limit_id,
        "gatewayIdentifier": gateway_id,
        "dimensionKeys": a["dimensionKeys"],
        "entries": a["entries"],
        "status": "ACTIVE",
        "createdAt": res.created_at if res is not None else None,
        "updatedAt": res.updated_at if res is not None else None,
    }
    if a.get("description"):
        out["description"] = a["description"]
    return {k: v for k, v in out.items() if v is not None}


def _described(spec: GatewaySpec, group: str) -> Params:
    """An AgentCore description of a group of rules written elsewhere (YAML, the admin API)."""
    rules = [r for r in spec.rate_limits if r.group == group]
    keys = {"caller": [CALLER], "tool": [TOOL], "target": [TARGET], "caller_tool": [CALLER, TOOL]}.get(
        rules[0].per, [TOOL]
    )
    entries: list[Params] = []
    for r in rules:
        item = parse_limit(r.limit)
        seconds = item.get_expiry()
        rate = (
            {"rate": float(item.amount), "period": "second"}
            if seconds == 1
            else {
                "rate": item.amount * 60 / seconds,
                "period": "minute",
            }
        )
        dims = {CALLER: (r.callers or ["*"])[0], TOOL: (r.tools or ["*"])[0], TARGET: "*"}
        entries.append({"dimensions": {k: dims[k] for k in keys}, "requests": [rate]})
    return {"dimensionKeys": keys, "entries": entries}


async def _rows(call: Call, spec: GatewaySpec) -> dict[str, AwsResource]:
    rows = await StoreAws(call.system.store).list(call.tenant, RATE_LIMIT)
    return {r.name.partition("/")[2]: r for r in rows if r.name.startswith(f"{spec.name}/")}


def _attrs(item: Params, keys: list[str]) -> Params:
    attrs: Params = {"dimensionKeys": keys, "entries": item["entries"]}
    if item.get("description"):
        attrs["description"] = item["description"]
    return attrs


async def create_gateway_rate_limit(call: Call, params: Params) -> Params:
    spec, gw = await _gateway_by_id(call, params["gatewayIdentifier"])
    rid = params.get("rateLimitId") or _new_id()
    if any(r.group == rid for r in spec.rate_limits):
        raise AwsError("ConflictException", f"gateway {gw.resource_id} has a rate limit {rid}", 409)
    keys = list(params["dimensionKeys"])
    await _put(call, spec, {rid: rules_of(rid, keys, list(params["entries"]))})
    aws = StoreAws(call.system.store)
    await aws.delete(call.tenant, RATE_LIMIT, f"{spec.name}/{rid}")
    res = await aws.ensure(call.tenant, RATE_LIMIT, f"{spec.name}/{rid}", lambda: rid, _attrs(params, keys))
    return _out(gw.resource_id, rid, spec, res)


async def _one(call: Call, params: Params) -> tuple[GatewaySpec, AwsResource, str, AwsResource | None]:
    spec, gw = await _gateway_by_id(call, params["gatewayIdentifier"])
    rid = params["rateLimitId"]
    if not any(r.group == rid for r in spec.rate_limits):
        raise not_found(f"rate limit {rid} does not exist on gateway {gw.resource_id}")
    return spec, gw, rid, (await _rows(call, spec)).get(rid)


async def get_gateway_rate_limit(call: Call, params: Params) -> Params:
    spec, gw, rid, res = await _one(call, params)
    return _out(gw.resource_id, rid, spec, res)


async def list_gateway_rate_limits(call: Call, params: Params) -> Params:
    spec, gw = await _gateway_by_id(call, params["gatewayIdentifier"])
    rows = await _rows(call, spec)
    groups = sorted({r.group for r in spec.rate_limits if r.group is not None})
    chunk, token = page([{"name": g} for g in groups], params)
    items = [_out(gw.resource_id, i["name"], spec, rows.get(i["name"])) for i in chunk]
    return {"rateLimits": items, **({"nextToken": token} if token else {})}


async def update_gateway_rate_limit(call: Call, params: Params) -> Params:
    spec, gw, rid, res = await _one(call, params)
    keys = list((res.attrs if res is not None else _described(spec, rid))["dimensionKeys"])
    await _put(call, spec, {rid: rules_of(rid, keys, list(params["entries"]))})
    aws = StoreAws(call.system.store)
    name = f"{spec.name}/{rid}"
    attrs = _attrs(params, keys)
    if res is None:
        res = await aws.ensure(call.tenant, RATE_LIMIT, name, lambda: rid, attrs)
    else:
        await aws.update(call.tenant, RATE_LIMIT, name, attrs)
    return _out(gw.resource_id, rid, spec, await aws.get(call.tenant, RATE_LIMIT, name) or res)


async def delete_gateway_rate_limit(call: Call, params: Params) -> Params:
    spec, _, rid, _ = await _one(call, params)
    await _put(call, spec, {rid: []})
    await StoreAws(call.system.store).delete(call.tenant, RATE_LIMIT, f"{spec.name}/{rid}")
    return {"rateLimitId": rid, "status": "DELETING"}


async def batch_put_gateway_rate_limits(call: Call, params: Params) -> Params:
    """Create or replace several rate limits of one gateway at once: all of them, or none."""
    spec, gw = await _gateway_by_id(call, params["gatewayIdentifier"])
    wanted: dict[str, list[RateLimitSpec]] = {}
    attrs: dict[str, Params] = {}
    for item in params["rateLimits"]:
        rid = item.get("rateLimitId") or _new_id()
        keys = list(item["dimensionKeys"])
        wanted[rid] = rules_of(rid, keys, list(item["entries"]))
        attrs[rid] = _attrs(item, keys)
    await _put(call, spec, wanted)
    aws = StoreAws(call.system.store)
    out = []
    for rid, attr in attrs.items():
        name = f"{spec.name}/{rid}"
        if await aws.get(call.tenant, RATE_LIMIT, name) is None:
            await aws.ensure(call.tenant, RATE_LIMIT, name, lambda rid=rid: rid, attr)  # type: ignore[misc]
        else:
            await aws.update(call.tenant, RATE_LIMIT, name, attr)
        out.append(_out(gw.resource_id, rid, spec, await aws.get(call.tenant, RATE_LIMIT, name)))
    return {"rateLimits": out}


HANDLERS: dict[str, Handler] = {
    "CreateGatewayRateLimit": create_gateway_rate_limit,
    "GetGatewayRateLimit": get_gateway_rate_limit,
    "ListGatewayRateLimits": list_gateway_rate_limits,
    "UpdateGatewayRateLimit": update_gateway_rate_limit,
    "DeleteGatewayRateLimit": delete_gateway_rate_limit,
    "BatchPutGatewayRateLimits": batch_put_gateway_rate_limits,
}
