"""Gateway targets that sign their calls with an OAuth2 credential provider of the tenant's token
vault (AgentCore's ``OAUTH`` credential provider configuration; ADR 0033).

What governs a target's calls is its gateway's configuration: the provider a target names becomes
one of the gateway's ``credential_providers``, named as the token-vault provider, with
``vault: tenant``: ``oauth2_client_credentials`` for CLIENT_CREDENTIALS (a token for the gateway
itself), ``oauth2_authorization_code`` for AUTHORIZATION_CODE (each caller's own token, after
their consent), carrying the provider's client id, endpoints and vendor preset and the target's
scopes and custom parameters. The client secret stays where the provider keeps it (the vault,
under the token vault's name); nothing secret is written into the configuration. The tokens are
the gateway's own, kept per configuration (``gateway.auth.provider_specs``).

A gateway uses a token-vault provider one way: a target that asks for it with another grant,
other scopes or parameters than the gateway's other targets do is refused (make another provider
for it, with the same client).

When the provider changes (UpdateOauth2CredentialProvider), every gateway that has an entry for it
is rewritten from it through ``gateway.changes``, as its tenant's administrator would, each checked
before any is stored. A provider a target still signs with is not deleted (ConflictException naming
the gateways and targets); entries no target signs with any more go with it.

Shared by the gateway handlers (``_gateways``) and the OAuth2 provider handlers (``_oauth``); it
imports neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway import changes
from gateway.agentcore._call import AwsError, Call, Params, conflict, validation
from gateway.agentcore._engines import GATEWAY
from gateway.config import (
    AuthorizationCode,
    ClientCredentials,
    ConnectorTarget,
    CredentialProvider,
    GatewaySpec,
    McpTarget,
    validate,
)
from gateway.core.errors import ConfigError
from gateway.store import AwsResource, StoreAws
from gateway.system import compile_check

OAUTH2 = "oauth2_provider"
"""The kind OAuth2 credential providers are kept under (``StoreAws``)."""
PRESETS = {
    "GithubOauth2": "github",
    "GoogleOauth2": "google",
    "MicrosoftOauth2": "microsoft",
    "SlackOauth2": "slack",
    "SalesforceOauth2": "salesforce",
    "AtlassianOauth2": "atlassian",
}
"""AgentCore's vendors that identity has presets (endpoints and quirks) for."""
OAUTH_SCHEME = "agentcore_oauth"
"""The security scheme an OAUTH target's document is given: the token as a bearer token."""
GRANTS = {
    "CLIENT_CREDENTIALS": "oauth2_client_credentials",
    "AUTHORIZATION_CODE": "oauth2_authorization_code",
}
WHERE = "credentialProviderConfigurations[].credentialProvider.oauthCredentialProvider"

Linked = ClientCredentials | AuthorizationCode


@dataclass(frozen=True, slots=True)
class OAuthLink:
    """A target's OAUTH credential provider configuration, read (its provider not yet looked up)."""

    name: str  # the token-vault provider's
    grant: str  # a key of GRANTS
    scopes: tuple[str, ...] = ()
    custom: Mapping[str, str] = field(default_factory=dict)  # customParameters (authorization request)


def oauth_link(config: Params) -> OAuthLink:
    """An ``OAUTH`` credential provider configuration, checked for what Switchboard serves.

    Raises:
        AwsError: ValidationException naming the member it cannot serve.
    """
    provider = (config.get("credentialProvider") or {}).get("oauthCredentialProvider") or {}
    arn = str(provider.get("providerArn") or "")
    name = arn.rsplit("/", 1)[-1] if "/oauth2credentialprovider/" in arn else ""
    if not name:
        raise validation(
            f"credentialProviderType OAUTH: {WHERE}.providerArn must be the credentialProviderArn of an "
            "OAuth2 credential provider (CreateOauth2CredentialProvider)"
        )
    grant = str(provider.get("grantType") or "CLIENT_CREDENTIALS")
    if grant not in GRANTS:
        raise validation(
            f"{WHERE}.grantType {grant} is not served by Switchboard yet: use CLIENT_CREDENTIALS or "
            "AUTHORIZATION_CODE"
        )
    if provider.get("defaultReturnUrl"):
        raise validation(
            f"{WHERE}.defaultReturnUrl is not served by Switchboard: a user's consent is bound by signing "
            "them in at the gateway (the consent link's own page, with the credential their MCP client "
            "uses), not by your application's CompleteResourceTokenAuth; leave it out"
        )
    custom = {str(k): str(v) for k, v in (provider.get("customParameters") or {}).items()}
    if custom and grant != "AUTHORIZATION_CODE":
        raise validation(
            f"{WHERE}.customParameters are served with AUTHORIZATION_CODE only (they are added to the "
            "authorization request); Switchboard's client-credentials requests send the scopes alone"
        )
    return OAuthLink(name, grant, tuple(str(s) for s in provider.get("scopes") or []), custom)


