"""Gateway targets that sign their calls with a token-vault OAuth2 credential provider (AgentCore's
``OAUTH`` credential provider configuration, ADR 0033), through boto3 against a real
``switchboard serve``: CLIENT_CREDENTIALS calls the upstream with the gateway's own token,
AUTHORIZATION_CODE with each MCP caller's own after their consent (the link, or URL elicitation);
a change to the provider reaches the gateways that use it, and a provider in use is not deleted.

The test OAuth server (tests/fixtures/oidc_server.py) is the provider; the upstream is an API on
loopback that takes only the server's live tokens and answers with their claims.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from joserfc import jwt
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.harness import Served, create_tenant, serve
from tests.e2e.test_agentcore import ROLE, _access_key, _clients, _code, _run
from tests.fixtures.oidc_server import Browser, Issuer, consent_in_browser, running
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio

AUDIENCE = "sb-people"


@dataclass
class World:
    live: Served
    issuer: Issuer
    upstream: str
    seen: list[dict[str, Any]]  # the claims of every token the upstream took
    control: Any
    data_dir: Path
    made: dict[str, str] = field(default_factory=dict)  # gateway name -> gatewayId


def _upstream(issuer: Issuer, seen: list[dict[str, Any]]) -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if token not in issuer.live:
            return JSONResponse(
                {"message": "send a token of the issuer"}, 401, {"WWW-Authenticate": "Bearer"}
            )
        claims = dict(jwt.decode(token, issuer.keys[-1]).claims)
        seen.append(claims)
        return JSONResponse({k: claims[k] for k in ("iss", "sub", "azp", "scope") if k in claims})

    return Starlette(routes=[Route("/whoami", whoami)])


def _document(server: str) -> str:
    schema = {"type": "object", "properties": {"sub": {"type": "string"}, "scope": {"type": "string"}}}
    return json.dumps(
        {
            "openapi": "3.0.3",
            "info": {"title": "who", "version": "1"},
            "servers": [{"url": server}],
            "paths": {
                "/whoami": {
                    "get": {
                        "operationId": "whoami",
                        "summary": "Whose token the call came with",
                        "responses": {
                            "200": {
                                "description": "the token's claims",
                                "content": {"application/json": {"schema": schema}},
                            }
                        },
                    }
                }
            },
        }
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("agentcore-target-oauth")
    seen: list[dict[str, Any]] = []
    with running() as issuer, serve_app(_upstream(issuer, seen)) as upstream, serve(root / "data") as live:
        control, _ = _clients(live, _access_key(live))
        yield World(live, issuer, upstream, seen, control, root / "data")


def _discovered(issuer: Issuer, client: str = "agent", secret: str = "agent-secret") -> dict[str, Any]:
    discovery = {"discoveryUrl": f"{issuer.url}/.well-known/openid-configuration"}
    config = {"oauthDiscovery": discovery, "clientId": client, "clientSecret": secret}
    return {"customOauth2ProviderConfig": config}


async def _provider(w: World, name: str) -> str:
    made = await _run(
        lambda: w.control.create_oauth2_credential_provider(
            name=name,
            credentialProviderVendor="CustomOauth2",
            oauth2ProviderConfigInput=_discovered(w.issuer),
        )
    )
    return str(made["credentialProviderArn"])


async def _gateway(w: World, name: str, **auth: Any) -> str:
    made = await _run(
        lambda: w.control.create_gateway(name=name, roleArn=ROLE, **(auth or {"authorizerType": "NONE"}))
    )
    w.made[name] = made["gatewayId"]
    return str(made["gatewayId"])


def _target(w: World, gateway_id: str, name: str, arn: str, **oauth: Any) -> dict[str, Any]:
    """CreateGatewayTarget's (and UpdateGatewayTarget's) arguments for an OAUTH-signed target."""
    return {
        "gatewayIdentifier": gateway_id,
        "name": name,
        "targetConfiguration": {"mcp": {"openApiSchema": {"inlinePayload": _document(w.upstream)}}},
        "credentialProviderConfigurations": [
            {
                "credentialProviderType": "OAUTH",
                "credentialProvider": {"oauthCredentialProvider": {"providerArn": arn, **oauth}},
            }
        ],
    }


def _shown(w: World, gateway: str) -> dict[str, Any]:
    """The gateway as the admin API shows it (what the YAML would say)."""
    got = httpx2.get(f"{w.live.base}/admin/v1/gateways/{gateway}", headers=w.live.admin_headers)
    assert got.status_code == 200, got.text
    return dict(got.json())


async def _whoami(url: str, tool: str) -> dict[str, Any]:
    with anyio.fail_after(30):
        async with Client(url, mode="legacy") as client:
            result = await client.call_tool(tool, {})
    assert not result.is_error and result.structured_content is not None, result
    return dict(result.structured_content)


async def test_a_client_credentials_target_calls_with_the_gateways_token_and_follows_its_provider(
    world: World,
) -> None:
    w = world
    arn = await _provider(w, "machine")
    gateway_id = await _gateway(w, "svc")
    made = await _run(
        lambda: w.control.create_gateway_target(
            **_target(w, gateway_id, "api", arn, scopes=["read"], grantType="CLIENT_CREDENTIALS")
        )
    )
    assert made["status"] == "READY"
    # What governs the calls is the gateway's own configuration, without the secret.
    shown = _shown(w, "svc")
    assert shown["credential_providers"] == [
        {
            "name": "machine",
            "kind": "oauth2_client_credentials",
            "token_url": f"{w.issuer.url}/token",
            "client_id": "agent",
            "scopes": ["read"],
            "vault": "tenant",
        }
    ]
    assert shown["targets"][0]["credentials"] == {"agentcore_oauth": {"provider": "machine"}}
    assert "agent-secret" not in json.dumps(shown)

    url = w.live.gateway("svc")
    before = w.issuer.grants.get("client_credentials", 0)
    first = await _whoami(url, "api___whoami")
    assert first == {"iss": w.issuer.url, "sub": "client:agent", "azp": "agent", "scope": "read"}
    assert (await _whoami(url, "api___whoami")) == first  # the gateway's token, kept
    assert w.issuer.grants.get("client_credentials", 0) - before == 1

    # Another client for the provider: the gateway is rewritten, and calls with a token of it.
    await _run(
        lambda: w.control.update_oauth2_credential_provider(
            name="machine",
            credentialProviderVendor="CustomOauth2",
            oauth2ProviderConfigInput=_discovered(w.issuer, "other", "other-secret"),
        )
    )
    assert _shown(w, "svc")["credential_providers"][0]["client_id"] == "other"
    assert (await _whoami(url, "api___whoami"))["azp"] == "other"
    # Other scopes for the target: a token asked with them.
    await _run(
        lambda: w.control.update_gateway_target(
            **_target(w, gateway_id, "api", arn, scopes=["read", "write"]), targetId=made["targetId"]
        )
    )
    again = await _run(
        lambda: w.control.get_gateway_target(gatewayIdentifier=gateway_id, targetId=made["targetId"])
    )
    assert again["credentialProviderConfigurations"][0]["credentialProvider"]["oauthCredentialProvider"][
        "scopes"
    ] == ["read", "write"]
    assert await _whoami(url, "api___whoami") == {
        "iss": w.issuer.url,
        "sub": "client:other",
        "azp": "other",
        "scope": "read write",
    }
    stored = b"".join(p.read_bytes() for p in w.data_dir.glob("switchboard.db*"))
    assert b"agent-secret" not in stored and b"other-secret" not in stored

    # In use, the provider is not deleted; once its target is gone, it is, with the gateway's entry.
    code, status, message = await _run(
        lambda: _code(lambda: w.control.delete_oauth2_credential_provider(name="machine"))
    )
    assert (code, status) == ("ConflictException", 409)
    assert "gateway svc" in message and gateway_id in message and "api" in message, message
    await _run(
        lambda: w.control.delete_gateway_target(gatewayIdentifier=gateway_id, targetId=made["targetId"])
    )
    await _run(lambda: w.control.delete_oauth2_credential_provider(name="machine"))
    assert "credential_providers" not in _shown(w, "svc")


def _user_jwt(issuer: Issuer, user: str) -> str:
    now = int(time.time())
    return issuer.sign({"iss": issuer.url, "sub": user, "aud": AUDIENCE, "iat": now, "exp": now + 600})


async def _call_as(w: World, user_jwt: str, mode: str = "legacy", elicit: Any = None) -> types.CallToolResult:
    with anyio.fail_after(60):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {user_jwt}"}, timeout=30) as http,
            Client(
                streamable_http_client(w.live.gateway("people"), http_client=http),
                mode=mode,
                elicitation_callback=elicit,
            ) as client,
        ):
            return await client.call_tool("me___whoami", {})


async def test_an_authorization_code_target_calls_with_each_callers_own_token_after_their_consent(
    world: World,
) -> None:
    w = world
    arn = await _provider(w, "people-idp")
    jwt_authorizer = {
        "customJWTAuthorizer": {
            "discoveryUrl": f"{w.issuer.url}/.well-known/openid-configuration",
            "allowedAudience": [AUDIENCE],
        }
    }
    gateway_id = await _gateway(
        w, "people", authorizerType="CUSTOM_JWT", authorizerConfiguration=jwt_authorizer
    )
    oauth = {
        "scopes": ["openid"],
        "grantType": "AUTHORIZATION_CODE",
        "customParameters": {"prompt": "consent"},
    }
    await _run(lambda: w.control.create_gateway_target(**_target(w, gateway_id, "me", arn, **oauth)))
    entry = _shown(w, "people")["credential_providers"][0]
    assert entry["kind"] == "oauth2_authorization_code" and entry["vault"] == "tenant"
    assert entry["authorize_url"] == f"{w.issuer.url}/authorize" and entry["authorize_params"] == {
        "prompt": "consent"
    }

    # Alice's client cannot open URLs: the tool answers with the consent link.
    alice = _user_jwt(w.issuer, "alice")
    asked = await _call_as(w, alice)
    assert asked.is_error, asked
    text = asked.content[0].text  # type: ignore[union-attr]
    assert text.startswith("Authorize people-idp to continue: open "), text
    link = text.removeprefix("Authorize people-idp to continue: open ").strip()
    assert link.startswith(f"{w.live.base}/identity/oauth/start?")
    async with Browser(w.issuer, "alice") as browser:
        page = await browser.open(link)  # the gateway asks who this is first
        assert "Sign in to connect people-idp" in page.text, page.text
        on = await browser.sign_in(page, alice, follow=False)
        assert on.status_code == 303, on.text
        sent_to = on.headers["location"]
        assert sent_to.startswith(f"{w.issuer.url}/authorize?") and "prompt=consent" in sent_to
        assert "scope=openid" in sent_to and "code_challenge_method=S256" in sent_to
        done = await browser.open(sent_to)
        assert done.status_code == 200 and "Authorized" in done.text, done.text
    called = await _call_as(w, alice)
    assert called.structured_content is not None, called
    assert called.structured_content["sub"] == "alice" and w.seen[-1]["azp"] == "agent"

    # Bob's client opens URLs: URL elicitation, then the call goes on with his token.
    bob = _user_jwt(w.issuer, "bob")
    urls: list[str] = []

    async def consent(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams), params
        urls.append(params.url)
        page = await consent_in_browser(w.issuer, params.url, "bob", bob)
        assert page.status_code == 200 and "Authorized" in page.text, page.text
        return types.ElicitResult(action="accept")

    first = await _call_as(w, bob, "2026-07-28", consent)
    assert first.structured_content is not None and first.structured_content["sub"] == "bob", first
    again = await _call_as(w, bob, "2026-07-28", consent)
    assert again.structured_content is not None and again.structured_content["sub"] == "bob"
    assert len(urls) == 1 and urls[0].startswith(f"{w.live.base}/identity/oauth/start?")


async def test_a_gateway_uses_a_token_vault_provider_one_way_and_refusals_name_the_problem(
    world: World,
) -> None:
    w = world
    arn = await _provider(w, "shared")
    gateway_id = await _gateway(w, "two")
    await _run(lambda: w.control.create_gateway_target(**_target(w, gateway_id, "a", arn, scopes=["read"])))
    await _run(lambda: w.control.create_gateway_target(**_target(w, gateway_id, "b", arn, scopes=["read"])))
    missing = arn.replace("/shared", "/nowhere")
    cases = [
        (_target(w, gateway_id, "c", arn, scopes=["write"]), ("target(s) a, b", "scopes ['read']")),
        (_target(w, gateway_id, "c", missing, scopes=[]), ("nowhere", "does not exist")),
        (_target(w, gateway_id, "c", arn, scopes=[], grantType="TOKEN_EXCHANGE"), ("TOKEN_EXCHANGE",)),
    ]
    for params, mentions in cases:
        code, status, message = await _run(
            lambda params=params: _code(lambda: w.control.create_gateway_target(**params))  # type: ignore[misc]
        )
        assert (code, status) == ("ValidationException", 400), message
        for mention in mentions:
            assert mention in message, message
    assert [t["name"] for t in _shown(w, "two")["targets"]] == ["a", "b"]  # nothing was stored
    _, _, message = await _run(
        lambda: _code(lambda: w.control.delete_oauth2_credential_provider(name="shared"))
    )
    assert "target(s) a, b" in message, message

    # A tenant's change is the tenant administrator's: the token endpoint must be a public address.
    acme_control, _ = _clients(w.live, _access_key(w.live, await create_tenant(w.data_dir, "acme")))
    metadata = {
        "issuer": w.issuer.url,
        "authorizationEndpoint": f"{w.issuer.url}/authorize",
        "tokenEndpoint": f"{w.issuer.url}/token",
    }
    config = {
        "customOauth2ProviderConfig": {
            "oauthDiscovery": {"authorizationServerMetadata": metadata},
            "clientId": "agent",
            "clientSecret": "agent-secret",
        }
    }
    made = await _run(
        lambda: acme_control.create_oauth2_credential_provider(
            name="loopback", credentialProviderVendor="CustomOauth2", oauth2ProviderConfigInput=config
        )
    )
    acme_gateway = await _run(
        lambda: acme_control.create_gateway(name="acme-gw", roleArn=ROLE, authorizerType="NONE")
    )
    params = _target(w, acme_gateway["gatewayId"], "t", made["credentialProviderArn"], scopes=[])
    code, _, message = await _run(lambda: _code(lambda: acme_control.create_gateway_target(**params)))
    assert code == "ValidationException" and "token_url" in message and "public" in message, message
