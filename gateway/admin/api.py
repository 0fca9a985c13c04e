"""Admin API handlers (Starlette) and the OpenAPI 3.1 document that describes them."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import changes, connectors
from gateway.admin._bodies import Decision, NewAccessKey, NewKey, PinApproval, RuntimeEndpoint, Secret
from gateway.admin._http import MAX_BODY_BYTES, TooLarge, body_as, error, json_body
from gateway.admin._keys import (
    create_access_key,
    create_key,
    delete_credential,
    list_access_keys,
    list_keys,
    put_credential,
    revoke_access_key,
    revoke_key,
)
from gateway.admin._memories import MEMORY_OPERATIONS
from gateway.admin._openapi import Operation, describe
from gateway.admin._runtimes import (
    delete_endpoint,
    delete_runtime,
    deploy_runtime,
    get_runtime,
    kill_runtime_session,
    list_runtime_sessions,
    list_runtimes,
    put_endpoint,
)
from gateway.admin._sandboxes import list_sessions, stop_session
from gateway.auth import qualified
from gateway.config import GatewaySpec, Target, TargetBase, to_store, validate
from gateway.core.errors import ConfigError
from gateway.pins import NotPinned, approve_tools, target_review
from gateway.store import StoreApprovals, StoreCalls, StoreError
from gateway.system import Switchboard, compile_check, mcp_path
from identity.outbound import SERVICE
from identity.vault import Owner

SystemGetter = Callable[[], Switchboard]
Handler = Callable[[Request, Switchboard, str], Awaitable[Response]]

_TARGET: TypeAdapter[TargetBase] = TypeAdapter(Target)
G = "/admin/v1/gateways"


def _gateway_wire(spec: GatewaySpec, base_url: str, tenant: str) -> dict[str, Any]:
    out = spec.model_dump(mode="json", exclude_defaults=True)
    out["targets"] = [t.model_dump(mode="json", exclude_defaults=True) for t in spec.targets]
    out["url"] = base_url.rstrip("/") + mcp_path(tenant, spec.name)
    return out


# -- handlers ------------------------------------------------------------------


async def list_gateways(request: Request, system: Switchboard, tenant: str) -> Response:
    specs = await changes.specs(system, tenant)
    return JSONResponse(
        {"gateways": [_gateway_wire(s, str(request.base_url), tenant) for s in specs.values()]}
    )


async def create_gateway(request: Request, system: Switchboard, tenant: str) -> Response:
    spec = await body_as(request, GatewaySpec)
    try:
        return await _put_whole_gateway(request, system, tenant, spec, create=True)
    except changes.Exists:
        return error(409, f"gateway {spec.name!r} exists; PUT /admin/v1/gateways/{spec.name} to replace it")


async def _put_whole_gateway(
    request: Request, system: Switchboard, tenant: str, spec: GatewaySpec, *, create: bool = False
) -> Response:
    changed = await changes.put_gateway(system, tenant, spec, create=create)
    created = any(kind == "gateway" and change == "created" for kind, _, change in changed)
    return JSONResponse(
        {
            "gateway": _gateway_wire(spec, str(request.base_url), tenant),
            "changes": [list(c) for c in changed],
        },
        201 if create and created else 200,
    )


async def get_gateway(request: Request, system: Switchboard, tenant: str) -> Response:
    name = request.path_params["gateway"]
    spec = (await changes.specs(system, tenant)).get(name)
    if spec is None:
        return error(404, f"no gateway named {name!r}; GET /admin/v1/gateways lists them")
    return JSONResponse(_gateway_wire(spec, str(request.base_url), tenant))


async def put_gateway(request: Request, system: Switchboard, tenant: str) -> Response:
    name = request.path_params["gateway"]
    body = await json_body(request)
    if isinstance(body, dict):
        body.setdefault("name", name)
        if body["name"] != name:
            return error(400, f"the body names gateway {body['name']!r} but the URL names {name!r}")
    spec = validate(GatewaySpec, body, source="request body")
    return await _put_whole_gateway(request, system, tenant, spec)


async def delete_gateway(request: Request, system: Switchboard, tenant: str) -> Response:
    try:
        await changes.delete_gateway(system, tenant, request.path_params["gateway"])
    except changes.Missing as exc:
        return error(404, exc.message)
    return Response(status_code=204)


async def list_targets(request: Request, system: Switchboard, tenant: str) -> Response:
    name = request.path_params["gateway"]
    spec = (await changes.specs(system, tenant)).get(name)
    if spec is None:
        return error(404, f"no gateway named {name!r}")
    return JSONResponse({"targets": [t.model_dump(mode="json", exclude_defaults=True) for t in spec.targets]})


async def _write_target(request: Request, system: Switchboard, tenant: str, *, create: bool) -> Response:
    gw_name = request.path_params["gateway"]
    specs = await changes.specs(system, tenant)
    gw = specs.get(gw_name)
    if gw is None:
        return error(404, f"no gateway named {gw_name!r}; create it first with POST /admin/v1/gateways")
    body = await json_body(request)
    if not create and isinstance(body, dict):
        body.setdefault("name", request.path_params["target"])
        if body["name"] != request.path_params["target"]:
            return error(
                400,
                f"the body names target {body['name']!r} but the URL names {request.path_params['target']!r}",
            )
    target: TargetBase = validate(_TARGET, body, source="request body")
    try:
        change = await changes.put_target(system, tenant, gw_name, target, create=create)
    except changes.Exists:
        return error(
            409, f"target {target.name!r} exists; PUT /admin/v1/gateways/{gw_name}/targets/{target.name}"
        )
    except changes.Missing as exc:
        return error(404, exc.message)
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
    gw = (await changes.specs(system, tenant)).get(gw_name)
    target = next((t for t in gw.targets if t.name == name), None) if gw else None
    if target is None:
        return error(404, f"no target {name!r} in gateway {gw_name!r}")
    return JSONResponse(target.model_dump(mode="json", exclude_defaults=True))


async def delete_target(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, name = request.path_params["gateway"], request.path_params["target"]
    try:
        await changes.delete_target(system, tenant, gw_name, name)
    except changes.Missing as exc:
        return error(404, exc.message)
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
        return error(404, f"no connector named {name!r}; GET /admin/v1/connectors lists them")
    entry = connectors.find(name)
    issues = await anyio.to_thread.run_sync(connectors.checked, entry)
    problems = [{"location": i.location, "message": i.message} for i in issues]
    return JSONResponse({**_connector_wire(entry), "problems": problems})


async def enable_connector(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, name = request.path_params["gateway"], request.path_params["connector"]
    if name not in connectors.catalog().entries:
        return error(404, f"no connector named {name!r}; GET /admin/v1/connectors lists them")
    gw = (await changes.specs(system, tenant)).get(gw_name)
    if gw is None:
        return error(404, f"no gateway named {gw_name!r}; create it first with POST /admin/v1/gateways")
    ask = await body_as(request, connectors.EnableRequest)
    changed = connectors.enable(gw, connectors.find(name), ask)
    await changes.guard(system, tenant, changed, gw)
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
        return error(404, f"no gateway named {name!r}")
    snap = live.catalog.snapshot
    problems = {name: list(p.problems()) for name, p in live.catalog.providers.items() if p.problems()}
    return JSONResponse({"tools": snap.tool_list, "failed_targets": snap.failed, "problems": problems})


async def list_pins(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, name = request.path_params["gateway"], request.path_params["target"]
    try:
        tools = await target_review(system.hub, tenant, gw_name, name)
    except NotPinned as exc:
        return error(404, str(exc))
    return JSONResponse({"tools": tools})


async def approve_pins(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name, name = request.path_params["gateway"], request.path_params["target"]
    ask = await body_as(request, PinApproval, optional=True)
    try:
        approved = await approve_tools(system.hub, tenant, gw_name, name, ask.tools)
    except NotPinned as exc:
        return error(404, str(exc))
    except KeyError as exc:
        return error(422, str(exc.args[0]))
    await system.reload()
    return JSONResponse(
        {"approved": approved, "tools": await target_review(system.hub, tenant, gw_name, name)}
    )


async def query_audit(request: Request, system: Switchboard, tenant: str) -> Response:
    """Recorded tools/calls, newest first; filter by gateway, tool, subject, decision, outcome."""
    q = request.query_params
    try:
        limit = int(q.get("limit", "100"))
    except ValueError:
        return error(422, "`limit` must be a number (1-1000)")
    filters = {k: q.get(k) for k in ("gateway", "tool", "subject", "decision", "outcome")}
    records = await StoreCalls(system.store).query(tenant, limit=limit, **filters)
    return JSONResponse({"records": records})


async def list_approvals(request: Request, system: Switchboard, tenant: str) -> Response:
    status = request.query_params.get("status")
    return JSONResponse({"approvals": await StoreApprovals(system.store).list(tenant, status)})


async def decide_approval(request: Request, system: Switchboard, tenant: str) -> Response:
    approval_id = request.path_params["approval_id"]
    ask = await body_as(request, Decision)
    decision, reason = ask.decision, ask.reason
    approvals = StoreApprovals(system.store)
    status = "approved" if decision == "approve" else "rejected"
    if not await approvals.decide(tenant, approval_id, status, "an administrator (admin API)", reason):
        found = await approvals.get(tenant, approval_id)
        if found is None:
            return error(404, f"no approval {approval_id!r}")
        return error(409, f"approval {approval_id} is {found['status']} already")
    return JSONResponse(await approvals.get(tenant, approval_id))


# -- plumbing ------------------------------------------------------------------


def _endpoint(handler: Handler, get_system: SystemGetter) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        system = get_system()
        tenant = await system.admin_tenant(request.headers.get("authorization"))
        if tenant is None:
            return error(401, "missing or invalid admin key: send `Authorization: Bearer sb_admin_...`")
        try:
            return await handler(request, system, tenant)
        except ConfigError as exc:
            return error(422, "the change was refused; nothing was stored", exc.issues)
        except TooLarge:
            return error(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        except KeyError as exc:  # the store's "no such gateway", after a concurrent delete
            return error(404, str(exc.args[0]) if exc.args else "not found")
        except StoreError as exc:
            return error(503, f"the store is unavailable; nothing was changed: {exc}")

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
    Operation(
        "/admin/v1/aws-keys",
        "GET",
        list_access_keys,
        "The tenant's AgentCore access keys (never the secrets)",
    ),
    Operation(
        "/admin/v1/aws-keys",
        "POST",
        create_access_key,
        "Make an access key for AgentCore's clients (SigV4; the secret is shown once)",
        NewAccessKey,
        {201: "Created; the secret access key is in the body, shown once", 422: REFUSED},
    ),
    Operation("/admin/v1/aws-keys/{access_key_id}", "DELETE", revoke_access_key, "Revoke an access key"),
    Operation(
        "/admin/v1/code-interpreter-sessions",
        "GET",
        list_sessions,
        "The tenant's code interpreter sessions in this process, with their age, use, CPU and memory "
        "(?status=READY|TERMINATED)",
    ),
    Operation(
        "/admin/v1/code-interpreter-sessions/{session_id}",
        "DELETE",
        stop_session,
        "Stop a code interpreter session (its sandbox and files are removed)",
        answers={200: "Stopped; the session as it ended"},
    ),
    Operation(
        "/admin/v1/runtime-sessions",
        "GET",
        list_runtime_sessions,
        "The tenant's hosted agent sessions in this process, with their age, last use, CPU and memory",
    ),
    Operation(
        "/admin/v1/runtime-sessions/{session_id}",
        "DELETE",
        kill_runtime_session,
        "Kill a hosted agent session at once (its sandbox, its processes and files)",
        answers={204: "Killed"},
    ),
    Operation("/admin/v1/runtimes", "GET", list_runtimes, "The tenant's hosted agents: versions, endpoints"),
    Operation("/admin/v1/runtimes/{runtime}", "GET", get_runtime, "One hosted agent: versions, endpoints"),
    Operation(
        "/admin/v1/runtimes/{runtime}",
        "DELETE",
        delete_runtime,
        "Delete a hosted agent, every version and endpoint (its sessions are killed)",
    ),
    Operation(
        "/admin/v1/runtimes/{runtime}/versions",
        "POST",
        deploy_runtime,
        "Deploy a new version from a zip of the agent's folder (the body, application/zip); "
        "?entry=main.py&protocol=HTTP|MCP|A2A&description=&env=NAME=VALUE&secret=NAME=PROVIDER "
        "(each as often as needed); requirements.txt may name packages only",
        answers={201: "Deployed: the new version", 413: "The zip is too large", 422: REFUSED},
    ),
    Operation(
        "/admin/v1/runtimes/{runtime}/endpoints/{endpoint}",
        "PUT",
        put_endpoint,
        "Point an endpoint at a version, with a canary version taking `weight` percent of new sessions",
        RuntimeEndpoint,
        {200: "The endpoint as it now is", 422: REFUSED},
    ),
    Operation(
        "/admin/v1/runtimes/{runtime}/endpoints/{endpoint}",
        "DELETE",
        delete_endpoint,
        "Delete a named endpoint (DEFAULT goes only with the runtime)",
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
    *MEMORY_OPERATIONS,
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
        return Response(_rendered_openapi(), media_type="application/json")

    routes.append(Route("/admin/openapi.json", openapi, methods=["GET"]))
    return routes


@functools.cache
def _rendered_openapi() -> bytes:
    """The document as served: it never changes while the process runs (and anyone may ask)."""
    return bytes(JSONResponse(openapi_document()).body)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the admin API."""
    return describe(OPERATIONS)