def _issues(exc: ConfigError) -> str:
    return "; ".join(f"{i.location}: {i.message}" if i.location else i.message for i in exc.issues)


def entry(
    row: AwsResource,
    grant: str,
    scopes: tuple[str, ...] | list[str],
    custom: Mapping[str, str],
    resource: str | None = None,
) -> Linked:
    """The gateway's credential provider for the token-vault provider ``row``, asked with ``grant``.

    Raises:
        AwsError: the provider cannot serve that grant (ValidationException).
    """
    a = row.attrs
    common = {"name": row.name, "vault": "tenant", "client_id": a["clientId"], "scopes": list(scopes)}
    common.update({"token_url": a["tokenEndpoint"], "resource": resource})
    try:
        if grant == "CLIENT_CREDENTIALS":
            return validate(ClientCredentials, {**common, "kind": GRANTS[grant]}, source="request")
        if not a.get("authorizationEndpoint"):
            raise validation(
                f"OAuth2 credential provider {row.name} has no authorization endpoint, which "
                "AUTHORIZATION_CODE needs"
            )
        code = {
            "kind": GRANTS[grant],
            "preset": PRESETS.get(str(a.get("vendor"))),
            "authorize_url": a["authorizationEndpoint"],
            "authorize_params": dict(custom),
        }
        return validate(AuthorizationCode, {**common, **code}, source="request")
    except ConfigError as exc:
        raise validation(
            f"OAuth2 credential provider {row.name} cannot sign a gateway's calls: {_issues(exc)}"
        ) from None


def linked(p: CredentialProvider, name: str | None = None) -> bool:
    """Whether ``p`` uses a client of the tenant's token vault (that of provider ``name``)."""
    if not isinstance(p, ClientCredentials | AuthorizationCode) or p.vault != "tenant":
        return False
    return name is None or p.name == name


def signers(spec: GatewaySpec, provider: str) -> list[str]:
    """The gateway's targets that sign calls with its credential provider ``provider``."""
    out = []
    for target in spec.targets:
        refs = [ref.provider for ref in getattr(target, "credentials", {}).values()]
        if isinstance(target, McpTarget) and target.credential is not None:
            refs.append(target.credential.provider)
        if isinstance(target, ConnectorTarget) and target.credential is not None:
            refs.append(target.credential)
        if provider in refs:
            out.append(target.name)
    return out


def _grant(p: Linked) -> str:
    """The AgentCore grant type ``p`` is asked with."""
    return next(grant for grant, kind in GRANTS.items() if kind == p.kind)


def _how(p: Linked) -> str:
    custom = sorted(p.authorize_params) if isinstance(p, AuthorizationCode) else []
    parameters = f", customParameters {custom}" if custom else ""
    return f"grantType {_grant(p)}, scopes {sorted(p.scopes)}{parameters}"


