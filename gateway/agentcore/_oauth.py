"""OAuth2 credential providers, both planes: providers in the tenant's token vault (control plane)
and the tokens an agent gets through them (data plane: GetResourceOauth2Token for M2M,
USER_FEDERATION and ON_BEHALF_OF_TOKEN_EXCHANGE; CompleteResourceTokenAuth;
GetWorkloadAccessTokenForJWT), on identity's Broker, session binding and workload tokens.

A provider's configuration (vendor, client id, endpoints as given or discovered) is an AgentCore
row (``oauth2_provider``); its client secret is where the broker reads client secrets, under the
tenant's vault name ``~/{name}``. The vendors identity has presets for take their endpoints and
quirks from them; others take them from ``includedOauth2ProviderConfig`` or ``CustomOauth2`` (a
discovery URL, fetched when the provider is written, or the metadata itself). A secret in AWS
Secrets Manager, private endpoints, mTLS and private-key JWT client authentication are refused:
Switchboard cannot reach or does not speak them. ``callbackUrl`` is the redirect URI the broker
actually sends (``/identity/oauth/callback`` on this process's base URL).

Tokens are kept per provider *variant* (`ProviderSpec.variant`): a digest of the provider's
generation (one deleted and made again under its name is another provider), its client and
endpoints, the flow, and the scopes, resource and audience asked for. So a token asked for some
scopes never answers a request for others, and a provider pointed at another server never hands
out the old server's tokens. M2M tokens are the tenant's own; a user's tokens are bound to them
only by the application's CompleteResourceTokenAuth (identity.sessions: AgentCore's session
binding, no sign-in at Switchboard). USER_FEDERATION requires ``resourceOauth2ReturnUrl`` (the SDK's
``callback_url``): the browser that brings the code back is sent there with a one-time
``session_id`` (a confirmation, not the agent's ``sessionUri``), and CompleteResourceTokenAuth takes
only that, so the application's confirmation is tied to the browser that came back.

User JWTs (GetWorkloadAccessTokenForJWT, CompleteResourceTokenAuth's ``userToken``) are checked as
the tenant's gateways with ``auth: jwt`` (AgentCore's CUSTOM_JWT authorizer) check their callers:
the signature against the issuer's JWKS, the issuer, audience, clients and scopes; a token one of
them accepts is its ``sub``'s. (AgentCore checks it against the agent runtime's authorizer; a
workload identity has no issuer of its own, and a tenant's gateways are the authorizers it has.)
The workload token made from a JWT carries it, sealed: ON_BEHALF_OF_TOKEN_EXCHANGE exchanges it
(RFC 8693, the broker's ``oauth2_token_exchange``) at a provider with
``onBehalfOfTokenExchangeConfig`` (TOKEN_EXCHANGE, no actor token).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson

from gateway.agentcore._call import AwsError, Call, Params, access_denied, conflict, not_found, validation
from gateway.agentcore._gateways import paged
from gateway.agentcore._identity import TOKEN_VAULT, WORKLOAD, _named, workload_doc
from gateway.agentcore._vault_links import OAUTH2, PRESETS, follow, release, store
from gateway.auth import TENANT_VAULT, qualified
from gateway.config import JwtAuth
from gateway.store import AwsResource, StoreAws
from gateway.system import mcp_path
from identity.inbound import Refused
from identity.outbound import PRESETS as ENDPOINTS
from identity.outbound import SERVICE, ConsentRequired, CredentialError, ProviderSpec, discover, from_preset
from identity.sessions import Session, SessionBinding, SessionError
from identity.vault import Owner

CUSTOM, INCLUDED = "customOauth2ProviderConfig", "includedOauth2ProviderConfig"
OWN_CONFIG = {
    "CustomOauth2": CUSTOM,
    "GithubOauth2": "githubOauth2ProviderConfig",
    "GoogleOauth2": "googleOauth2ProviderConfig",
    "MicrosoftOauth2": "microsoftOauth2ProviderConfig",
    "SlackOauth2": "slackOauth2ProviderConfig",
    "SalesforceOauth2": "salesforceOauth2ProviderConfig",
    "AtlassianOauth2": "atlassianOauth2ProviderConfig",
    "LinkedinOauth2": "linkedinOauth2ProviderConfig",
}
"""The configuration member each vendor takes; every other vendor takes ``includedOauth2ProviderConfig``."""
UNSUPPORTED = {
    "privateKeyJwtConfig": "Switchboard authenticates to token endpoints with the client secret",
    "privateEndpoint": "Switchboard reaches authorization servers over its own network",
    "privateEndpointOverrides": "Switchboard reaches authorization servers over its own network",
    "certificateConfigurations": "Switchboard trusts the system's certificate authorities",
}
M2M, USER, OBO = "M2M", "USER_FEDERATION", "ON_BEHALF_OF_TOKEN_EXCHANGE"
Kind = Literal["oauth2_client_credentials", "oauth2_authorization_code", "oauth2_token_exchange"]


def _secret_owner(tenant: str, name: str) -> Owner:
    """Where the broker reads the provider's client secret (`Broker.client_secret`)."""
    return Owner(tenant, SERVICE, qualified(TENANT_VAULT, name), "client_secret")


