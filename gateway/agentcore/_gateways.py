"""Control plane: gateways and their targets, as AgentCore describes them, on Switchboard's own.

A gateway made here is a gateway of the caller's tenant, stored, compiled and served like one the
admin API writes (``gateway.changes``); what AgentCore keeps that the configuration has no place
for is kept beside it (``StoreAws``), with the resource's id and creation time (ADR 0031).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio

from gateway import changes
from gateway.agentcore import _apigateway, _s3
from gateway.agentcore._call import AwsError, Call, Params, gateway_id, not_found, target_id, validation
from gateway.agentcore._engines import ATTACHMENT, governed
from gateway.agentcore._vault_links import OAUTH_SCHEME, OAuthLink, link, oauth_link
from gateway.config import (
    ApiKeyCredential,
    GatewaySpec,
    JwtAuth,
    LambdaTarget,
    McpTarget,
    NoAuth,
    OpenApiTarget,
    SecretRef,
    TargetBase,
    validate,
)
from gateway.core.errors import ConfigError
from gateway.openapi import document
from gateway.store import AwsResource, StoreAws
from gateway.system import mcp_path

GATEWAY, TARGET = "gateway", "target"
API_KEY_SCHEME = "agentcore_api_key"
DEFAULT_PAGE = 100


def _strip(value: Params) -> Params:
    """``value`` without the members that are None (what an AWS answer leaves out)."""
    return {k: _cleaned(v) for k, v in value.items() if v is not None}


def _cleaned(value: Any) -> Any:
    if isinstance(value, dict):
        return _strip(value)
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return value


def refused(exc: ConfigError) -> AwsError:
    """A configuration refusal as AgentCore's ValidationException (every issue, located)."""
    issues = "; ".join(f"{i.location}: {i.message}" if i.location else i.message for i in exc.issues)
    return validation(f"the change was refused; nothing was stored: {issues}")


def page(items: list[Any], params: Params, key: str = "name") -> tuple[list[Any], str | None]:
    """One page of ``items`` (sorted by ``key``) after ``nextToken``, at most ``maxResults``."""
    after = None
    token = params.get("nextToken")
    if token:
        try:
            after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise validation("nextToken is not one this API gave out; start again without it") from None
    size = int(params.get("maxResults") or DEFAULT_PAGE)
    ordered = sorted(items, key=lambda i: str(i[key]))
    if after is not None:
        ordered = [i for i in ordered if str(i[key]) > str(after)]
    chunk = ordered[:size]
    more = len(ordered) > size
    next_token = (
        base64.urlsafe_b64encode(json.dumps({"after": chunk[-1][key]}).encode()).decode() if more else None
    )
    return chunk, next_token


def paged(
    rows: list[AwsResource], params: Params, out: Callable[[AwsResource], Params]
) -> tuple[list[Params], Params]:
    """One page of stored resources (by name) as ``out`` describes each, and its ``nextToken``."""
    chunk, token = page([{"name": r.name, "res": r} for r in rows], params)
    return [out(i["res"]) for i in chunk], ({"nextToken": token} if token else {})


# -- gateways ------------------------------------------------------------------


def _auth(params: Params) -> NoAuth | JwtAuth:
    kind = params.get("authorizerType")
    if kind == "NONE":
        return NoAuth()
    if kind == "CUSTOM_JWT":
        jwt = (params.get("authorizerConfiguration") or {}).get("customJWTAuthorizer")
        if not jwt:
            raise validation("authorizerType CUSTOM_JWT needs authorizerConfiguration.customJWTAuthorizer")
        return JwtAuth(
            kind="jwt",
            discovery_url=jwt["discoveryUrl"],
            audiences=list(jwt.get("allowedAudience") or []),
            clients=list(jwt.get("allowedClients") or []),
            scopes=list(jwt.get("allowedScopes") or []),
        )
    raise validation(
        f"authorizerType {kind} is not served by Switchboard: its MCP endpoints take CUSTOM_JWT (OAuth "
        "bearer tokens) or NONE, not SigV4; choose one of those"
    )


