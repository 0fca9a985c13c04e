"""A target's OAUTH credential provider configuration, read into its gateway's own configuration
(gateway.agentcore._vault_links, ADR 0033): an entry named as the token-vault provider, with
``vault: tenant``, which the broker signs with the token vault's client secret and whose tokens
are the gateway's own, kept per configuration."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.agentcore._call import AwsError
from gateway.agentcore._gateways import _target
from gateway.agentcore._vault_links import OAUTH_SCHEME, OAuthLink, entry, oauth_link, relinked, signers
from gateway.auth import TENANT_VAULT, provider_specs, qualified, vault_name
from gateway.config import (
    ApiKeyCredential,
    AuthorizationCode,
    ClientCredentials,
    GatewaySpec,
    OpenApiTarget,
    validate,
)
from gateway.core.errors import ConfigError
from gateway.store import AwsResource, Store, StoreSecrets
from identity.outbound import SERVICE, Broker, ConsentRequired
from identity.vault import LocalKeyring, Owner, Vault
from tests.fixtures.oidc_server import Issuer, running

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC)
ARN = "arn:aws:acps:us-west-2:123456789012:token-vault/default/oauth2credentialprovider/idp"
DOC = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {"/x": {"get": {"responses": {}}}},
}


def _oauth(**provider: Any) -> dict[str, Any]:
    return {
        "credentialProviderType": "OAUTH",
        "credentialProvider": {"oauthCredentialProvider": {"providerArn": ARN, "scopes": [], **provider}},
    }


def _row(vendor: str = "CustomOauth2", **attrs: Any) -> AwsResource:
    base = {
        "vendor": vendor,
        "member": "customOauth2ProviderConfig",
        "clientId": "agent",
        "generation": "g1",
        "issuer": "https://idp.example",
        "authorizationEndpoint": "https://idp.example/authorize",
        "tokenEndpoint": "https://idp.example/token",
    }
    return AwsResource("t", "oauth2_provider", "idp", "idp", {**base, **attrs}, None, NOW, NOW)


def _gateway(*providers: Any, signing: str | None = "idp") -> GatewaySpec:
    credentials = {OAUTH_SCHEME: {"provider": signing}} if signing else {}
    target = {"name": "api", "kind": "openapi", "spec": DOC, "credentials": credentials}
    data = {"name": "gw", "credential_providers": [p.model_dump() for p in providers], "targets": [target]}
    return validate(GatewaySpec, data, source="test")


async def test_an_oauth_target_sends_the_token_as_its_documents_only_bearer_scheme() -> None:
    params = {
        "targetConfiguration": {"mcp": {"openApiSchema": {"inlinePayload": json.dumps(DOC)}}},
        "credentialProviderConfigurations": [_oauth(scopes=["read"], grantType="AUTHORIZATION_CODE")],
    }
    target, providers = await _target(params, "api")
    assert isinstance(target, OpenApiTarget) and isinstance(target.spec, dict)
    assert target.spec["components"]["securitySchemes"][OAUTH_SCHEME] == {"type": "http", "scheme": "bearer"}
    assert target.spec["security"] == [{OAUTH_SCHEME: []}]
    assert target.credentials[OAUTH_SCHEME].provider == "idp"
    assert providers == [OAuthLink("idp", "AUTHORIZATION_CODE", ("read",), {})]


def test_a_configuration_without_a_grant_type_asks_for_client_credentials() -> None:
    assert oauth_link(_oauth(scopes=["a", "b"])) == OAuthLink("idp", "CLIENT_CREDENTIALS", ("a", "b"), {})
    custom = oauth_link(_oauth(grantType="AUTHORIZATION_CODE", customParameters={"prompt": "consent"}))
    assert custom.custom == {"prompt": "consent"}


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"credentialProviderType": "OAUTH"}, "providerArn"),
        (
            _oauth(providerArn=ARN.replace("oauth2credentialprovider", "apikeycredentialprovider")),
            "CreateOauth2CredentialProvider",
        ),
        (_oauth(grantType="TOKEN_EXCHANGE"), "TOKEN_EXCHANGE"),
        (
            _oauth(grantType="AUTHORIZATION_CODE", defaultReturnUrl="https://app.example/back"),
            "defaultReturnUrl",
        ),
        (_oauth(customParameters={"audience": "x"}), "customParameters"),
    ],
)
def test_what_switchboard_cannot_serve_is_refused_by_name(config: dict[str, Any], says: str) -> None:
    with pytest.raises(AwsError) as refused:
        oauth_link(config)
    assert refused.value.code == "ValidationException" and says in refused.value.message


async def test_oauth_is_refused_on_targets_other_than_openapi_documents() -> None:
    params = {
        "targetConfiguration": {"mcp": {"mcpServer": {"endpoint": "https://mcp.example.com/mcp"}}},
        "credentialProviderConfigurations": [_oauth()],
    }
    with pytest.raises(AwsError, match="openApiSchema targets only"):
        await _target(params, "m")


def test_the_entry_repeats_the_providers_client_and_the_targets_scopes_never_its_secret() -> None:
    machine = entry(_row(), "CLIENT_CREDENTIALS", ["read"], {})
    assert machine == ClientCredentials(
        name="idp",
        kind="oauth2_client_credentials",
        vault="tenant",
        token_url="https://idp.example/token",
        client_id="agent",
        scopes=["read"],
    )
    assert machine.client_secret is None
    github = _row(
        "GithubOauth2",
        authorizationEndpoint="https://github.com/login/oauth/authorize",
        tokenEndpoint="https://github.com/login/oauth/access_token",
    )
    user = entry(github, "AUTHORIZATION_CODE", ["repo"], {"allow_signup": "false"})
    assert isinstance(user, AuthorizationCode) and user.preset == "github" and user.vault == "tenant"
    assert user.authorize_params == {"allow_signup": "false"} and user.client_secret is None
    with pytest.raises(AwsError, match="no authorization endpoint"):
        entry(_row(authorizationEndpoint=None), "AUTHORIZATION_CODE", [], {})


def test_a_changed_provider_rewrites_its_entries_and_leaves_the_rest() -> None:
    own = ApiKeyCredential(name="key", kind="api_key")
    spec = _gateway(entry(_row(), "AUTHORIZATION_CODE", ["read"], {"prompt": "consent"}), own)
    moved = relinked(spec, _row(clientId="other", authorizationEndpoint="https://new.example/authorize"))
    new, kept = moved.credential_providers
    assert isinstance(new, AuthorizationCode) and kept == own
    assert (new.client_id, new.authorize_url, new.scopes) == (
        "other",
        "https://new.example/authorize",
        ["read"],
    )
    assert new.authorize_params == {"prompt": "consent"}  # the target's own parameters stay
    assert relinked(spec, _row()) == spec  # nothing changed: nothing to write
    with pytest.raises(AwsError, match="gateway gw uses it with grantType AUTHORIZATION_CODE"):
        relinked(spec, _row(authorizationEndpoint=None))


def test_signers_are_the_targets_that_name_the_provider() -> None:
    linked = entry(_row(), "CLIENT_CREDENTIALS", [], {})
    assert signers(_gateway(linked), "idp") == ["api"]
    assert signers(_gateway(linked, signing=None), "idp") == []


def test_the_broker_sees_the_gateways_own_provider_with_the_token_vaults_client_secret() -> None:
    spec = _gateway(entry(_row(), "CLIENT_CREDENTIALS", ["read"], {}))
    [provider] = provider_specs(spec).values()
    assert provider.name == qualified("gw", "idp")  # tokens and consents: the gateway's own
    assert (
        provider.secret_name
        == qualified(TENANT_VAULT, "idp")
        == vault_name("gw", spec.credential_providers[0])
    )
    assert provider.slot == f"gw/idp#{provider.variant}" and provider.variant
    others = [
        _gateway(entry(_row(), "CLIENT_CREDENTIALS", ["read", "write"], {})),
        _gateway(entry(_row(clientId="other"), "CLIENT_CREDENTIALS", ["read"], {})),
        _gateway(entry(_row(tokenEndpoint="https://new.example/token"), "CLIENT_CREDENTIALS", ["read"], {})),
    ]
    variants = {next(iter(provider_specs(s).values())).variant for s in others}
    assert provider.variant not in variants and len(variants) == 3  # never the old configuration's tokens
    plain = entry(_row(), "AUTHORIZATION_CODE", ["read"], {}).model_copy(update={"vault": "gateway"})
    own = provider_specs(_gateway(plain))["idp"]  # the gateway's own client (a public one here)
    assert (own.name, own.secret_name, own.variant) == ("gw/idp", None, "")  # as before


def test_a_token_vault_client_takes_no_secret_in_the_configuration() -> None:
    base = {"name": "idp", "kind": "oauth2_client_credentials", "token_url": "https://i/t", "client_id": "c"}
    with pytest.raises(ConfigError, match="leave `client_secret` out"):
        validate(ClientCredentials, {**base, "vault": "tenant", "client_secret": {"env": "X"}}, source="t")
    with pytest.raises(ConfigError, match="give `client_secret`"):
        validate(ClientCredentials, base, source="t")
    code = {"name": "idp", "kind": "oauth2_authorization_code", "preset": "github", "client_id": "c"}
    with pytest.raises(ConfigError, match="leave `client_secret` out"):
        validate(AuthorizationCode, {**code, "vault": "tenant", "client_secret": {"env": "X"}}, source="t")


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running() as found:
        yield found


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    made = Broker(Vault(LocalKeyring(tmp_path / "vault.keys"), StoreSecrets(store)), b"k" * 32, "http://x/cb")
    yield made
    await made.aclose()
    await store.close()


async def test_the_token_vaults_client_secret_signs_the_gateways_token_requests(
    issuer: Issuer, broker: Broker
) -> None:
    row = _row(tokenEndpoint=f"{issuer.url}/token", authorizationEndpoint=f"{issuer.url}/authorize")
    await broker.vault.put(
        Owner("t", SERVICE, "~/idp", "client_secret"), "agent-secret"
    )  # where _oauth keeps it
    machine = provider_specs(_gateway(entry(row, "CLIENT_CREDENTIALS", ["read"], {})))["idp"]
    token = await broker.secret("t", "alice", machine)
    assert token in issuer.live and issuer.grants == {"client_credentials": 1}
    user = provider_specs(_gateway(entry(row, "AUTHORIZATION_CODE", ["openid"], {})))["idp"]
    with pytest.raises(ConsentRequired) as asked:
        await broker.secret("t", "alice", user)
    assert asked.value.provider == "gw/idp"  # the consent is for this gateway's provider
    state = parse_qs(urlsplit(asked.value.url).query)["state"][0]
    assert broker.pending(state) == ("t", "alice", "gw/idp")
