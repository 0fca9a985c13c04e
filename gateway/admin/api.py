"""Admin API handlers (Starlette) and the OpenAPI 3.1 document that describes them."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import orjson
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import capabilities, connectors
from gateway.admin._bodies import Decision, NewKey, PinApproval, Secret
from gateway.admin._openapi import Operation, describe
from gateway.auth import KEY_PREFIX, qualified
from gateway.config import GatewaySpec, Target, TargetBase, to_store, validate
from gateway.core.errors import ConfigError, ConfigIssue
from gateway.pins import NotPinned, approve_tools, target_review
from gateway.store import StoreApprovals, StoreCalls, StoreError
from gateway.system import Switchboard, compile_check
from identity.inbound import new_key
from identity.outbound import SERVICE
from identity.vault import Owner

SystemGetter = Callable[[], Switchboard]
Handler = Callable[[Request, Switchboard, str], Awaitable[Response]]

MAX_BODY_BYTES = 1024 * 1024
_TARGET: TypeAdapter[TargetBase] = TypeAdapter(Target)
G = "/admin/v1/gateways"
M = TypeVar("M")


def _error(status: int, message: str, issues: list[ConfigIssue] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if issues:
        body["issues"] = [{"location": i.location, "message": i.message} for i in issues]
    headers = {"WWW-Authenticate": 'Bearer realm="switchboard-admin"'} if status == 401 else None
    return JSONResponse(body, status, headers=headers)


class _TooLarge(Exception):
    pass


async def _json_body(request: Request) -> Any:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise _TooLarge
    if not raw:
        raise ConfigError(
            [ConfigIssue("the request body is empty; send a JSON object", source="request body")]
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError([ConfigIssue(f"not valid JSON: {exc}", source="request body")]) from None


async def _body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model`` (ConfigError naming each field that is wrong)."""
    return validate(model, await _json_body(request), source="request body")


def _gateway_wire(spec: GatewaySpec, base_url: str, tenant: str) -> dict[str, Any]:
    out = spec.model_dump(mode="json", exclude_defaults=True)
    out["targets"] = [t.model_dump(mode="json", exclude_defaults=True) for t in spec.targets]
    if capabilities.is_operator(tenant):
        path = "/mcp" if spec.name == "default" else f"/gateways/{spec.name}/mcp"
    else:
        path = f"/tenants/{tenant}/gateways/{spec.name}/mcp"
    out["url"] = base_url.rstrip("/") + path
    return out


async def _guard(
    system: Switchboard, tenant: str, spec: GatewaySpec, kept: GatewaySpec | None, target: int | None = None
) -> None:
    """A tenant admin's change may not reach the gateway's host (see gateway/capabilities.py).

    ``target``: the body was this one target of ``spec``; fields are named within it."""
    if capabilities.is_operator(tenant):
        return
    try:
        await capabilities.check_tenant_change(spec, kept, allow=system.settings.egress_allow)
    except ConfigError as exc:
        if target is None:
            raise
        inside = f"targets[{target}]."
        raise ConfigError(
            [
                dataclasses.replace(i, location=i.location.removeprefix(inside))
                if i.location.startswith(inside)
                else i
                for i in exc.issues
            ]
        ) from None


async def _specs(system: Switchboard, tenant: str) -> dict[str, GatewaySpec]:
    return {s.name: s for s in await system.load_specs(tenant)}


# -- handlers ------------------------------------------------------------------


async def list_gateways(request: Request, system: Switchboard, tenant: str) -> Response:
    specs = await _specs(system, tenant)
    return JSONResponse(
        {"gateways": [_gateway_wire(s, str(request.base_url), tenant) for s in specs.values()]}
    )


async def create_gateway(request: Request, system: Switchboard, tenant: str) -> Response:
    spec = await _body(request, GatewaySpec)
    if await system.store.get_gateway(tenant, spec.name) is not None:
        return _error(409, f"gateway {spec.name!r} exists; PUT /admin/v1/gateways/{spec.name} to replace it")
    await _guard(system, tenant, spec, None)
    return await _put_whole_gateway(request, system, tenant, spec, created_status=201)


async def _put_whole_gateway(
    request: Request, system: Switchboard, tenant: str, spec: GatewaySpec, created_status: int = 200
) -> Response:
    await compile_check(tenant, [spec])
    changes = await system.store.apply(tenant, [to_store(spec)])
    await system.reload()
    created = any(kind == "gateway" and change == "created" for kind, _, change in changes)
    return JSONResponse(
        {
            "gateway": _gateway_wire(spec, str(request.base_url), tenant),
            "changes": [list(c) for c in changes],
        },
        created_status if created else 200,
    )