async def link(call: Call, spec: GatewaySpec, target: str, links: list[OAuthLink]) -> GatewaySpec:
    """``spec`` (``target`` as it will be) with an entry for each token-vault provider ``links`` name.

    Raises:
        AwsError: a provider does not exist, cannot serve the grant, or the gateway uses it otherwise.
    """
    aws = StoreAws(call.system.store)
    for ask in links:
        row = await aws.get(call.tenant, OAUTH2, ask.name)
        if row is None:
            raise validation(
                f"{WHERE}.providerArn names OAuth2 credential provider {ask.name}, which does not exist"
            )
        made = entry(row, ask.grant, ask.scopes, ask.custom)
        kept = next((p for p in spec.credential_providers if p.name == ask.name), None)
        if kept is not None and not linked(kept):
            raise validation(
                f"gateway {spec.name} has a credential provider of its own named {ask.name} ({kept.kind}); "
                "a token-vault provider's entry would take its name"
            )
        others = [t for t in signers(spec, ask.name) if t != target]
        if isinstance(kept, ClientCredentials | AuthorizationCode) and kept != made and others:
            raise validation(
                f"target(s) {', '.join(others)} of gateway {spec.name} sign with OAuth2 credential provider "
                f"{ask.name} by {_how(kept)}; a gateway uses a token-vault provider one way: ask the same, "
                "or make another OAuth2 credential provider (the same client will do) for this target"
            )
        providers = [made if p.name == ask.name else p for p in spec.credential_providers]
        spec = spec.model_copy(update={"credential_providers": providers if kept else [*providers, made]})
    return spec


def relinked(spec: GatewaySpec, row: AwsResource) -> GatewaySpec:
    """``spec`` with its entry for ``row``'s provider written again from it (the same grant, scopes,
    parameters and resource).

    Raises:
        AwsError: the provider, as it is now, cannot serve the grant the gateway uses it with.
    """
    providers: list[CredentialProvider] = []
    for p in spec.credential_providers:
        if isinstance(p, ClientCredentials | AuthorizationCode) and linked(p, row.name):
            grant = _grant(p)
            custom = p.authorize_params if isinstance(p, AuthorizationCode) else {}
            try:
                p = entry(row, grant, p.scopes, custom, p.resource)
            except AwsError as exc:
                raise validation(
                    f"gateway {spec.name} uses it with grantType {grant}: {exc.message}"
                ) from None
        providers.append(p)
    return spec.model_copy(update={"credential_providers": providers})


def _refused(exc: ConfigError, gateway: str) -> AwsError:
    return validation(f"the change was refused by gateway {gateway}: {_issues(exc)}")


async def follow(call: Call, row: AwsResource) -> list[GatewaySpec]:
    """The tenant's gateways that use ``row``'s provider, rewritten from ``row`` (nothing is stored).
    With more than one, each is checked first as its tenant administrator's change would be.

    Raises:
        AwsError: a gateway would refuse the change (ValidationException naming it).
    """
    kept = await changes.specs(call.system, call.tenant)
    rewritten = [
        relinked(spec, row)
        for spec in kept.values()
        if any(linked(p, row.name) for p in spec.credential_providers)
    ]
    rewritten = [spec for spec in rewritten if spec != kept[spec.name]]
    if len(rewritten) > 1:  # (one gateway: put_gateway checks it before storing it)
        for spec in rewritten:
            try:
                await changes.guard(call.system, call.tenant, spec, kept[spec.name])
                await compile_check(call.tenant, [spec])
            except ConfigError as exc:
                raise _refused(exc, spec.name) from None
    return rewritten


async def store(call: Call, specs: list[GatewaySpec]) -> None:
    """Write the gateways ``follow`` or ``release`` gave, through ``gateway.changes``."""
    for spec in specs:
        try:
            await changes.put_gateway(call.system, call.tenant, spec)
        except ConfigError as exc:
            raise _refused(exc, spec.name) from None


async def release(call: Call, name: str) -> list[GatewaySpec]:
    """The tenant's gateways without their entries for provider ``name``, for its deletion.

    Raises:
        AwsError: ConflictException naming every gateway and target that still signs with it.
    """
    aws = StoreAws(call.system.store)
    users: list[str] = []
    out = []
    for spec in (await changes.specs(call.system, call.tenant)).values():
        if not any(linked(p, name) for p in spec.credential_providers):
            continue
        signing = signers(spec, name)
        if signing:
            row = await aws.get(call.tenant, GATEWAY, spec.name)
            known = f" ({row.resource_id})" if row is not None else ""
            users.append(f"gateway {spec.name}{known}, target(s) {', '.join(signing)}")
            continue
        kept = [p for p in spec.credential_providers if not linked(p, name)]
        out.append(spec.model_copy(update={"credential_providers": kept}))
    if users:
        raise conflict(
            f"OAuth2 credential provider {name} is in use by {'; '.join(users)}: update those targets to "
            "another credential provider, or delete them, first"
        )
    return out
