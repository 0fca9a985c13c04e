"""Identity, both planes: API-key credential providers and workload identities (control plane),
workload access tokens and resource API keys (data plane), on the vault and workload tokens that
identity/ already has.

An API-key credential provider is a key in the tenant's token vault under the provider's name
(``~/{name}``): every gateway of the tenant may use it (a target names it in its
``credentialProviderConfigurations``), and an agent gets it with ``GetResourceApiKey``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.agentcore._call import AwsError, Call, Params, access_denied, conflict, not_found
from gateway.agentcore._gateways import paged
from gateway.auth import TENANT_VAULT, qualified
from gateway.store import AwsResource, StoreAws
from identity.outbound import SERVICE, CredentialError
from identity.vault import Owner

API_KEY, WORKLOAD = "api_key_provider", "workload"
TOKEN_VAULT = "default"


def _key_owner(tenant: str, name: str) -> Owner:
    return Owner(tenant, SERVICE, qualified(TENANT_VAULT, name), "api_key")


def _api_key_out(call: Call, res: AwsResource) -> Params:
    return {
        "apiKeySecretArn": {
            "secretArn": call.arn(
                "secretsmanager", f"secret:bedrock-agentcore-identity!{TOKEN_VAULT}/apikey/{res.name}"
            )
        },
        "apiKeySecretSource": "MANAGED",
        "name": res.name,
        "credentialProviderArn": call.arn(
            "acps", f"token-vault/{TOKEN_VAULT}/apikeycredentialprovider/{res.name}"
        ),
        "createdTime": res.created_at,
        "lastUpdatedTime": res.updated_at,
    }


def _managed_key(params: Params) -> str:
    if params.get("apiKeySecretConfig") or params.get("apiKeySecretSource") == "EXTERNAL":
        raise AwsError(
            "ValidationException",
            "apiKeySecretConfig (AWS Secrets Manager) is not reachable from Switchboard; send apiKey",
        )
    key = params.get("apiKey")
    if not key:
        raise AwsError("ValidationException", "apiKey is required: the key Switchboard keeps in its vault")
    return str(key)


async def create_api_key_provider(call: Call, params: Params) -> Params:
    name, key = params["name"], _managed_key(params)
    aws = StoreAws(call.system.store)
    if await aws.get(call.tenant, API_KEY, name) is not None:
        raise conflict(f"a credential provider named {name} exists")
    await call.vault.put(_key_owner(call.tenant, name), key)
    res = await aws.ensure(call.tenant, API_KEY, name, lambda: name)
    out = _api_key_out(call, res)
    return {k: out[k] for k in ("apiKeySecretArn", "apiKeySecretSource", "name", "credentialProviderArn")}


async def _named(call: Call, kind: str, name: str, what: str) -> AwsResource:
    res = await StoreAws(call.system.store).get(call.tenant, kind, name)
    if res is None:
        raise not_found(f"{what} {name} does not exist")
    return res


async def _listing(
    call: Call, kind: str, params: Params, out: Callable[[Call, AwsResource], Params], fields: tuple[str, ...]
) -> tuple[list[Params], dict[str, str]]:
    """One page of the tenant's resources of ``kind``, each cut to ``fields``; and its nextToken."""
    rows = await StoreAws(call.system.store).list(call.tenant, kind)
    return paged(rows, params, lambda r: {k: v for k, v in out(call, r).items() if k in fields})


async def _api_key_provider(call: Call, name: str) -> AwsResource:
    return await _named(call, API_KEY, name, "credential provider")


async def get_api_key_provider(call: Call, params: Params) -> Params:
    return _api_key_out(call, await _api_key_provider(call, params["name"]))


async def list_api_key_providers(call: Call, params: Params) -> Params:
    fields = ("name", "credentialProviderArn", "createdTime", "lastUpdatedTime")
    items, more = await _listing(call, API_KEY, params, _api_key_out, fields)
    return {"credentialProviders": items, **more}


async def update_api_key_provider(call: Call, params: Params) -> Params:
    res = await _api_key_provider(call, params["name"])
    await call.vault.put(_key_owner(call.tenant, res.name), _managed_key(params))
    aws = StoreAws(call.system.store)
    await aws.update(call.tenant, API_KEY, res.name, res.attrs)
    return _api_key_out(call, await aws.get(call.tenant, API_KEY, res.name) or res)


async def delete_api_key_provider(call: Call, params: Params) -> Params:
    res = await _api_key_provider(call, params["name"])
    await call.vault.delete(_key_owner(call.tenant, res.name))
    await StoreAws(call.system.store).delete(call.tenant, API_KEY, res.name)
    return {}


def _workload_out(call: Call, res: AwsResource) -> Params:
    out: Params = {
        "name": res.name,
        "workloadIdentityArn": call.arn(
            "bedrock-agentcore", f"workload-identity-directory/default/workload-identity/{res.name}"
        ),
        "createdTime": res.created_at,
        "lastUpdatedTime": res.updated_at,
    }
    urls = res.attrs.get("allowedResourceOauth2ReturnUrls")
    if urls:
        out["allowedResourceOauth2ReturnUrls"] = urls
    return out


