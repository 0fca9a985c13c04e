"""Per-user OAuth (3LO, PKCE) through a real `switchboard serve`: consent through URL
elicitation (both eras) or a link, tokens bound to the user who consented, one refresh for
fifty concurrent calls after the tokens expire, and nothing readable at rest.

The upstream API is the issuer's own ``/userinfo`` (an OpenAPI target): it answers whose
token it was given, so a result shows whose credential the gateway used.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import orjson
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.harness import Served, serve
from tests.e2e.test_federation import free_port, start_upstream, stop
from tests.fixtures.oidc_server import Issuer, running, userinfo_openapi

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Issuer, Path]]:
    root = tmp_path_factory.mktemp("oauth")
    upstream_port = free_port()
    upstream = start_upstream(upstream_port)
    with running() as issuer:
        (root / "idp.yaml").write_text(userinfo_openapi(issuer))
        (root / "switchboard.yaml").write_text(
            f"""
gateways:
  - name: default
    auth: {{kind: api_key}}
    credential_providers:
      - name: idp
        kind: oauth2_authorization_code
        authorize_url: {issuer.url}/authorize
        token_url: {issuer.url}/token
        client_id: agent
        client_secret: {{env: IDP_CLIENT_SECRET}}
        scopes: [openid, profile]
      - name: service
        kind: oauth2_client_credentials
        token_url: {issuer.url}/token
        client_id: agent
        client_secret: {{env: IDP_CLIENT_SECRET}}
        resource: https://api.example/
    targets:
      - name: mcpu
        kind: mcp
        url: http://127.0.0.1:{upstream_port}/mcp
        sessions: per_user
        credential: {{provider: idp}}
      - name: svc
        kind: openapi
        spec: {root / "idp.yaml"}
        credentials: {{idp: {{provider: service}}}}
      - name: me
        kind: openapi
        spec: {root / "idp.yaml"}
        credentials: {{idp: {{provider: idp}}}}
