"""Inbound authentication through a real `switchboard serve`: OAuth bearer tokens from a real
issuer on loopback (RFC 9728 discovery, audience, scopes) and gateway API keys, revoked across
replicas sharing PostgreSQL and Redis."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from tests.e2e.harness import ACCEPT, INIT, Served, serve
from tests.e2e.postgres import fresh_database
from tests.fixtures.oidc_server import Issuer, running, userinfo_openapi
from tests.support.services import redis_url

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Issuer]]:
    root = tmp_path_factory.mktemp("auth")
    with running() as issuer:
        (root / "idp.yaml").write_text(userinfo_openapi(issuer))
        config = root / "switchboard.yaml"
        config.write_text(
            f"""
gateways:
  - name: default
    targets:
      - {{name: fx, kind: function, functions: ["tests.fixtures.functions:whoami"]}}
  - name: secure
    auth:
      kind: jwt
      discovery_url: {issuer.url}/.well-known/openid-configuration
      scopes: [tools:call]
      claims: [{{claim: azp, contains_any: [agent]}}]
    a2a_agent: {{name: tools}}
    targets:
      - {{name: fx, kind: function, functions: ["tests.fixtures.functions:whoami"]}}
  - name: exchange
    auth: {{kind: jwt, discovery_url: {issuer.url}/.well-known/openid-configuration}}
    credential_providers:
      - {{name: upstream, kind: oauth2_token_exchange, token_url: {issuer.url}/token, client_id: agent,
          client_secret: {{env: IDP_CLIENT_SECRET}}, audience: https://api.example/}}
    targets:
      - {{name: me, kind: openapi, spec: {root / "idp.yaml"}, credentials: {{idp: {{provider: upstream}}}}}}
  - name: keyed
    auth: {{kind: api_key}}
    targets:
      - {{name: fx, kind: function, functions: ["tests.fixtures.functions:whoami"]}}
"""
        )
        with serve(root / "data", config, env={"IDP_CLIENT_SECRET": "agent-secret"}) as served:
            yield served, issuer


async def token(issuer: Issuer, resource: str, scope: str = "tools:call", client: str = "agent") -> str:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{issuer.url}/token",
            data={"grant_type": "client_credentials", "resource": resource, "scope": scope},
            auth=(client, f"{client}-secret"),
        )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def whoami(url: str, authorization: dict[str, str]) -> Any:
    async with (
        httpx2.AsyncClient(headers=authorization, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        return (await client.call_tool("fx___whoami", {})).structured_content


async def test_an_mcp_client_finds_the_issuer_and_calls_with_a_token(secured: tuple[Served, Issuer]) -> None:
    served, issuer = secured
    url = served.gateway("secure")
    async with httpx2.AsyncClient() as http:
        refused = await http.post(url, json=INIT, headers=ACCEPT)
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        metadata_url = re.search(r'resource_metadata="([^"]+)"', challenge).group(1)  # type: ignore[union-attr]
        assert metadata_url == f"{served.base}/.well-known/oauth-protected-resource/gateways/secure/mcp"
        metadata = (await http.get(metadata_url)).json()
    assert metadata["resource"] == url
    assert metadata["authorization_servers"] == [issuer.url]
    assert metadata["scopes_supported"] == ["tools:call"]
    # What a client does next: get a token for this resource (RFC 8707), then call.
    seen = await whoami(url, {"Authorization": f"Bearer {await token(issuer, metadata['resource'])}"})
    assert seen == {
        "tenant": "default",
        "subject": "client:agent",
        "client": "agent",
        "scopes": ["tools:call"],
    }


async def test_refusals_at_the_edge(secured: tuple[Served, Issuer]) -> None:
    served, issuer = secured
    url = served.gateway("secure")
    good = await token(issuer, url)
    cases = [
        (
            "a token for another resource",
            {"Authorization": f"Bearer {await token(issuer, 'https://other/mcp')}"},
            "",
            401,
            "not for this gateway",
        ),
        ("a token in the query string", {}, f"?access_token={good}", 401, "tokens in the URL are refused"),
        (
            "a token without the scope",
            {"Authorization": f"Bearer {await token(issuer, url, scope='')}"},
            "",
            403,
            "lacks scope tools:call",
        ),
        (
            "another client",
            {"Authorization": f"Bearer {await token(issuer, url, client='other')}"},
            "",
            403,
            "azp contains any of",
        ),
        ("an API key on a JWT gateway", {"Authorization": "Bearer sb_key_abc_def"}, "", 401, "not a JWT"),
    ]
    async with httpx2.AsyncClient() as http:
        for case, headers, query, status, words in cases:
            response = await http.post(url + query, json=INIT, headers={**ACCEPT, **headers})
            assert response.status_code == status, (case, response.text)
            assert words in response.json()["error_description"], (case, response.text)
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer resource_metadata=")
            if status == 403:
                assert 'error="insufficient_scope"' in challenge and 'scope="tools:call"' in challenge


async def test_api_keys_are_made_used_and_revoked(secured: tuple[Served, Issuer]) -> None:
    served, _ = secured
    url = served.gateway("keyed")
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        made = await admin.post(
            "/admin/v1/gateways/keyed/keys", json={"subject": "ci-bot", "scopes": ["deploy"]}
        )
        assert made.status_code == 201, made.text
        key, key_id = made.json()["key"], made.json()["key_id"]
        other = (await admin.post("/admin/v1/gateways/secure/keys", json={"subject": "x"})).json()["key"]
        bad = await admin.post("/admin/v1/gateways/keyed/keys", json={"scopes": "deploy"})
        assert bad.status_code == 422 and bad.json()["issues"][0]["location"] == "subject"
        listed = (await admin.get("/admin/v1/gateways/keyed/keys")).json()["keys"]
        assert (
            [k["key_id"] for k in listed] == [key_id] and "hash" not in listed[0] and "key" not in listed[0]
        )

        expected = {"tenant": "default", "subject": "ci-bot", "client": f"key:{key_id}", "scopes": ["deploy"]}
        assert await whoami(url, {"Authorization": f"Bearer {key}"}) == expected
        assert await whoami(url, {"X-Api-Key": key}) == expected
        async with httpx2.AsyncClient() as http:
            wrong_gateway = await http.post(
                url, json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {other}"}
            )
            assert wrong_gateway.status_code == 401 and "not for gateway 'keyed'" in wrong_gateway.text
            assert (await admin.delete(f"/admin/v1/gateways/keyed/keys/{key_id}")).status_code == 204
            revoked = await http.post(url, json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {key}"})
            assert revoked.status_code == 401 and "unknown or revoked" in revoked.text
        assert (await admin.delete(f"/admin/v1/gateways/keyed/keys/{key_id}")).status_code == 404


async def test_token_exchange_trades_the_callers_token_for_the_upstreams(
    secured: tuple[Served, Issuer],
) -> None:
    served, issuer = secured
    url = served.gateway("exchange")
    mine = await token(issuer, url)
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {mine}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        seen = (await client.call_tool("me___whoami", {})).structured_content
    # The upstream got a token for itself, for the same user, saying the gateway acts for them;
    # the caller's own token (issued for the gateway) never left the gateway.
    assert seen == {
        "sub": "client:agent",
        "scope": "",
        "aud": "https://api.example/",
        "act": {"sub": "agent"},
    }
    assert issuer.grants.get("urn:ietf:params:oauth:grant-type:token-exchange") == 1


class _Storage:
    """The client's token store, with the client registered beforehand (no dynamic registration)."""

    def __init__(self, redirect: str) -> None:
        self.tokens: OAuthToken | None = None
        self.client = OAuthClientInformationFull(
            client_id="agent",
            client_secret="agent-secret",
            redirect_uris=[AnyUrl(redirect)],
            token_endpoint_auth_method="client_secret_post",
        )

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def test_the_mcp_sdks_own_oauth_client_signs_in_and_calls(secured: tuple[Served, Issuer]) -> None:
    """What Claude, the Inspector or mcp-remote do: a 401, RFC 9728 discovery, the issuer's
    metadata, authorization code + PKCE with resource=<gateway> (RFC 8707), then the call."""
    served, _ = secured
    url = served.gateway("exchange")
    redirect = "http://127.0.0.1:9/callback"  # the client's own redirect URI (never served here)
    landed: list[str] = []

    async def open_browser(authorization_url: str) -> None:
        assert "code_challenge_method=S256" in authorization_url and "resource=" in authorization_url
        async with httpx2.AsyncClient() as browser:  # the user signs in as zoe; the issuer redirects back
            landed.append((await browser.get(authorization_url + "&login_hint=zoe")).headers["location"])

    async def back_at_the_client() -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(landed[-1]).query)
        return AuthorizationCodeResult(code=query["code"][0], state=query["state"][0])

    storage = _Storage(redirect)
    oauth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(redirect_uris=[AnyUrl(redirect)], client_name="test agent"),
        storage=storage,
        redirect_handler=open_browser,
        callback_handler=back_at_the_client,
    )
    async with (
        httpx2.AsyncClient(auth=oauth, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        seen = (await client.call_tool("me___whoami", {})).structured_content
    assert seen is not None and seen["sub"] == "zoe"  # zoe's token, exchanged for the upstream's
    assert storage.tokens is not None
    token_claims = storage.tokens.access_token.split(".")[1]
    aud = orjson.loads(base64.urlsafe_b64decode(token_claims + "=" * (-len(token_claims) % 4)))["aud"]
    assert aud == url  # issued for this gateway, as RFC 8707 asks


KEYED = """
gateways:
  - name: keyed
    auth: {kind: api_key}
    targets:
      - {name: fx, kind: function, functions: ["tests.fixtures.functions:whoami"]}
"""


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_database("switchboard_e2e_auth") as url:
        yield url


async def status(url: str, key: str) -> int:
    async with httpx2.AsyncClient(timeout=30) as http:
        return (
            await http.post(url, json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {key}"})
        ).status_code


async def test_a_key_revoked_on_one_replica_is_refused_by_the_other_at_once(
    database: str, tmp_path: Path
) -> None:
    config = tmp_path / "sw.yaml"
    config.write_text(KEYED)
    env = {
        "SWITCHBOARD_DATABASE_URL": database,
        "SWITCHBOARD_REDIS_URL": redis_url(),
        "SWITCHBOARD_CONFIG_POLL_SECONDS": "3600",  # so only the shared revocations can tell B
    }
    with serve(tmp_path / "a", config, env=env) as a, serve(tmp_path / "b", env=env) as b:
        async with httpx2.AsyncClient(base_url=a.base, headers=a.admin_headers) as admin:
            made = (await admin.post("/admin/v1/gateways/keyed/keys", json={"subject": "ci"})).json()
            assert await status(b.gateway("keyed"), made["key"]) == 200  # B remembers it now
            revoked = await admin.delete(f"/admin/v1/gateways/keyed/keys/{made['key_id']}")
            assert revoked.status_code == 204
            assert await status(b.gateway("keyed"), made["key"]) == 401
            assert await status(a.gateway("keyed"), made["key"]) == 401


async def test_a_stricter_auth_bites_at_once_on_a_remembered_key(tmp_path: Path) -> None:
    config = tmp_path / "sw.yaml"
    config.write_text(KEYED)
    with serve(tmp_path / "data", config) as live:
        async with httpx2.AsyncClient(base_url=live.base, headers=live.admin_headers) as admin:
            key = (await admin.post("/admin/v1/gateways/keyed/keys", json={"subject": "ci"})).json()["key"]
            assert await status(live.gateway("keyed"), key) == 200
            gateway = (await admin.get("/admin/v1/gateways/keyed")).json()
            stricter = {"auth": {"kind": "api_key", "scopes": ["deploy"]}, "targets": gateway["targets"]}
            assert (await admin.put("/admin/v1/gateways/keyed", json=stricter)).status_code == 200
            assert await status(live.gateway("keyed"), key) == 403  # insufficient_scope, not remembered


async def test_an_a2a_agent_takes_tokens_for_its_own_url_in_both_bindings(
    secured: tuple[Served, Issuer],
) -> None:
    served, issuer = secured
    url = f"{served.base}/gateways/secure/a2a/tools"
    v1 = {"A2A-Version": "1.0"}
    async with httpx2.AsyncClient(timeout=30) as http:
        refused = await http.get(f"{url}/tasks", headers=v1)
        assert refused.status_code == 401
        metadata_url = re.search(r'resource_metadata="([^"]+)"', refused.headers["www-authenticate"]).group(1)  # type: ignore[union-attr]
        metadata = (await http.get(metadata_url)).json()
        assert metadata["resource"] == url  # the agent's URL, for every path under it
        bearer = {"Authorization": f"Bearer {await token(issuer, url)}", **v1}
        listed = await http.get(f"{url}/tasks", headers=bearer)
        assert listed.status_code == 200 and "tasks" in listed.json()
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
        assert "result" in (await http.post(url, json=rpc, headers=bearer)).json()
        other = {"Authorization": f"Bearer {await token(issuer, served.gateway('secure'))}", **v1}
        assert (await http.get(f"{url}/tasks", headers=other)).status_code == 401  # a token for the MCP URL