def _authorizer(spec: GatewaySpec) -> Params:
    auth = spec.auth
    if isinstance(auth, JwtAuth):
        jwt = {
            "discoveryUrl": auth.discovery_url or auth.jwks_url,
            "allowedAudience": auth.audiences or None,
            "allowedClients": auth.clients or None,
            "allowedScopes": auth.scopes or None,
        }
        return {"authorizerType": "CUSTOM_JWT", "authorizerConfiguration": {"customJWTAuthorizer": jwt}}
    # An API-key gateway has no AgentCore authorizer type; it is not open either.
    return {"authorizerType": "NONE" if isinstance(auth, NoAuth) else "AUTHENTICATE_ONLY"}


_GATEWAY_ATTRS = ("roleArn", "kmsKeyArn", "protocolConfiguration", "exceptionLevel", ATTACHMENT, "tags")


def _gateway_spec(params: Params, kept: GatewaySpec | None) -> GatewaySpec:
    for unsupported in ("interceptorConfigurations", "customTransformConfiguration"):
        if params.get(unsupported):
            raise validation(f"{unsupported} is not served by Switchboard yet; leave it out")
    base = kept.model_dump() if kept is not None else {}
    base.update(name=params["name"], description=params.get("description") or "", auth=_auth(params))
    if "protocolConfiguration" in params or kept is None:  # (searchType SEMANTIC: the search tool)
        mcp = (params.get("protocolConfiguration") or {}).get("mcp") or {}
        semantic = {"enabled": True, "name": "x_amz_bedrock_agentcore_search"}
        base["search"] = semantic if mcp.get("searchType") == "SEMANTIC" else {}
    try:
        return validate(GatewaySpec, base, source="request")
    except ConfigError as exc:
        raise refused(exc) from None


async def _gateway_out(call: Call, spec: GatewaySpec, res: AwsResource) -> Params:
    record = await call.system.store.get_gateway(call.tenant, spec.name)
    updated: datetime = max(res.updated_at, record.updated_at) if record is not None else res.updated_at
    a = res.attrs
    return _strip(
        {
            "gatewayArn": call.arn("bedrock-agentcore", f"gateway/{res.resource_id}"),
            "gatewayId": res.resource_id,
            "gatewayUrl": call.base_url.rstrip("/") + mcp_path(call.tenant, spec.name),
            "createdAt": res.created_at,
            "updatedAt": updated,
            "status": "READY",
            "name": spec.name,
            "description": spec.description or None,
            "protocolType": "MCP",
            **{k: a.get(k) for k in _GATEWAY_ATTRS if k != "tags"},
            **_authorizer(spec),
        }
    )


async def _gateway_by_id(call: Call, identifier: str) -> tuple[GatewaySpec, AwsResource]:
    aws = StoreAws(call.system.store)
    res = await aws.by_id(call.tenant, GATEWAY, identifier)
    spec = await call.system.load_spec(call.tenant, res.name) if res is not None else None
    if res is None or spec is None:
        raise not_found(f"gateway {identifier} does not exist")
    return spec, res


async def _ensure(call: Call, spec: GatewaySpec) -> AwsResource:
    return await StoreAws(call.system.store).ensure(
        call.tenant, GATEWAY, spec.name, lambda: gateway_id(spec.name)
    )


async def create_gateway(call: Call, params: Params) -> Params:
    aws = StoreAws(call.system.store)
    token = params.get("clientToken")
    if token:
        earlier = await aws.by_client_token(call.tenant, GATEWAY, token)
        if earlier is not None:
            spec = await call.system.load_spec(call.tenant, earlier.name)
            if spec is not None:
                return await _gateway_out(call, spec, earlier)  # the same request again: the same answer
    new = gateway_id(params["name"])  # known before the gateway is written: its policies name its ARN
    spec = await governed(call, _gateway_spec(params, None), params.get(ATTACHMENT), new)
    attrs = {k: params[k] for k in _GATEWAY_ATTRS if params.get(k) is not None}
    try:
        await changes.put_gateway(call.system, call.tenant, spec, create=True)
    except changes.Exists:
        raise AwsError("ConflictException", f"a gateway named {spec.name} exists", 409) from None
    except ConfigError as exc:
        raise refused(exc) from None
    await aws.delete(call.tenant, GATEWAY, spec.name)  # a row left by a gateway deleted elsewhere
    res = await aws.ensure(call.tenant, GATEWAY, spec.name, lambda: new, attrs, token)
    return await _gateway_out(call, spec, res)


