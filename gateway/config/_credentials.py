"""Who may call a gateway (inbound ``auth``) and how it authenticates to upstreams
(``credential_providers``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from gateway.config._targets import SecretRef
from gateway.core.model import Model, Name


class NoAuth(Model):
    """No inbound authentication: served to loopback clients only."""

    kind: Literal["none"] = "none"


class ApiKeyAuth(Model):
    """Callers send a key made for this gateway (admin API), as ``Authorization: Bearer`` or ``X-Api-Key``."""

    kind: Literal["api_key"]
    scopes: list[str] = Field(default_factory=list, description="Scopes every key must carry.")


class ClaimRuleSpec(Model):
    """A condition on one token claim: exactly one of equals, contains, contains_any."""

    claim: str
    equals: Any = None
    contains: Any = None
    contains_any: list[Any] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> ClaimRuleSpec:
        given = [k for k in ("equals", "contains", "contains_any") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `equals`, `contains` or `contains_any`")
        return self


class JwtAuth(Model):
    """Bearer JWTs from an OIDC provider (or any issuer with a JWKS)."""

    kind: Literal["jwt"]
    discovery_url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        None, description="The provider's .well-known/openid-configuration (or oauth-authorization-server)."
    )
    jwks_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    issuers: list[str] = Field(
        default_factory=list, description="Accepted iss (default: the discovered one)."
    )
    audiences: list[str] = Field(
        default_factory=list,
        description="Accepted aud (RFC 8707). Default: this gateway's MCP URL (SWITCHBOARD_PUBLIC_URL).",
    )
    clients: list[str] = Field(default_factory=list, description="Accepted azp/client_id; empty: any.")
    scopes: list[str] = Field(default_factory=list, description="Scopes every token must carry.")
    claims: list[ClaimRuleSpec] = Field(default_factory=list)
    tenant_claim: str | None = Field(None, description="The claim naming the caller's tenant.")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"])

    @model_validator(mode="after")
    def _key_source(self) -> JwtAuth:
        if not self.discovery_url and not self.jwks_url:
            raise ValueError("give `discovery_url` (or `jwks_url`) so the gateway can check signatures")
        return self


Auth = Annotated[NoAuth | ApiKeyAuth | JwtAuth, Field(discriminator="kind")]


class ApiKeyCredential(Model):
    """A key for an upstream: kept in the vault (admin API) or read from `secret`."""

    name: Name
    kind: Literal["api_key"]
    secret: SecretRef | None = Field(
        None, description="Where the key is read from (else: set it in the vault)."
    )
    vault: Literal["gateway", "tenant"] = Field(
        "gateway",
        description="Where a key set in the vault is kept: this gateway's own, or the tenant's token vault "
        "under this name, which every gateway of the tenant may use (AgentCore's API-key credential "
        "providers live there).",
    )


_CLIENT_VAULT = (
    "Whose OAuth client this is: `gateway`, the gateway's own (`client_secret`; one set in the vault "
    "through the admin API comes first), or `tenant`: the OAuth2 credential provider of this name in "
    "the tenant's token vault (AgentCore's CreateOauth2CredentialProvider), whose client secret is read "
    "from there and never written here; its client id and endpoints are written here and rewritten "
    "when it changes. The tokens are this gateway's own either way (with `tenant`, kept per "
    "configuration)."
)


def _client_secret_where(vault: str, secret: SecretRef | None, required: bool) -> None:
    if vault == "tenant" and secret is not None:
        raise ValueError(
            "with `vault: tenant` the client secret is the token vault provider's: leave `client_secret` out"
        )
    if vault == "gateway" and required and secret is None:
        raise ValueError("give `client_secret` (or `vault: tenant` for a client of the tenant's token vault)")


class ClientCredentials(Model):
    """OAuth 2.0 client credentials (2LO): a token for the gateway itself."""

    name: Name
    kind: Literal["oauth2_client_credentials"]
    token_url: Annotated[str, Field(pattern=r"^https?://")]
    client_id: str
    client_secret: SecretRef | None = Field(None, description="Required unless `vault: tenant`.")
    scopes: list[str] = Field(default_factory=list)
    resource: str | None = Field(None, description="RFC 8707 resource indicator sent with token requests.")
    vault: Literal["gateway", "tenant"] = Field("gateway", description=_CLIENT_VAULT)

    @model_validator(mode="after")
    def _secret(self) -> ClientCredentials:
        _client_secret_where(self.vault, self.client_secret, required=True)
        return self


class AuthorizationCode(Model):
    """OAuth 2.0 authorization code with PKCE (3LO): each user consents once; tokens per user."""

    name: Name
    kind: Literal["oauth2_authorization_code"]
    preset: Literal["github", "google", "microsoft", "slack", "salesforce", "atlassian"] | None = Field(
        None, description="A vendor's endpoints and quirks; authorize_url/token_url override them."
    )
    authorize_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    token_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    client_id: str
    client_secret: SecretRef | None = Field(None, description="Omit for a public client (PKCE alone).")
    scopes: list[str] = Field(default_factory=list)
    resource: str | None = None
    authorize_params: dict[str, str] = Field(
        default_factory=dict, description="Extra authorization parameters."
    )
    vault: Literal["gateway", "tenant"] = Field("gateway", description=_CLIENT_VAULT)

    @model_validator(mode="after")
    def _endpoints(self) -> AuthorizationCode:
        if self.preset is None and (self.authorize_url is None or self.token_url is None):
            raise ValueError("give a `preset`, or both `authorize_url` and `token_url`")
        _client_secret_where(self.vault, self.client_secret, required=False)
        return self


class TokenExchange(Model):
    """OAuth 2.0 token exchange (RFC 8693): the caller's own token (auth: jwt) traded at its
    issuer for one meant for the upstream; the caller's token itself never goes upstream."""

    name: Name
    kind: Literal["oauth2_token_exchange"]
    token_url: Annotated[str, Field(pattern=r"^https?://")]
    client_id: str
    client_secret: SecretRef
    audience: str | None = Field(None, description="The upstream the new token is for.")
    resource: str | None = None
    scopes: list[str] = Field(default_factory=list)


CredentialProvider = Annotated[
    ApiKeyCredential | ClientCredentials | AuthorizationCode | TokenExchange, Field(discriminator="kind")
]
