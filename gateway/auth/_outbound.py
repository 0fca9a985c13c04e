"""Wiring of outbound credentials (identity.outbound) into calls.

Each gateway's `credential_providers` become identity `ProviderSpec`s (secrets read
from their references; names qualified by gateway so two gateways never share a
credential by accident). A call's `CallContext.credentials` is bound to its caller;
identity's errors become the gateway's (`CredentialRequired` carries the consent URL).
`consent_user` tells identity's consent sign-in who a gateway's own credential belongs to.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from gateway.config import (
    ApiKeyCredential,
    AuthorizationCode,
    ClientCredentials,
    CredentialProvider,
    GatewaySpec,
    SecretRef,
    TokenExchange,
    read_secret,
)
from gateway.core.errors import ConfigError, CredentialRequired, ToolExecutionError
from gateway.core.types import CredentialSource, Principal
from identity.consent import UserOf
from identity.inbound import Refused
from identity.outbound import Broker, ConsentRequired, CredentialError, ProviderSpec, from_preset

if TYPE_CHECKING:
    from starlette.types import Scope

    from gateway.auth._inbound import Authenticator


TENANT_VAULT = "~"
"""Stands for a gateway in the name of what the tenant's token vault keeps for all its gateways."""


def qualified(gateway: str, provider: str) -> str:
    return f"{gateway}/{provider}"


def vault_name(gateway: str, provider: CredentialProvider) -> str:
    """The name a provider's secret (a key, a client secret) is kept under: the gateway's own, or
    the tenant's token vault's."""
    shared = getattr(provider, "vault", "gateway") == "tenant"
    return qualified(TENANT_VAULT if shared else gateway, provider.name)


def _vault_client(
    gateway: str, provider: ClientCredentials | AuthorizationCode, base: ProviderSpec
) -> ProviderSpec:
    """``base`` for a provider that uses a client of the tenant's token vault (``vault: tenant``):
    named as the gateway's own (its tokens and consents are this gateway's), its client secret read
    from the token vault, its tokens kept per configuration (a rewrite after the token vault's
    provider changed, or other scopes, never hands out tokens got under the old one)."""
    if provider.vault != "tenant":
        return base
    variant = hashlib.sha256(provider.model_dump_json().encode()).hexdigest()[:16]
    return dataclasses.replace(
        base,
        name=qualified(gateway, provider.name),
        secret_name=vault_name(gateway, provider),
        variant=variant,
    )


def _secret(ref: SecretRef | None, what: str) -> str | None:
    if ref is None:
        return None
    if ref.provider is not None:
        raise ConfigError(f"{what}: a credential provider's own secret cannot come from another provider")
    return read_secret(ref, what)


def provider_specs(spec: GatewaySpec) -> dict[str, ProviderSpec]:
    """The gateway's credential providers, by their name in the gateway."""
    out: dict[str, ProviderSpec] = {}
    for p in spec.credential_providers:
        where = f"credential_providers.{p.name}"
        name = vault_name(spec.name, p)
        if isinstance(p, ApiKeyCredential):
            out[p.name] = ProviderSpec(name, "api_key", secret=_secret(p.secret, where))
        elif isinstance(p, TokenExchange | ClientCredentials):
            made = ProviderSpec(
                name,
                "oauth2_token_exchange" if isinstance(p, TokenExchange) else "oauth2_client_credentials",
                secret=_secret(p.client_secret, f"{where}.client_secret"),
                client_id=p.client_id,
                token_url=p.token_url,
                scopes=tuple(p.scopes),
                resource=p.resource,
                audience=p.audience if isinstance(p, TokenExchange) else None,
            )
            out[p.name] = made if isinstance(p, TokenExchange) else _vault_client(spec.name, p, made)
        else:
            assert isinstance(p, AuthorizationCode)
            secret = _secret(p.client_secret, f"{where}.client_secret")
            overrides = {
                k: v for k, v in (("authorize_url", p.authorize_url), ("token_url", p.token_url)) if v
            }
            if p.authorize_params:
                overrides["extra_authorize"] = p.authorize_params  # type: ignore[assignment]
            if p.preset is not None:
                base = from_preset(
                    name, p.preset, client_id=p.client_id, secret=secret, scopes=p.scopes, overrides=overrides
                )
            else:
                base = ProviderSpec(
                    name,
                    "oauth2_authorization_code",
                    secret=secret,
                    client_id=p.client_id,
                    token_url=p.token_url,
                    authorize_url=p.authorize_url,
                    scopes=tuple(p.scopes),
                    extra_authorize=dict(p.authorize_params),
                )
            out[p.name] = _vault_client(spec.name, p, dataclasses.replace(base, resource=p.resource))
    return out


class CallerCredentials:
    """One caller's view of a gateway's credential providers."""

    def __init__(self, broker: Broker, providers: Mapping[str, ProviderSpec], principal: Principal) -> None:
        self.broker = broker
        self.providers = providers
        self.principal = principal

    async def secret(self, provider: str, *, tool: str | None = None, stale: str | None = None) -> str:
        spec = self.providers.get(provider)
        if spec is None:
            raise ToolExecutionError(f"no credential provider {provider!r} on this gateway")
        try:
            return await self.broker.secret(
                self.principal.tenant,
                self.principal.subject,
                spec,
                tool=tool,
                stale=stale,
                subject_token=self.principal.token,
            )
        except ConsentRequired as exc:
            raise CredentialRequired(provider, exc.url) from None
        except CredentialError as exc:
            raise ToolExecutionError(str(exc)) from None


CredentialsFor = Callable[[str, GatewaySpec, Principal], CredentialSource]


def credentials_for(broker: Broker) -> CredentialsFor:
    # Specs are immutable: a changed gateway is a new spec object, so identity is the key
    # (no per-call fingerprinting, and secrets are read once per version of the gateway).
    cache: dict[tuple[str, str], tuple[GatewaySpec, dict[str, ProviderSpec]]] = {}

    def bind(tenant: str, spec: GatewaySpec, principal: Principal) -> CredentialSource:
        key = (tenant, spec.name)
        hit = cache.get(key)
        if hit is None or hit[0] is not spec:
            hit = cache[key] = (spec, provider_specs(spec))
        return CallerCredentials(broker, hit[1], principal)

    return bind


def mcp_path(tenant: str, gateway: str) -> str:
    """A gateway's MCP endpoint path (the inverse of gateway.system.mcp_endpoint)."""
    if tenant == "default":
        return "/mcp" if gateway == "default" else f"/gateways/{gateway}/mcp"
    return f"/tenants/{tenant}/gateways/{gateway}/mcp"


def consent_user(
    served: Callable[[str, str], GatewaySpec | None], authenticator: Callable[[], Authenticator]
) -> UserOf:
    """Who a gateway's own credential (API key, access token) belongs to, as that gateway's
    inbound auth sees it on its MCP endpoint: the check behind identity's consent sign-in.

    Args:
        served: The configuration of a gateway being served (tenant, name), or None.
    """

    async def user_of(tenant: str, gateway: str, credential: str, scope: Scope) -> str | None:
        spec = served(tenant, gateway)
        if spec is None:
            return None
        probe = {
            **scope,
            "path": mcp_path(tenant, gateway),
            "query_string": b"",
            "headers": [(b"authorization", f"Bearer {credential}".encode())],
        }
        try:
            principal = await authenticator().principal(tenant, gateway, spec.auth, probe)
        except Refused:
            return None
        return principal.subject

    return user_of
