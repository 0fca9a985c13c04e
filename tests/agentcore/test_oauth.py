"""An AgentCore OAuth2 provider as the broker sees it for one request (gateway.agentcore._oauth):
a preset's quirks for user federation only, and tokens kept apart by everything they were asked
with, so that no request is ever answered with a token got for another."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.agentcore._oauth import _spec
from gateway.store import AwsResource

NOW = datetime.now(UTC)


def provider(vendor: str = "CustomOauth2", **attrs: Any) -> AwsResource:
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


def test_a_presets_quirks_apply_to_user_federation_and_not_to_m2m() -> None:
    slack = provider(
        "SlackOauth2",
        authorizationEndpoint="https://slack.com/oauth/v2/authorize",
        tokenEndpoint="https://slack.com/api/oauth.v2.access",
    )
    user = _spec(slack, "oauth2_authorization_code", ["search:read"])
    assert user.name == "~/idp" and user.scope_param == "user_scope" and user.token_field == "authed_user"
    assert user.authorize_url == "https://slack.com/oauth/v2/authorize" and user.secret is None
    machine = _spec(slack, "oauth2_client_credentials", ["search:read"])
    assert machine.kind == "oauth2_client_credentials" and machine.scope_param == "scope"
    assert machine.scopes == ("search:read",) and machine.token_field is None
    microsoft = _spec(provider("MicrosoftOauth2"), "oauth2_authorization_code", ["User.Read"])
    assert microsoft.scopes == ("User.Read", "offline_access")  # the preset's own scope too


def test_tokens_are_kept_apart_by_all_they_were_asked_with() -> None:
    base = _spec(provider(), "oauth2_authorization_code", ["read", "write"])
    assert base.slot == f"~/idp#{base.variant}"
    assert _spec(provider(), "oauth2_authorization_code", ["write", "read"]).variant == base.variant
    others = [
        _spec(provider(), "oauth2_authorization_code", ["read"]),
        _spec(provider(), "oauth2_client_credentials", ["read", "write"]),
        _spec(provider(), "oauth2_token_exchange", ["read", "write"]),
        _spec(provider(), "oauth2_authorization_code", ["read", "write"], resource="https://api.example/"),
        _spec(provider(), "oauth2_token_exchange", ["read", "write"], audience="https://api.example/"),
        _spec(provider(generation="g2"), "oauth2_authorization_code", ["read", "write"]),  # made again
        _spec(provider(clientId="other"), "oauth2_authorization_code", ["read", "write"]),
        _spec(
            provider(tokenEndpoint="https://new.example/token"),
            "oauth2_authorization_code",
            ["read", "write"],
        ),
    ]
    variants = {base.variant, *(o.variant for o in others)}
    assert len(variants) == len(others) + 1