def _managed_secret(config: Params) -> str | None:
    if config.get("clientSecretConfig") or config.get("clientSecretSource") == "EXTERNAL":
        raise validation(
            "clientSecretConfig (an AWS Secrets Manager secret, EXTERNAL) is not reachable from "
            "Switchboard: send clientSecret, which Switchboard keeps in its vault"
        )
    return str(config["clientSecret"]) if config.get("clientSecret") else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _discovered(call: Call, url: str, where: str) -> Params:
    try:
        broker = call.identity.broker
        found = await discover(broker.http_for(call.tenant), url, seconds=broker.fetch_seconds)
    except CredentialError as exc:
        raise validation(f"{where}: {exc}") from None
    return {
        "discoveryUrl": url,
        "issuer": found.get("issuer") or _origin(url),
        "authorizationEndpoint": found.get("authorization_endpoint"),
        "tokenEndpoint": found["token_endpoint"],
    }


async def _endpoints(call: Call, vendor: str, member: str, config: Params) -> Params:
    """Where the vendor's authorization server is: a preset's, discovered, or as given."""
    if vendor in PRESETS:
        preset = ENDPOINTS[PRESETS[vendor]]
        authorize, token = str(preset["authorize_url"]), str(preset["token_url"])
        tenant_id = config.get("tenantId")
        if tenant_id:  # Microsoft Entra: one directory instead of "common"
            authorize, token = (u.replace("/common/", f"/{tenant_id}/") for u in (authorize, token))
        issuer = _origin(authorize) + (
            f"/{tenant_id or 'common'}/v2.0" if vendor == "MicrosoftOauth2" else ""
        )
        return {"issuer": issuer, "authorizationEndpoint": authorize, "tokenEndpoint": token}
    if member == CUSTOM:
        discovery = config.get("oauthDiscovery") or {}
        if discovery.get("discoveryUrl"):
            return await _discovered(call, discovery["discoveryUrl"], "oauthDiscovery.discoveryUrl")
        metadata = discovery.get("authorizationServerMetadata")
        if not metadata:
            raise validation("oauthDiscovery needs discoveryUrl or authorizationServerMetadata")
        return {
            k: metadata[k]
            for k in ("issuer", "authorizationEndpoint", "tokenEndpoint", "responseTypes")
            if metadata.get(k)
        }
    suggestion = (
        f"Switchboard has no preset for {vendor}: create it as CustomOauth2 with the vendor's discovery URL "
        "(or its authorization server metadata)"
    )
    if member != INCLUDED:
        raise validation(suggestion)
    if config.get("tokenEndpoint"):
        token = str(config["tokenEndpoint"])
        return {
            "issuer": config.get("issuer") or _origin(token),
            "authorizationEndpoint": config.get("authorizationEndpoint"),
            "tokenEndpoint": token,
        }
    if config.get("issuer"):
        url = str(config["issuer"]).rstrip("/") + "/.well-known/openid-configuration"
        return await _discovered(call, url, "includedOauth2ProviderConfig.issuer")
    raise validation(f"{suggestion}, or give includedOauth2ProviderConfig its issuer or tokenEndpoint")