async def create_workload_identity(call: Call, params: Params) -> Params:
    name = params["name"]
    aws = StoreAws(call.system.store)
    if await aws.get(call.tenant, WORKLOAD, name) is not None:
        raise conflict(f"a workload identity named {name} exists")
    attrs = {"allowedResourceOauth2ReturnUrls": list(params.get("allowedResourceOauth2ReturnUrls") or [])}
    res = await aws.ensure(call.tenant, WORKLOAD, name, lambda: name, attrs)
    out = _workload_out(call, res)
    return {k: out[k] for k in ("name", "workloadIdentityArn", "allowedResourceOauth2ReturnUrls") if k in out}


async def _workload(call: Call, name: str) -> AwsResource:
    return await _named(call, WORKLOAD, name, "workload identity")


async def get_workload_identity(call: Call, params: Params) -> Params:
    return _workload_out(call, await _workload(call, params["name"]))


async def list_workload_identities(call: Call, params: Params) -> Params:
    items, more = await _listing(call, WORKLOAD, params, _workload_out, ("name", "workloadIdentityArn"))
    return {"workloadIdentities": items, **more}


async def update_workload_identity(call: Call, params: Params) -> Params:
    res = await _workload(call, params["name"])
    aws = StoreAws(call.system.store)
    urls = list(params.get("allowedResourceOauth2ReturnUrls") or [])
    await aws.update(call.tenant, WORKLOAD, res.name, {**res.attrs, "allowedResourceOauth2ReturnUrls": urls})
    return _workload_out(call, await aws.get(call.tenant, WORKLOAD, res.name) or res)


async def delete_workload_identity(call: Call, params: Params) -> Params:
    res = await _workload(call, params["name"])
    await StoreAws(call.system.store).delete(call.tenant, WORKLOAD, res.name)
    return {}


async def get_token_vault(call: Call, params: Params) -> Params:
    wanted = params.get("tokenVaultId") or TOKEN_VAULT
    if wanted != TOKEN_VAULT:
        raise not_found(f"token vault {wanted} does not exist; each tenant has one, {TOKEN_VAULT}")
    rows = await StoreAws(call.system.store).list(call.tenant, API_KEY)
    changed = max((r.updated_at for r in rows), default=datetime.fromtimestamp(0, UTC))
    return {
        "tokenVaultId": TOKEN_VAULT,
        "kmsConfiguration": {"keyType": "ServiceManagedKey"},  # sealed by the gateway's own master key
        "lastModifiedDate": changed,
    }


# -- data plane ----------------------------------------------------------------


async def _workload_token(call: Call, workload: str, user: str | None) -> Params:
    await _workload(call, workload)
    token = call.identity.tokens.issue(call.tenant, workload, user, vault_only=True)
    return {"workloadAccessToken": token}


async def get_workload_access_token(call: Call, params: Params) -> Params:
    return await _workload_token(call, params["workloadName"], None)


async def get_workload_access_token_for_user_id(call: Call, params: Params) -> Params:
    return await _workload_token(call, params["workloadName"], params["userId"])


RUNTIME_SUBJECT = "runtime:"  # (the subject of a hosted agent's own access key: ADR 0041)


def workload_doc(call: Call, token: str) -> dict[str, Any]:
    """What a workload identity token says, checked: this tenant's, and, when a hosted agent's
    own key presents it, that agent's (a runtime's key never uses another workload's token)."""
    try:
        doc: dict[str, Any] = call.identity.tokens.open(token)
    except CredentialError as exc:
        raise access_denied(f"the workload identity token is not valid: {exc}") from None
    if doc.get("t") != call.tenant:
        raise access_denied("the workload identity token is not valid: another tenant's")
    runtime = call.subject.removeprefix(RUNTIME_SUBJECT) if call.subject.startswith(RUNTIME_SUBJECT) else None
    if runtime is not None and doc.get("w") != runtime:
        raise access_denied(f"the workload identity token is not runtime {runtime}'s own")
    return doc


async def get_resource_api_key(call: Call, params: Params) -> Params:
    doc = workload_doc(call, params["workloadIdentityToken"])
    name = params["resourceCredentialProviderName"]
    await _api_key_provider(call, name)
    key = await call.vault.get(_key_owner(call.tenant, name), tool=f"GetResourceApiKey by {doc.get('w')}")
    if key is None:
        raise not_found(f"credential provider {name} keeps no key")
    return {"apiKey": key.decode()}


CONTROL = {
    "CreateApiKeyCredentialProvider": create_api_key_provider,
    "GetApiKeyCredentialProvider": get_api_key_provider,
    "ListApiKeyCredentialProviders": list_api_key_providers,
    "UpdateApiKeyCredentialProvider": update_api_key_provider,
    "DeleteApiKeyCredentialProvider": delete_api_key_provider,
    "CreateWorkloadIdentity": create_workload_identity,
    "GetWorkloadIdentity": get_workload_identity,
    "ListWorkloadIdentities": list_workload_identities,
    "UpdateWorkloadIdentity": update_workload_identity,
    "DeleteWorkloadIdentity": delete_workload_identity,
    "GetTokenVault": get_token_vault,
}

DATA = {
    "GetWorkloadAccessToken": get_workload_access_token,
    "GetWorkloadAccessTokenForUserId": get_workload_access_token_for_user_id,
    "GetResourceApiKey": get_resource_api_key,
}