async def get_gateway(request: Request, system: Switchboard, tenant: str) -> Response:
    name = request.path_params["gateway"]
    spec = (await _specs(system, tenant)).get(name)
    if spec is None:
        return _error(404, f"no gateway named {name!r}; GET /admin/v1/gateways lists them")
    return JSONResponse(_gateway_wire(spec, str(request.base_url), tenant))


async def put_gateway(request: Request, system: Switchboard, tenant: str) -> Response:
    name = request.path_params["gateway"]
    body = await _json_body(request)
    if isinstance(body, dict):
        body.setdefault("name", name)
        if body["name"] != name:
            return _error(400, f"the body names gateway {body['name']!r} but the URL names {name!r}")
    spec = validate(GatewaySpec, body, source="request body")
    await _guard(system, tenant, spec, (await _specs(system, tenant)).get(name))
    return await _put_whole_gateway(request, system, tenant, spec)


async def delete_gateway(request: Request, system: Switchboard, tenant: str) -> Response:
    name = request.path_params["gateway"]
    if not await system.store.delete_gateway(tenant, name):
        return _error(404, f"no gateway named {name!r}")
    await system.reload()
    return Response(status_code=204)


async def list_targets(request: Request, system: Switchboard, tenant: str) -> Response:
    name = request.path_params["gateway"]
    spec = (await _specs(system, tenant)).get(name)
    if spec is None:
        return _error(404, f"no gateway named {name!r}")
    return JSONResponse({"targets": [t.model_dump(mode="json", exclude_defaults=True) for t in spec.targets]})


async def _write_target(request: Request, system: Switchboard, tenant: str, *, create: bool) -> Response:
    gw_name = request.path_params["gateway"]
    specs = await _specs(system, tenant)
    gw = specs.get(gw_name)
    if gw is None:
        return _error(404, f"no gateway named {gw_name!r}; create it first with POST /admin/v1/gateways")
    body = await _json_body(request)
    if not create and isinstance(body, dict):
        body.setdefault("name", request.path_params["target"])
        if body["name"] != request.path_params["target"]:
            return _error(
                400,
                f"the body names target {body['name']!r} but the URL names {request.path_params['target']!r}",
            )
    target: TargetBase = validate(_TARGET, body, source="request body")
    exists = any(t.name == target.name for t in gw.targets)
    if create and exists:
        return _error(
            409, f"target {target.name!r} exists; PUT /admin/v1/gateways/{gw_name}/targets/{target.name}"
        )
    targets = [target if t.name == target.name else t for t in gw.targets]
    if not exists:
        targets.append(target)
    candidate = gw.model_copy(update={"targets": targets})
    await _guard(system, tenant, candidate, gw, target=targets.index(target))
    await compile_check(tenant, [candidate])
    change = await system.store.put_target(
        tenant, gw_name, target.name, target.model_dump(mode="json", exclude={"name"}, exclude_defaults=True)
    )
    await system.reload()
    status = 201 if change == "created" else 200
    return JSONResponse(
        {"target": target.model_dump(mode="json", exclude_defaults=True), "change": change}, status
    )


async def create_target(request: Request, system: Switchboard, tenant: str) -> Response:
    return await _write_target(request, system, tenant, create=True)


async def put_target(request: Request, system: Switchboard, tenant: str) -> Response:
    return await _write_target(request, system, tenant, create=False)