async def _configure(call: Call, params: Params, generation: str) -> tuple[Params, str | None]:
    """The row's attributes and the client secret, from a create or update request; ``generation``
    tells this provider from an earlier one of the same name (its tokens are not this one's)."""
    vendor = str(params["credentialProviderVendor"])
    given = {k: v for k, v in (params.get("oauth2ProviderConfigInput") or {}).items() if v is not None}
    if len(given) != 1:
        raise validation("oauth2ProviderConfigInput takes exactly one provider configuration")
    member, config = next(iter(given.items()))
    expected = OWN_CONFIG.get(vendor, INCLUDED)
    if member != expected:
        raise validation(f"credentialProviderVendor {vendor} takes {expected}, not {member}")
    for key, why in UNSUPPORTED.items():
        if config.get(key):
            raise validation(f"{member}.{key} is not supported: {why}")
    method = config.get("clientAuthenticationMethod")
    if method not in (None, "CLIENT_SECRET_BASIC"):
        raise validation(
            f"clientAuthenticationMethod {method} is not supported: Switchboard sends CLIENT_SECRET_BASIC"
        )
    obo = config.get("onBehalfOfTokenExchangeConfig")
    if obo:
        actor = (obo.get("tokenExchangeGrantTypeConfig") or {}).get("actorTokenContent", "NONE")
        if obo.get("grantType") != "TOKEN_EXCHANGE" or actor != "NONE":
            raise validation(
                "onBehalfOfTokenExchangeConfig: Switchboard exchanges the user's token by RFC 8693 "
                "(grantType TOKEN_EXCHANGE) without an actor token (actorTokenContent NONE)"
            )
    secret = _managed_secret(config)
    client_id = config.get("clientId")
    if not client_id:
        raise validation(f"{member}.clientId is required")
    endpoints = await _endpoints(call, vendor, member, config)
    for key in ("authorizationEndpoint", "tokenEndpoint"):
        parts = urlsplit(str(endpoints.get(key) or ""))
        if endpoints.get(key) and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise validation(f"{key} {endpoints[key]} is not an http(s) URL")
    attrs: Params = {
        "vendor": vendor,
        "member": member,
        "clientId": str(client_id),
        "generation": generation,
        **endpoints,
    }
    for key in ("onBehalfOfTokenExchangeConfig", "clientAuthenticationMethod", "tenantId"):
        if config.get(key):
            attrs[key] = config[key]
    return attrs, secret


def _out(call: Call, res: AwsResource, fields: tuple[str, ...] | None = None) -> Params:
    a = res.attrs
    if a.get("discoveryUrl"):
        discovery: Params = {"discoveryUrl": a["discoveryUrl"]}
    else:
        keys = ("issuer", "authorizationEndpoint", "tokenEndpoint", "responseTypes")
        discovery = {"authorizationServerMetadata": {k: a[k] for k in keys if a.get(k)}}
    config: Params = {"oauthDiscovery": discovery, "clientId": a["clientId"]}
    if a["member"] == CUSTOM:
        config.update(
            {k: a[k] for k in ("onBehalfOfTokenExchangeConfig", "clientAuthenticationMethod") if a.get(k)}
        )
    out: Params = {
        "clientSecretArn": {
            "secretArn": call.arn(
                "secretsmanager", f"secret:bedrock-agentcore-identity!{TOKEN_VAULT}/oauth2/{res.name}"
            )
        },
        "clientSecretSource": "MANAGED",
        "name": res.name,
        "credentialProviderVendor": a["vendor"],
        "credentialProviderArn": call.arn(
            "acps", f"token-vault/{TOKEN_VAULT}/oauth2credentialprovider/{res.name}"
        ),
        "callbackUrl": call.identity.broker.callback_url,
        "oauth2ProviderConfigOutput": {a["member"]: config},
        "createdTime": res.created_at,
        "lastUpdatedTime": res.updated_at,
        "status": "READY",
    }
    return out if fields is None else {k: v for k, v in out.items() if k in fields}


async def _provider(call: Call, name: str) -> AwsResource:
    return await _named(call, OAUTH2, name, "OAuth2 credential provider")


# -- control plane -------------------------------------------------------------


