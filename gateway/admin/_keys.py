"""Admin API: a gateway's API keys, the tenant's AgentCore access keys, and the secrets a
gateway's credential providers keep in the vault."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin._bodies import NewAccessKey, NewKey, Secret
from gateway.admin._http import body_as, error
from gateway.auth import KEY_PREFIX, vault_name
from gateway.system import Switchboard
from identity.inbound import new_key
from identity.outbound import SERVICE
from identity.vault import Owner


async def create_key(request: Request, system: Switchboard, tenant: str) -> Response:
    gw_name = request.path_params["gateway"]
    if system.hub.get(tenant, gw_name) is None:
        return error(404, f"no gateway named {gw_name!r}")
    ask = await body_as(request, NewKey)
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
        return error(404, f"gateway {gw_name!r} has no key {key_id!r}")
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
    secret = (await body_as(request, Secret)).secret
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
        return error(404, f"no key is kept for {name!r}")
    return Response(status_code=204)


async def _key_provider(system: Switchboard, tenant: str, gateway: str, name: str) -> Owner | Response:
    live = system.hub.get(tenant, gateway)
    spec = next((p for p in live.spec.credential_providers if p.name == name), None) if live else None
    if spec is None:
        return error(404, f"gateway {gateway!r} has no credential provider {name!r}")
    # An api_key provider keeps its key; an OAuth provider its client secret.
    return Owner(
        tenant, SERVICE, vault_name(gateway, spec), "api_key" if spec.kind == "api_key" else "client_secret"
    )


async def create_access_key(request: Request, system: Switchboard, tenant: str) -> Response:
    ask = await body_as(request, NewAccessKey)
    assert system.aws_keys is not None
    key = await system.aws_keys.create(tenant, ask.subject, frozenset(ask.planes))
    return JSONResponse(
        {
            "access_key_id": key.access_key_id,
            "secret_access_key": key.secret,
            "tenant": tenant,
            "subject": key.subject,
            "planes": sorted(key.planes),
            "shown": "once",
        },
        201,
    )


async def list_access_keys(request: Request, system: Switchboard, tenant: str) -> Response:
    assert system.aws_keys is not None
    return JSONResponse({"access_keys": await system.aws_keys.list(tenant)})


async def revoke_access_key(request: Request, system: Switchboard, tenant: str) -> Response:
    key_id = request.path_params["access_key_id"]
    assert system.aws_keys is not None
    if not await system.aws_keys.revoke(tenant, key_id):
        return error(404, f"this tenant has no access key {key_id!r}")
    return Response(status_code=204)