"""
        )
        try:
            with serve(
                root / "data", root / "switchboard.yaml", env={"IDP_CLIENT_SECRET": "agent-secret"}
            ) as served:
                yield served, issuer, root / "data"
        finally:
            stop(upstream)


async def key_for(served: Served, subject: str) -> str:
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        made = await admin.post("/admin/v1/gateways/default/keys", json={"subject": subject})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def consenting_as(user: str, seen: list[str]) -> Any:
    """An elicitation callback that plays the user: opens the URL, logs in, approves."""

    async def answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams), params
        seen.append(params.url)
        async with httpx2.AsyncClient(follow_redirects=True) as browser:
            page = await browser.get(params.url + f"&login_hint={user}")
        assert page.status_code == 200 and "Authorized" in page.text, page.text
        return types.ElicitResult(action="accept")

    return answer


async def whoami(served: Served, key: str, mode: str, elicit: Any = None) -> types.CallToolResult:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        Client(
            streamable_http_client(served.mcp, http_client=http), mode=mode, elicitation_callback=elicit
        ) as c,
    ):
        return await c.call_tool("me___whoami", {})


@pytest.mark.parametrize(("user", "mode"), [("alice", "legacy"), ("bob", "2026-07-28")])
async def test_each_user_consents_once_and_calls_with_their_own_token(
    world: tuple[Served, Issuer, Path], user: str, mode: str
) -> None:
    served, issuer, _ = world
    key = await key_for(served, user)
    urls: list[str] = []
    first = await whoami(served, key, mode, consenting_as(user, urls))
    assert first.structured_content is not None and first.structured_content["sub"] == user, first
    assert len(urls) == 1 and urls[0].startswith(f"{issuer.url}/authorize?")
    assert "code_challenge_method=S256" in urls[0]
    again = await whoami(served, key, mode, consenting_as(user, urls))  # no second consent
    assert again.structured_content is not None and again.structured_content["sub"] == user
    assert len(urls) == 1


async def test_a_client_without_url_elicitation_gets_the_link(world: tuple[Served, Issuer, Path]) -> None:
    served, issuer, _ = world
    result = await whoami(served, await key_for(served, "carol"), "legacy")
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("Authorize idp to continue: open ") and f"{issuer.url}/authorize?" in text


async def test_fifty_calls_with_expired_tokens_make_one_refresh(world: tuple[Served, Issuer, Path]) -> None:
    served, issuer, data = world
    key = await key_for(served, "dave")
    first = await whoami(served, key, "legacy", consenting_as("dave", []))
    assert first.structured_content is not None and first.structured_content["sub"] == "dave"
    async with httpx2.AsyncClient() as http:
        await http.post(f"{issuer.url}/test/expire")  # every access token now gets 401
    before = issuer.grants.get("refresh_token", 0)
    results: list[Any] = []
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        Client(streamable_http_client(served.mcp, http_client=http), mode="legacy") as client,
        anyio.create_task_group() as tg,
    ):

        async def call() -> None:
            result = await client.call_tool("me___whoami", {})
            results.append((result.structured_content or {}).get("sub"))

        for _ in range(50):
            tg.start_soon(call)
    assert results == ["dave"] * 50
    assert issuer.grants.get("refresh_token", 0) - before == 1
    # Nothing the issuer handed out is readable in the gateway's database.
    stored = b"".join(p.read_bytes() for p in data.glob("switchboard.db*"))
    for secret in [*issuer.live, *issuer.refresh_tokens]:
        assert secret.encode() not in stored


async def test_a_hosted_agent_gets_its_users_token_through_workload_identity(
    world: tuple[Served, Issuer, Path],
) -> None:
    served, issuer, _ = world
    async with httpx2.AsyncClient(base_url=served.base) as http:
        refused = await http.post(
            "/identity/v1/workload-token", json={"workload": "triage", "user_id": "erin"}
        )
        assert refused.status_code == 401 and "admin key" in refused.json()["error"]
        made = await http.post(
            "/identity/v1/workload-token",
            json={"workload": "triage", "user_id": "erin"},
            headers=served.admin_headers,
        )
        token = made.json()["workload_token"]
        ask = {"workload_token": token, "gateway": "default", "provider": "idp"}
        first = (await http.post("/identity/v1/resource-token", json=ask)).json()
        assert first["authorization_url"].startswith(f"{issuer.url}/authorize?")  # erin has not consented
        async with httpx2.AsyncClient(follow_redirects=True) as browser:
            page = await browser.get(first["authorization_url"] + "&login_hint=erin")
        assert "Authorized" in page.text
        granted = (await http.post("/identity/v1/resource-token", json=ask)).json()
        me = await http.get(
            f"{issuer.url}/userinfo", headers={"Authorization": f"Bearer {granted['access_token']}"}
        )
        assert me.json()["sub"] == "erin"

        tampered = {**ask, "workload_token": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")}
        assert (await http.post("/identity/v1/resource-token", json=tampered)).status_code == 401
        unknown = await http.post("/identity/v1/resource-token", json={**ask, "provider": "nope"})
        assert unknown.status_code == 404
        userless = (
            await http.post(
                "/identity/v1/workload-token", json={"workload": "cron"}, headers=served.admin_headers
            )
        ).json()["workload_token"]
        no_user = await http.post("/identity/v1/resource-token", json={**ask, "workload_token": userless})
        assert no_user.status_code == 422 and "acts for a user" in no_user.json()["error"]


async def test_client_credentials_call_as_the_gateway_itself(world: tuple[Served, Issuer, Path]) -> None:
    served, issuer, _ = world
    before = issuer.grants.get("client_credentials", 0)
    for user in ("frank", "gina"):  # one token for the gateway, whoever calls
        async with (
            httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {await key_for(served, user)}"}, timeout=30
            ) as http,
            Client(streamable_http_client(served.mcp, http_client=http), mode="legacy") as client,
        ):
            seen = (await client.call_tool("svc___whoami", {})).structured_content
        assert seen is not None and seen["sub"] == "client:agent"
    assert issuer.grants.get("client_credentials", 0) - before == 1


async def test_a_federated_mcp_server_gets_each_users_own_token(world: tuple[Served, Issuer, Path]) -> None:
    served, _, _ = world
    for user in ("hana", "ivan"):
        key = await key_for(served, user)
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
            Client(
                streamable_http_client(served.mcp, http_client=http),
                mode="legacy",
                elicitation_callback=consenting_as(user, []),
            ) as client,
        ):
            sent = (await client.call_tool("mcpu___whoami", {})).content[0].text  # type: ignore[union-attr]
        assert sent.startswith("Bearer ")
        payload = sent.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["sub"] == user  # the upstream saw this user's own token, not the caller's key
        assert key not in sent