async def create_provider(call: Call, params: Params) -> Params:
    name = params["name"]
    aws = StoreAws(call.system.store)
    if await aws.get(call.tenant, OAUTH2, name) is not None:
        raise conflict(f"an OAuth2 credential provider named {name} exists")
    attrs, secret = await _configure(call, params, secrets.token_hex(8))
    owner = _secret_owner(call.tenant, name)
    if secret:
        await call.vault.put(owner, secret)
    else:  # a public client (PKCE alone): no secret left from a provider of the same name
        await call.vault.delete(owner)
    res = await aws.ensure(call.tenant, OAUTH2, name, lambda: name, attrs)
    fields = ("clientSecretArn", "clientSecretSource", "name", "credentialProviderArn", "callbackUrl")
    return _out(call, res, (*fields, "oauth2ProviderConfigOutput", "status"))


async def get_provider(call: Call, params: Params) -> Params:
    return _out(call, await _provider(call, params["name"]))


async def list_providers(call: Call, params: Params) -> Params:
    rows = await StoreAws(call.system.store).list(call.tenant, OAUTH2)
    fields = ("name", "credentialProviderVendor", "credentialProviderArn", "createdTime", "lastUpdatedTime")
    items, more = paged(rows, params, lambda r: _out(call, r, fields))
    return {"credentialProviders": items, **more}


async def update_provider(call: Call, params: Params) -> Params:
    """The configuration is replaced; without ``clientSecret`` the kept secret stays. Tokens got
    under the old client or endpoints are not handed out again (their variant differs). The
    gateways with an entry for it are rewritten from it (``_vault_links``) first: one that refuses
    the change leaves everything as it was."""
    res = await _provider(call, params["name"])
    attrs, secret = await _configure(call, params, str(res.attrs.get("generation") or ""))
    await store(call, await follow(call, dataclasses.replace(res, attrs=attrs)))
    if secret:
        await call.vault.put(_secret_owner(call.tenant, res.name), secret)
    aws = StoreAws(call.system.store)
    await aws.update(call.tenant, OAUTH2, res.name, attrs)
    return _out(call, await aws.get(call.tenant, OAUTH2, res.name) or res)


async def delete_provider(call: Call, params: Params) -> Params:
    """Refused while a gateway's target signs with it; gateways' entries no target uses go with it."""
    res = await _provider(call, params["name"])
    await store(call, await release(call, res.name))
    await call.vault.delete(_secret_owner(call.tenant, res.name))
    await StoreAws(call.system.store).delete(call.tenant, OAUTH2, res.name)
    return {}


# -- data plane ----------------------------------------------------------------


def _spec(
    res: AwsResource,
    kind: Kind,
    scopes: list[str],
    resource: str | None = None,
    audience: str | None = None,
) -> ProviderSpec:
    """The broker's view of the provider for one request: its flow, scopes, resource, audience."""
    a = res.attrs
    name = qualified(TENANT_VAULT, res.name)
    if kind == "oauth2_authorization_code" and a["vendor"] in PRESETS:
        urls = {"authorize_url": a["authorizationEndpoint"], "token_url": a["tokenEndpoint"]}
        spec = from_preset(
            name, PRESETS[a["vendor"]], client_id=a["clientId"], secret=None, scopes=scopes, overrides=urls
        )
    else:
        spec = ProviderSpec(
            name,
            "oauth2_authorization_code",
            client_id=a["clientId"],
            token_url=a["tokenEndpoint"],
            authorize_url=a.get("authorizationEndpoint"),
            scopes=tuple(scopes),
        )
    asked = [a.get("generation"), a["clientId"], a["tokenEndpoint"], a.get("authorizationEndpoint")]
    asked += [kind, sorted(spec.scopes), resource, audience]
    variant = hashlib.sha256(orjson.dumps(asked)).hexdigest()[:16]
    return dataclasses.replace(spec, kind=kind, resource=resource, audience=audience, variant=variant)


def _one(params: Params, key: str, flows: tuple[str, ...]) -> str | None:
    values = list(params.get(key) or [])
    if values and params["oauth2Flow"] not in flows:
        raise validation(f"{key} is not taken with {params['oauth2Flow']}")
    if len(values) > 1:
        raise validation(f"{key}: Switchboard asks for one per token; got {len(values)}")
    return str(values[0]) if values else None


async def _token(call: Call, user: str, spec: ProviderSpec, tool: str, subject: str | None = None) -> str:
    try:
        return await call.identity.broker.secret(call.tenant, user, spec, tool=tool, subject_token=subject)
    except ConsentRequired:
        raise  # (a CredentialError too) the caller opens a session for the user
    except CredentialError as exc:
        raise validation(f"credential provider {spec.name.partition('/')[2]}: {exc}") from None