async def get_target(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, name = request.path_params["gateway"], request.path_params["target"]
    gw = (await _specs(system, tenant)).get(gw_name)
    target = next((t for t in gw.targets if t.name == name), None) if gw else None
    if target is None:
        return _error(404, f"no target {name!r} in gateway {gw_name!r}")
    return JSONResponse(target.model_dump(mode="json", exclude_defaults=True))


async def delete_target(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, name = request.path_params["gateway"], request.path_params["target"]
    if not await system.store.delete_target(tenant, gw_name, name):
        return _error(404, f"no target {name!r} in gateway {gw_name!r}")
    await system.reload()
    return Response(status_code=204)


def _connector_wire(entry: connectors.Entry) -> dict[str, Any]:
    shown = connectors.describe(entry)
    for local in ("file", "spec"):  # the server's own paths are none of a tenant's business
        shown.pop(local, None)
    return shown


async def list_connectors(request: Request, system: Switchboard, tenant: str) -> Response:
    found = connectors.catalog()
    problems = [{"location": i.location, "message": i.message} for i in found.problems]
    return JSONResponse(
        {"connectors": [_connector_wire(e) for e in found.entries.values()], "problems": problems}
    )


async def get_connector(request: Request, system: Switchboard, tenant: str) -> Response:
    name = request.path_params["connector"]
    if name not in connectors.catalog().entries:
        return _error(404, f"no connector named {name!r}; GET /admin/v1/connectors lists them")
    entry = connectors.find(name)
    issues = await anyio.to_thread.run_sync(connectors.checked, entry)
    problems = [{"location": i.location, "message": i.message} for i in issues]
    return JSONResponse({**_connector_wire(entry), "problems": problems})


async def enable_connector(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, name = request.path_params["gateway"], request.path_params["connector"]
    if name not in connectors.catalog().entries:
        return _error(404, f"no connector named {name!r}; GET /admin/v1/connectors lists them")
    gw = (await _specs(system, tenant)).get(gw_name)
    if gw is None:
        return _error(404, f"no gateway named {gw_name!r}; create it first with POST /admin/v1/gateways")
    ask = await _body(request, connectors.EnableRequest)
    changed = connectors.enable(gw, connectors.find(name), ask)
    await _guard(system, tenant, changed, gw)
    await compile_check(tenant, [changed])
    target_name = ask.target or name
    # Secrets given as such are kept encrypted in the vault, never in the configuration.
    kept = [(kind, value) for kind, value in (("api_key", ask.api_key), ("client_secret", ask.client_secret))]
    for kind, value in kept:
        if isinstance(value, str):
            assert system.vault is not None
            await system.vault.put(Owner(tenant, SERVICE, qualified(gw_name, target_name), kind), value)
    await system.store.apply(tenant, [to_store(changed)])
    await system.reload()
    target = next(t for t in changed.targets if t.name == target_name)
    return JSONResponse({"target": target.model_dump(mode="json", exclude_defaults=True)}, 201)


async def list_tools(request: Request, system: Switchboard, tenant: str) -> Response:
    name = request.path_params["gateway"]
    live = system.hub.get(tenant, name)
    if live is None:
        return _error(404, f"no gateway named {name!r}")
    snap = live.catalog.snapshot
    problems = {name: list(p.problems()) for name, p in live.catalog.providers.items() if p.problems()}
    return JSONResponse({"tools": snap.tool_list, "failed_targets": snap.failed, "problems": problems})


async def list_pins(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, name = request.path_params["gateway"], request.path_params["target"]
    try:
        tools = await target_review(system.hub, tenant, gw_name, name)
    except NotPinned as exc:
        return _error(404, str(exc))
    return JSONResponse({"tools": tools})


async def approve_pins(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, name = request.path_params["gateway"], request.path_params["target"]
    has_body = request.headers.get("content-length", "0") != "0"
    ask = await _body(request, PinApproval) if has_body else PinApproval()
    try:
        approved = await approve_tools(system.hub, tenant, gw_name, name, ask.tools)
    except NotPinned as exc:
        return _error(404, str(exc))
    except KeyError as exc:
        return _error(422, str(exc.args[0]))
    await system.reload()
    return JSONResponse(
        {"approved": approved, "tools": await target_review(system.hub, tenant, gw_name, name)}
    )


async def create_key(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name = request.path_params["gateway"]
    if system.hub.get(tenant, gw_name) is None:
        return _error(404, f"no gateway named {gw_name!r}")
    ask = await _body(request, NewKey)
    subject, scopes = ask.subject, ask.scopes
    key_id, key, digest = new_key(KEY_PREFIX)
    await system.store.add_api_key(
        tenant, key_id, digest, "gateway", gateway=gw_name, subject=subject, scopes=scopes
    )
    return JSONResponse(
        {
            "key_id": key_id,
            "key": key,
            "gateway": gw_name,
            "subject": subject,
            "scopes": scopes,
            "shown": "once",
        },
        201,
    )


async def list_keys(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name = request.path_params["gateway"]
    return JSONResponse({"keys": await system.store.list_gateway_keys(tenant, gw_name)})


async def revoke_key(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, key_id = request.path_params["gateway"], request.path_params["key_id"]
    keys = await system.store.list_gateway_keys(tenant, gw_name)
    if not any(k["key_id"] == key_id for k in keys) or not await system.store.revoke_api_key(tenant, key_id):
        return _error(404, f"gateway {gw_name!r} has no key {key_id!r}")
    if system.authenticator is not None:
        await system.authenticator.revoked()  # every replica stops trusting remembered keys
    return Response(status_code=204)


async def put_credential(request: Request, system: Switchboard, tenant: str) -> Response:
    """Keep a provider's secret in the vault: an api_key provider's key, an OAuth provider's client
    secret (it takes precedence over the configuration's)."""
    gw_name, name = request.path_params["gateway"], request.path_params["provider"]
    owner = await _key_provider(system, tenant, gw_name, name)
    if isinstance(owner, Response):
        return owner
    secret = (await _body(request, Secret)).secret
    assert system.vault is not None
    await system.vault.put(owner, secret)
    return JSONResponse({"gateway": gw_name, "provider": name, "stored": "encrypted"})


async def delete_credential(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, name = request.path_params["gateway"], request.path_params["provider"]
    owner = await _key_provider(system, tenant, gw_name, name)
    if isinstance(owner, Response):
        return owner
    assert system.vault is not None
    if not await system.vault.delete(owner):
        return _error(404, f"no key is kept for {name!r}")
    return Response(status_code=204)


async def _key_provider(system: Switchboard, tenant: str, gateway: str, name: str) -> Owner | Response:
    live = system.hub.get(tenant, gateway)
    spec = next((p for p in live.spec.credential_providers if p.name == name), None) if live else None
    if spec is None:
        return _error(404, f"gateway {gateway!r} has no credential provider {name!r}")
    # An api_key provider keeps its key; an OAuth provider its client secret.
    return Owner(
        tenant, SERVICE, qualified(gateway, name), "api_key" if spec.kind == "api_key" else "client_secret"
    )


async def query_audit(request: Request, system: Switchboard, tenant: str) -> Response:
    """Recorded tools/calls, newest first; filter by gateway, tool, subject, decision, outcome."""
    q = request.query_params
    try:
        limit = int(q.get("limit", "100"))
    except ValueError:
        return _error(422, "`limit` must be a number (1-1000)")
    filters = {k: q.get(k) for k in ("gateway", "tool", "subject", "decision", "outcome")}
    records = await StoreCalls(system.store).query(tenant, limit=limit, **filters)
    return JSONResponse({"records": records})


async def list_approvals(request: Request, system: Switchboard, tenant: str) -> Response:
    status = request.query_params.get("status")
    return JSONResponse({"approvals": await StoreApprovals(system.store).list(tenant, status)})


async def decide_approval(request: Request, system: Switchboard, tenant: str) -> Response:
    approval_id = request.path_params["approval_id"]
    ask = await _body(request, Decision)
    decision, reason = ask.decision, ask.reason
    approvals = StoreApprovals(system.store)
    status = "approved" if decision == "approve" else "rejected"
    if not await approvals.decide(tenant, approval_id, status, "an administrator (admin API)", reason):
        found = await approvals.get(tenant, approval_id)
        if found is None:
            return _error(404, f"no approval {approval_id!r}")
        return _error(409, f"approval {approval_id} is {found['status']} already")
    return JSONResponse(await approvals.get(tenant, approval_id))


# -- plumbing ------------------------------------------------------------------


def _endpoint(handler: Handler, get_system: SystemGetter) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        system = get_system()
        tenant = await system.admin_tenant(request.headers.get("authorization"))
        if tenant is None:
            return _error(401, "missing or invalid admin key: send `Authorization: Bearer sb_admin_...`")
        try:
            return await handler(request, system, tenant)
        except ConfigError as exc:
            return _error(422, "the change was refused; nothing was stored", exc.issues)
        except _TooLarge:
            return _error(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        except KeyError as exc:  # the store's "no such gateway", after a concurrent delete
            return _error(404, str(exc.args[0]) if exc.args else "not found")
        except StoreError as exc:
            return _error(503, f"the store is unavailable; nothing was changed: {exc}")

    return endpoint


CREATED, EXISTS, REFUSED = (
    "Created",
    "Exists already",
    "Refused: the request is not valid; nothing was stored",
)
_WRITE = {200: "Replaced", 201: CREATED, 422: REFUSED}
_CREATE = {201: CREATED, 409: EXISTS, 422: REFUSED}

OPERATIONS: list[Operation] = [
    Operation(G, "GET", list_gateways, "List gateways"),
    Operation(
        G,
        "POST",
        create_gateway,
        "Create a gateway (with its targets)",
        GatewaySpec,
        _CREATE,
    ),
    Operation(G + "/{gateway}", "GET", get_gateway, "Get a gateway"),
    Operation(
        G + "/{gateway}",
        "PUT",
        put_gateway,
        "Create or replace a gateway and its targets",
        GatewaySpec,
        _WRITE,
    ),
    Operation(G + "/{gateway}", "DELETE", delete_gateway, "Delete a gateway and its targets"),
    Operation(G + "/{gateway}/targets", "GET", list_targets, "List a gateway's targets"),
    Operation(
        G + "/{gateway}/targets",
        "POST",
        create_target,
        "Add a target",
        Target,
        _CREATE,
    ),
    Operation(G + "/{gateway}/targets/{target}", "GET", get_target, "Get a target"),
    Operation(
        G + "/{gateway}/targets/{target}",
        "PUT",
        put_target,
        "Create or replace a target",
        Target,
        {**_WRITE, 400: "The body names another target than the URL"},
    ),
    Operation(G + "/{gateway}/targets/{target}", "DELETE", delete_target, "Delete a target"),
    Operation(
        G + "/{gateway}/targets/{target}/pins",
        "GET",
        list_pins,
        "A federated target's tools: approved, changed (with a diff), new or gone",
    ),
    Operation(
        G + "/{gateway}/targets/{target}/pins",
        "POST",
        approve_pins,
        "Approve the upstream's current definitions (all waiting, or the tools named)",
        PinApproval,
        {200: "OK", 422: "A named tool is not served now"},
        body_required=False,
    ),
    Operation(G + "/{gateway}/keys", "GET", list_keys, "A gateway's API keys (never the keys themselves)"),
    Operation(
        G + "/{gateway}/keys",
        "POST",
        create_key,
        "Make an API key for a gateway (shown once)",
        NewKey,
        {201: "Created; the key is in the body, shown once", 422: REFUSED},
    ),
    Operation(G + "/{gateway}/keys/{key_id}", "DELETE", revoke_key, "Revoke a gateway API key"),
    Operation(
        G + "/{gateway}/credentials/{provider}",
        "PUT",
        put_credential,
        "Keep a provider's key or OAuth client secret in the vault (never returned)",
        Secret,
        {200: "Stored, encrypted", 422: REFUSED},
    ),
    Operation(
        G + "/{gateway}/credentials/{provider}",
        "DELETE",
        delete_credential,
        "Forget a provider's kept key or client secret",
    ),
    Operation("/admin/v1/approvals", "GET", list_approvals, "Held and decided approvals (?status=pending)"),
    Operation(
        "/admin/v1/approvals/{approval_id}",
        "POST",
        decide_approval,
        "Approve or reject a held call",
        Decision,
        {200: "Decided", 409: "Decided already", 422: REFUSED},
    ),
    Operation(
        "/admin/v1/audit",
        "GET",
        query_audit,
        "Recorded tools/calls (?gateway=&tool=&subject=&decision=&outcome=&limit=)",
    ),
    Operation(G + "/{gateway}/tools", "GET", list_tools, "The gateway's resolved tools (MCP Tool objects)"),
    Operation(
        "/admin/v1/connectors", "GET", list_connectors, "The connector catalog (packaged SaaS platforms)"
    ),
    Operation(
        "/admin/v1/connectors/{connector}", "GET", get_connector, "One connector: tools, scopes, problems"
    ),
    Operation(
        G + "/{gateway}/connectors/{connector}",
        "POST",
        enable_connector,
        "Enable a connector: a target and its credential provider",
        connectors.EnableRequest,
        {201: "Enabled: the target made (its credential provider too)", 422: REFUSED},
    ),
]


def admin_routes(get_system: SystemGetter) -> list[BaseRoute]:
    """The admin API's routes; ``get_system`` returns the running Switchboard."""
    routes: list[BaseRoute] = []
    by_path: dict[str, dict[str, Handler]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, {})[op.method] = op.handler
    for path, handlers in by_path.items():
        endpoints = {m: _endpoint(h, get_system) for m, h in handlers.items()}

        async def dispatch(request: Request, endpoints: dict[str, Any] = endpoints) -> Response:
            return await endpoints[request.method](request)  # type: ignore[no-any-return]

        routes.append(Route(path, dispatch, methods=list(handlers)))

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    routes.append(Route("/admin/openapi.json", openapi, methods=["GET"]))
    return routes


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the admin API."""
    return describe(OPERATIONS)