async def get_gateway(call: Call, params: Params) -> Params:
    spec, res = await _gateway_by_id(call, params["gatewayIdentifier"])
    return await _gateway_out(call, spec, res)


async def list_gateways(call: Call, params: Params) -> Params:
    items = []
    for spec in (await changes.specs(call.system, call.tenant)).values():
        res = await _ensure(call, spec)
        items.append({"spec": spec, "res": res, "name": spec.name})
    chunk, token = page(items, params)
    out = []
    for item in chunk:
        full = await _gateway_out(call, item["spec"], item["res"])
        keep = ("gatewayId", "name", "status", "description", "createdAt", "updatedAt", "authorizerType")
        out.append({k: full[k] for k in keep if k in full} | {"protocolType": "MCP"})
    return _strip({"items": out, "nextToken": token})


async def update_gateway(call: Call, params: Params) -> Params:
    kept, res = await _gateway_by_id(call, params["gatewayIdentifier"])
    if params["name"] != kept.name:
        raise validation(f"a gateway keeps its name: this one is {kept.name}, not {params['name']}")
    spec = await governed(call, _gateway_spec(params, kept), params.get(ATTACHMENT), res.resource_id)
    try:
        await changes.put_gateway(call.system, call.tenant, spec)
    except ConfigError as exc:
        raise refused(exc) from None
    attrs = {k: params[k] for k in _GATEWAY_ATTRS if params.get(k) is not None}
    aws = StoreAws(call.system.store)
    await aws.update(call.tenant, GATEWAY, spec.name, attrs)
    updated = await aws.get(call.tenant, GATEWAY, spec.name)
    return await _gateway_out(call, spec, updated or res)


async def delete_gateway(call: Call, params: Params) -> Params:
    spec, res = await _gateway_by_id(call, params["gatewayIdentifier"])
    if spec.targets:
        raise AwsError(
            "ConflictException",
            f"gateway {res.resource_id} still has {len(spec.targets)} target(s); delete them first",
            409,
        )
    try:
        await changes.delete_gateway(call.system, call.tenant, spec.name)
    except changes.Missing as exc:
        raise not_found(exc.message) from None
    aws = StoreAws(call.system.store)
    await aws.delete(call.tenant, GATEWAY, spec.name)
    await aws.delete_under(call.tenant, TARGET, f"{spec.name}/")
    return {"gatewayId": res.resource_id, "status": "DELETING"}


# -- targets -------------------------------------------------------------------


INLINE = "targetConfiguration.mcp.openApiSchema.inlinePayload"
MAX_INLINE_BYTES = 2 * 1024 * 1024