async def get_resource_oauth2_token(call: Call, params: Params) -> Params:
    doc = workload_doc(call, params["workloadIdentityToken"])
    res = await _provider(call, params["resourceCredentialProviderName"])
    flow, scopes = params["oauth2Flow"], [str(s) for s in params.get("scopes") or []]
    resource = _one(params, "resources", (M2M, USER, OBO))
    audience = _one(params, "audiences", (OBO,))
    tool = f"GetResourceOauth2Token by {doc.get('w')}"
    if flow == M2M:
        spec = _spec(res, "oauth2_client_credentials", scopes, resource)
        return {"accessToken": await _token(call, SERVICE, spec, tool)}
    if not doc.get("u"):
        raise validation(
            f"{flow} acts for a user: get the workload token with GetWorkloadAccessTokenForUserId or "
            "GetWorkloadAccessTokenForJWT"
        )
    if flow == OBO:
        if not doc.get("j"):
            raise validation(
                f"{OBO} exchanges the user's own token: get the workload token with "
                "GetWorkloadAccessTokenForJWT"
            )
        if not res.attrs.get("onBehalfOfTokenExchangeConfig"):
            raise validation(f"credential provider {res.name} has no onBehalfOfTokenExchangeConfig")
        spec = _spec(res, "oauth2_token_exchange", scopes, resource, audience)
        return {"accessToken": await _token(call, str(doc["u"]), spec, tool, str(doc["j"]))}
    return await _user_federation(
        call, doc, res, params, _spec(res, "oauth2_authorization_code", scopes, resource)
    )


async def _user_federation(
    call: Call, doc: dict[str, Any], res: AwsResource, params: Params, spec: ProviderSpec
) -> Params:
    """The user's token, or the session they authorize in (AgentCore's 3LO with session binding)."""
    user, tool = str(doc["u"]), f"GetResourceOauth2Token by {doc.get('w')}"
    if not spec.authorize_url:
        raise validation(f"credential provider {res.name} has no authorization endpoint: {USER} needs one")
    back = params.get("resourceOauth2ReturnUrl")
    if not back:
        raise validation(
            f"{USER} needs resourceOauth2ReturnUrl (the SDK's callback_url): the user's browser comes "
            "back there with the session_id the application confirms its signed-in user with "
            "(CompleteResourceTokenAuth); add it to the workload identity's "
            "allowedResourceOauth2ReturnUrls"
        )
    await _allowed_return(call, str(doc.get("w")), back)
    sessions = SessionBinding(call.identity.broker)
    extra = {str(k): str(v) for k, v in (params.get("customParameters") or {}).items()}
    uri = params.get("sessionUri")
    if uri:
        session = _session(call, sessions, uri)
        if session.user != user or session.provider != spec.name:
            raise access_denied("this session is another user's, or another credential provider's")
        if session.variant != spec.variant:
            raise validation("this session was started for other scopes or resources; ask with the same ones")
        status = await sessions.look(session)
        if status is not None:
            if status[0] == "FAILED":
                return {"sessionUri": uri, "sessionStatus": "FAILED"}
            return {
                "authorizationUrl": _link(sessions, session, spec, extra),
                "sessionUri": uri,
                "sessionStatus": "IN_PROGRESS",
            }
        try:  # the session is over: bound (the token is there), or expired, or replaced
            return {"accessToken": await _token(call, user, spec, tool)}
        except ConsentRequired:
            raise validation(
                "this session is over without a token (expired, or replaced by a newer one); ask again "
                "without sessionUri"
            ) from None
    if not params.get("forceAuthentication"):
        try:
            return {"accessToken": await _token(call, user, spec, tool)}
        except ConsentRequired:
            pass
    session = await sessions.start(
        call.tenant,
        user,
        spec,
        fresh=bool(params.get("forceAuthentication")),
        return_url=back,
        custom_state=params.get("customState"),
    )
    link = _link(sessions, session, spec, extra)
    return {"authorizationUrl": link, "sessionUri": sessions.uri(session), "sessionStatus": "IN_PROGRESS"}


def _link(sessions: SessionBinding, session: Session, spec: ProviderSpec, extra: dict[str, str]) -> str:
    try:
        return sessions.link(session, spec, extra)
    except CredentialError as exc:
        raise validation(f"customParameters: {exc}") from None


async def _allowed_return(call: Call, workload: str, url: str) -> None:
    res = await StoreAws(call.system.store).get(call.tenant, WORKLOAD, workload)
    allowed = (res.attrs.get("allowedResourceOauth2ReturnUrls") or []) if res is not None else []
    if url not in allowed:
        raise validation(
            f"resourceOauth2ReturnUrl {url} is not one of workload identity {workload}'s "
            "allowedResourceOauth2ReturnUrls; add it with UpdateWorkloadIdentity"
        )
    if urlsplit(url).scheme not in ("http", "https"):
        raise validation(f"resourceOauth2ReturnUrl {url}: the browser is sent back over http(s) only")


def _session(call: Call, sessions: SessionBinding, uri: str) -> Session:
    try:
        session = sessions.open(uri)
    except SessionError as exc:
        raise not_found(str(exc)) from None
    if session.tenant != call.tenant:
        raise not_found("the session URI is not one Switchboard gave out, or it is over an hour old")
    return session


async def complete_resource_token_auth(call: Call, params: Params) -> Params:
    sessions = SessionBinding(call.identity.broker)
    try:
        confirmation = sessions.confirmation(params["sessionUri"])
    except SessionError as exc:
        if exc.problem == "unconfirmed":
            raise validation(str(exc)) from None
        raise not_found(str(exc)) from None
    session = confirmation.session
    if session.tenant != call.tenant:
        raise not_found("the session URI is not one Switchboard gave out, or it is over an hour old")
    who = params["userIdentifier"]
    if who.get("userToken"):
        user = await _jwt_user(call, str(who["userToken"]))
    elif who.get("userId"):
        user = str(who["userId"])
    else:
        raise validation("userIdentifier needs userId or userToken: the user the application has signed in")
    res = await _provider(call, session.name)
    try:
        await sessions.bind(confirmation, user, _spec(res, "oauth2_authorization_code", []))
    except SessionError as exc:
        if exc.problem == "unknown":
            raise not_found(str(exc)) from None
        if exc.problem == "denied":
            raise access_denied(str(exc)) from None
        raise validation(str(exc)) from None
    return {}


async def _jwt_user(call: Call, token: str) -> str:
    """The ``sub`` of a user JWT that one of the tenant's JWT gateways accepts."""
    authenticator = call.system.authenticator
    gateways = [g.spec for g in call.system.hub.gateways(call.tenant)]
    refusals: list[str] = []
    for spec in sorted(gateways, key=lambda s: s.name):
        if authenticator is None or not isinstance(spec.auth, JwtAuth):
            continue
        resource = call.base_url.rstrip("/") + mcp_path(call.tenant, spec.name)
        try:
            caller = await authenticator.verifier(call.tenant, spec.name, spec.auth, resource).verify(token)
        except Refused as exc:
            refusals.append(f"gateway {spec.name}: {exc.description}")
            continue
        if caller.tenant == call.tenant:
            return caller.subject
        refusals.append(f"gateway {spec.name}: the token names another tenant")
    if not refusals:
        raise validation(
            "no gateway of this tenant takes JWTs (auth: jwt, AgentCore's CUSTOM_JWT authorizer), so "
            "there is no issuer to check the user's token against"
        )
    raise AwsError("UnauthorizedException", "the user token is refused: " + "; ".join(refusals), 401)


async def get_workload_access_token_for_jwt(call: Call, params: Params) -> Params:
    name = params["workloadName"]
    await _named(call, WORKLOAD, name, "workload identity")
    user = await _jwt_user(call, params["userToken"])
    token = call.identity.tokens.issue(
        call.tenant, name, user, user_token=params["userToken"], vault_only=True
    )
    return {"workloadAccessToken": token}


CONTROL = {
    "CreateOauth2CredentialProvider": create_provider,
    "GetOauth2CredentialProvider": get_provider,
    "ListOauth2CredentialProviders": list_providers,
    "UpdateOauth2CredentialProvider": update_provider,
    "DeleteOauth2CredentialProvider": delete_provider,
}

DATA = {
    "GetResourceOauth2Token": get_resource_oauth2_token,
    "CompleteResourceTokenAuth": complete_resource_token_auth,
    "GetWorkloadAccessTokenForJWT": get_workload_access_token_for_jwt,
}