async def _document(payload: str) -> dict[str, Any]:
    """The inline document, parsed off the event loop (YAML is parsed in C, but a large one still
    takes a while) and refused when its aliases would expand it (``document.parse``)."""
    raw = payload.encode()
    if len(raw) > MAX_INLINE_BYTES:
        raise validation(f"{INLINE} is larger than {MAX_INLINE_BYTES} bytes")
    async with _PARSING:
        try:
            doc = await anyio.to_thread.run_sync(document.parse, raw, INLINE)
        except ConfigError as exc:
            raise validation(f"{INLINE}: {exc.issues[0].message}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("paths", {}), dict):
        raise validation(f"{INLINE} is not an OpenAPI document (an object with `paths`)")
    return doc


async def _payload(schema: Params, tenant: str | None, where: str) -> str:
    """A schema's text: inline, or read from S3 (the operator's tenant only: ``_s3``)."""
    if schema.get("inlinePayload"):
        return str(schema["inlinePayload"])
    uri = (schema.get("s3") or {}).get("uri")
    if not uri:
        raise validation(f"{where} needs inlinePayload or s3.uri")
    try:
        return (await _s3.read(uri, tenant or "", f"{where}.s3")).decode()
    except UnicodeDecodeError:
        raise validation(f"{where}.s3: {uri} is not UTF-8 text") from None


_PARSING = anyio.Semaphore(2)  # documents parsed at once (each holds a worker thread)


def _api_key(config: Params, doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The document with one security scheme for the key AgentCore's configuration places, and
    the token-vault provider's name."""
    provider = config.get("credentialProvider", {}).get("apiKeyCredentialProvider") or {}
    arn = provider.get("providerArn", "")
    name = arn.rsplit("/", 1)[-1] if "/apikeycredentialprovider/" in arn else ""
    if not name:
        raise validation(
            "credentialProviderConfigurations[].credentialProvider.apiKeyCredentialProvider.providerArn must "
            "be the credentialProviderArn of an API-key credential provider (CreateApiKeyCredentialProvider)"
        )
    header = provider.get("credentialParameterName") or "Authorization"
    prefix = (provider.get("credentialPrefix") or "").strip()
    where = "query" if provider.get("credentialLocation") == "QUERY_PARAMETER" else "header"
    if where == "header" and header.lower() == "authorization" and prefix.lower() == "bearer":
        scheme: dict[str, Any] = {"type": "http", "scheme": "bearer"}
    elif prefix:
        raise validation(
            "credentialPrefix is served only as 'Bearer' in the Authorization header; use it or leave it out"
        )
    else:
        scheme = {"type": "apiKey", "in": where, "name": header}
    return _secured(doc, API_KEY_SCHEME, scheme), name


def _secured(doc: dict[str, Any], name: str, scheme: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` whose only security requirement is ``scheme``, named ``name``."""
    doc = json.loads(json.dumps(doc))
    components = doc.setdefault("components", {})
    if not isinstance(components, dict) or not isinstance(components.setdefault("securitySchemes", {}), dict):
        raise validation(f"{INLINE}: components.securitySchemes must be an object")
    components["securitySchemes"][name] = scheme
    doc["security"] = [{name: []}]
    for path in doc.get("paths", {}).values():
        for op in path.values() if isinstance(path, dict) else ():
            if isinstance(op, dict):
                op.pop("security", None)
    return doc


async def _target(
    params: Params, name: str, tenant: str | None = None, region: str = "us-east-1"
) -> tuple[TargetBase, list[ApiKeyCredential | OAuthLink]]:
    """The Switchboard target AgentCore's target configuration describes, and the token-vault
    providers it uses (an OAuth2 provider's entry is made when the gateway is: ``_vault_links``)."""
    mcp = (params.get("targetConfiguration") or {}).get("mcp")
    if not mcp:
        raise validation("targetConfiguration.mcp is the only target configuration Switchboard serves")
    configs = params.get("credentialProviderConfigurations") or []
    kinds = {c.get("credentialProviderType") for c in configs}
    unsupported = kinds - {"API_KEY", "GATEWAY_IAM_ROLE", "OAUTH"}
    if unsupported:
        raise validation(f"credentialProviderType {sorted(unsupported)[0]} is not served by Switchboard yet")
    if "API_KEY" in kinds and not mcp.get("openApiSchema"):  # (not silently dropped)
        raise validation(
            "credentialProviderType API_KEY is served by Switchboard for openApiSchema targets only"
        )
    if "OAUTH" in kinds and not mcp.get("openApiSchema"):
        raise validation(
            "credentialProviderType OAUTH is served by Switchboard for openApiSchema targets only"
        )
    description = params.get("description") or ""
    providers: list[ApiKeyCredential | OAuthLink] = []
    try:
        if mcp.get("openApiSchema"):
            schema = mcp["openApiSchema"]
            doc = await _document(await _payload(schema, tenant, "targetConfiguration.mcp.openApiSchema"))
            credentials: dict[str, SecretRef] = {}
            for config in configs:
                if config.get("credentialProviderType") == "API_KEY":
                    doc, provider = _api_key(config, doc)
                    providers.append(ApiKeyCredential(name=provider, kind="api_key", vault="tenant"))
                    credentials = {API_KEY_SCHEME: SecretRef(provider=provider)}
                elif config.get("credentialProviderType") == "OAUTH":  # the token, as a bearer token
                    oauth = oauth_link(config)
                    doc = _secured(doc, OAUTH_SCHEME, {"type": "http", "scheme": "bearer"})
                    providers.append(oauth)
                    credentials = {OAUTH_SCHEME: SecretRef(provider=oauth.name)}
            target: TargetBase = OpenApiTarget(
                name=name, description=description, kind="openapi", spec=doc, credentials=credentials
            )
        elif mcp.get("apiGateway"):
            if kinds - {"GATEWAY_IAM_ROLE"}:
                raise validation("an apiGateway target is called as the API allows without credentials here")
            doc, include, overrides = await _apigateway.target_parts(mcp["apiGateway"], tenant, region)
            target = validate(
                OpenApiTarget,
                {"name": name, "description": description, "kind": "openapi", "spec": doc}
                | {"include_paths": include, "overrides": overrides},
                source="request",
            )
        elif mcp.get("mcpServer"):
            target = McpTarget(
                name=name, description=description, kind="mcp", url=mcp["mcpServer"]["endpoint"]
            )
        elif mcp.get("lambda"):
            fn = mcp["lambda"]
            schema = fn.get("toolSchema") or {}
            if not schema.get("inlinePayload"):
                where = "targetConfiguration.mcp.lambda.toolSchema"
                schema = {"inlinePayload": _s3.tools(await _payload(schema, tenant, where), where)}
            fields = [("name", "name"), ("description", "description"), ("inputSchema", "input_schema")]
            fields.append(("outputSchema", "output_schema"))
            tools = [
                {ours: t[theirs] for theirs, ours in fields if t.get(theirs) is not None}
                for t in schema["inlinePayload"]
            ]
            target = validate(
                LambdaTarget,
                {
                    "name": name,
                    "description": description,
                    "kind": "lambda",
                    "function_name": fn["lambdaArn"],
                    "tools": tools,
                },
                source="request",
            )
        else:
            kind = next(iter(mcp), "none")
            raise validation(f"targetConfiguration.mcp.{kind} is not served by Switchboard yet")
    except ConfigError as exc:
        raise refused(exc) from None
    except ValueError as exc:  # a model's own check (pydantic)
        raise validation(str(exc)) from None
    return target, providers


def _with_providers(spec: GatewaySpec, providers: list[ApiKeyCredential]) -> GatewaySpec:
    names = {p.name: p.kind for p in spec.credential_providers}
    for provider in providers:
        if names.get(provider.name, "api_key") != "api_key":
            kind = names[provider.name]
            raise validation(
                f"gateway {spec.name}'s credential provider {provider.name} is {kind}, not a key"
            )
        if provider.name in names:
            continue
        spec = spec.model_copy(update={"credential_providers": [*spec.credential_providers, provider]})
        names[provider.name] = provider.kind
    return spec


def _target_out(call: Call, gw: AwsResource, target: TargetBase, res: AwsResource) -> Params:
    a = res.attrs
    return _strip(
        {
            "gatewayArn": call.arn("bedrock-agentcore", f"gateway/{gw.resource_id}"),
            "targetId": res.resource_id,
            "createdAt": res.created_at,
            "updatedAt": res.updated_at,
            "status": "READY",
            "name": target.name,
            "description": target.description or None,
            "targetConfiguration": a.get("targetConfiguration") or {"mcp": {}},
            "credentialProviderConfigurations": a.get("credentialProviderConfigurations") or [],
            "protocolType": "MCP",
        }
    )


async def _put_target(
    call: Call, params: Params, spec: GatewaySpec, name: str, *, create: bool
) -> TargetBase:
    target, providers = await _target(params, name, call.tenant, call.region)
    gateway = _with_providers(spec, [p for p in providers if isinstance(p, ApiKeyCredential)])
    targets = [target if t.name == name else t for t in gateway.targets]
    if not any(t.name == name for t in gateway.targets):
        targets.append(target)
    gateway = gateway.model_copy(update={"targets": targets})
    gateway = await link(call, gateway, name, [p for p in providers if isinstance(p, OAuthLink)])
    try:
        await changes.put_gateway(call.system, call.tenant, gateway)
    except ConfigError as exc:
        raise refused(exc) from None
    return target


def _target_attrs(params: Params) -> Params:
    return {k: params[k] for k in ("targetConfiguration", "credentialProviderConfigurations") if k in params}


async def create_gateway_target(call: Call, params: Params) -> Params:
    spec, gw = await _gateway_by_id(call, params["gatewayIdentifier"])
    aws = StoreAws(call.system.store)
    token = params.get("clientToken")
    earlier = await aws.by_client_token(call.tenant, TARGET, token) if token else None
    if earlier is not None and earlier.name.startswith(f"{spec.name}/"):
        made = next((t for t in spec.targets if t.name == earlier.name.partition("/")[2]), None)
        if made is not None:
            return _target_out(call, gw, made, earlier)  # the same request again: the same answer
    new = target_id()
    name = params.get("name") or f"target-{new.lower()}"
    if any(t.name == name for t in spec.targets):
        raise AwsError("ConflictException", f"gateway {gw.resource_id} has a target named {name}", 409)
    target = await _put_target(call, params, spec, name, create=True)
    key = f"{spec.name}/{name}"
    await aws.delete(call.tenant, TARGET, key)
    res = await aws.ensure(
        call.tenant, TARGET, key, lambda: new, _target_attrs(params), params.get("clientToken")
    )
    return _target_out(call, gw, target, res)


async def _target_by_id(
    call: Call, params: Params
) -> tuple[GatewaySpec, AwsResource, TargetBase, AwsResource]:
    spec, gw = await _gateway_by_id(call, params["gatewayIdentifier"])
    res = await StoreAws(call.system.store).by_id(call.tenant, TARGET, params["targetId"])
    name = res.name.partition("/")[2] if res is not None and res.name.startswith(f"{spec.name}/") else None
    target = next((t for t in spec.targets if t.name == name), None)
    if res is None or target is None:
        raise not_found(f"target {params['targetId']} does not exist in gateway {gw.resource_id}")
    return spec, gw, target, res


async def get_gateway_target(call: Call, params: Params) -> Params:
    _, gw, target, res = await _target_by_id(call, params)
    return _target_out(call, gw, target, res)


async def list_gateway_targets(call: Call, params: Params) -> Params:
    spec, _ = await _gateway_by_id(call, params["gatewayIdentifier"])
    aws = StoreAws(call.system.store)
    items = []
    for target in spec.targets:
        res = await aws.ensure(call.tenant, TARGET, f"{spec.name}/{target.name}", target_id)
        items.append({"name": target.name, "target": target, "res": res})
    chunk, token = page(items, params)
    out = [
        _strip(
            {
                "targetId": i["res"].resource_id,
                "name": i["name"],
                "status": "READY",
                "description": i["target"].description or None,
                "createdAt": i["res"].created_at,
                "updatedAt": i["res"].updated_at,
            }
        )
        for i in chunk
    ]
    return _strip({"items": out, "nextToken": token})


async def update_gateway_target(call: Call, params: Params) -> Params:
    spec, gw, kept, res = await _target_by_id(call, params)
    if params.get("name") and params["name"] != kept.name:
        raise validation(f"a target keeps its name: this one is {kept.name}, not {params['name']}")
    target = await _put_target(call, params, spec, kept.name, create=False)
    aws = StoreAws(call.system.store)
    await aws.update(call.tenant, TARGET, res.name, _target_attrs(params))
    return _target_out(call, gw, target, await aws.get(call.tenant, TARGET, res.name) or res)


async def delete_gateway_target(call: Call, params: Params) -> Params:
    spec, gw, target, res = await _target_by_id(call, params)
    try:
        await changes.delete_target(call.system, call.tenant, spec.name, target.name)
    except changes.Missing as exc:
        raise not_found(exc.message) from None
    await StoreAws(call.system.store).delete(call.tenant, TARGET, res.name)
    return {
        "gatewayArn": call.arn("bedrock-agentcore", f"gateway/{gw.resource_id}"),
        "targetId": res.resource_id,
        "status": "DELETING",
    }


async def synchronize_gateway_targets(call: Call, params: Params) -> Params:
    spec, gw = await _gateway_by_id(call, params["gatewayIdentifier"])
    wanted = set(params.get("targetIdList") or [])
    aws = StoreAws(call.system.store)
    out = []
    for target in spec.targets:
        res = await aws.ensure(call.tenant, TARGET, f"{spec.name}/{target.name}", target_id)
        if not wanted or res.resource_id in wanted:
            out.append(_target_out(call, gw, target, res))
    await call.system.hub.refresh(call.tenant, [spec.name])  # list every target's tools again
    return {"targets": out}


HANDLERS = {
    "CreateGateway": create_gateway,
    "GetGateway": get_gateway,
    "ListGateways": list_gateways,
    "UpdateGateway": update_gateway,
    "DeleteGateway": delete_gateway,
    "CreateGatewayTarget": create_gateway_target,
    "GetGatewayTarget": get_gateway_target,
    "ListGatewayTargets": list_gateway_targets,
    "UpdateGatewayTarget": update_gateway_target,
    "DeleteGatewayTarget": delete_gateway_target,
    "SynchronizeGatewayTargets": synchronize_gateway_targets,
}
