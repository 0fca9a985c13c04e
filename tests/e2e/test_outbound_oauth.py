"""Per-user OAuth (3LO, PKCE) through a real `switchboard serve`: consent through URL
elicitation (both eras) or a link, completed only by the user who asked (the browser signs
in at the gateway; a forwarded link never makes A act as B), tokens bound to that user, one
refresh for fifty concurrent calls after the tokens expire, and nothing readable at rest.

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
from tests.fixtures.oidc_server import Browser, Issuer, consent_in_browser, running, userinfo_openapi

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


def consenting_as(issuer: Issuer, user: str, key: str, seen: list[str]) -> Any:
    """An elicitation callback that plays the user: opens the URL in their browser, signs in
    at the gateway with their key, approves at the provider."""

    async def answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams), params
        seen.append(params.url)
        page = await consent_in_browser(issuer, params.url, user, key)
        assert page.status_code == 200 and "Authorized" in page.text, page.text
        return types.ElicitResult(action="accept")

    return answer


def start_page(served: Served) -> str:
    return f"{served.base}/identity/oauth/start?"


async def link_for(served: Served, key: str) -> str:
    """The consent link a client without URL elicitation is given."""
    result = await whoami(served, key, "legacy")
    assert result.is_error, result
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("Authorize idp to continue: open "), text
    return text.removeprefix("Authorize idp to continue: open ").strip()


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
    first = await whoami(served, key, mode, consenting_as(issuer, user, key, urls))
    assert first.structured_content is not None and first.structured_content["sub"] == user, first
    assert len(urls) == 1 and urls[0].startswith(start_page(served))
    again = await whoami(served, key, mode, consenting_as(issuer, user, key, urls))  # no second consent
    assert again.structured_content is not None and again.structured_content["sub"] == user
    assert len(urls) == 1


async def test_a_client_without_url_elicitation_gets_the_link(world: tuple[Served, Issuer, Path]) -> None:
    served, issuer, _ = world
    key = await key_for(served, "carol")
    link = await link_for(served, key)
    assert link.startswith(start_page(served))
    async with Browser(issuer, "carol") as browser:
        asked = await browser.open(link)  # the gateway asks who this is before anything else
        assert asked.status_code == 200 and "Sign in to connect idp" in asked.text, asked.text
        on = await browser.sign_in(asked, key, follow=False)
        assert on.status_code == 303 and on.headers["location"].startswith(f"{issuer.url}/authorize?")
        assert "code_challenge_method=S256" in on.headers["location"]
        assert "httponly" in on.headers["set-cookie"].lower()
        done = await browser.open(on.headers["location"])
        assert done.status_code == 200 and "Authorized" in done.text, done.text
        # Signed in, the same browser goes straight on to the provider next time.
        again = await browser.http.get(link, follow_redirects=False)
    result = await whoami(served, key, "legacy")
    assert result.structured_content is not None and result.structured_content["sub"] == "carol", result
    assert again.status_code == 303 and again.headers["location"].startswith(f"{issuer.url}/authorize?")


async def test_fifty_calls_with_expired_tokens_make_one_refresh(world: tuple[Served, Issuer, Path]) -> None:
    served, issuer, data = world
    key = await key_for(served, "dave")
    first = await whoami(served, key, "legacy", consenting_as(issuer, "dave", key, []))
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
        assert first["authorization_url"].startswith(start_page(served))  # erin has not consented
        page = await consent_in_browser(
            issuer, first["authorization_url"], "erin", await key_for(served, "erin")
        )
        assert "Authorized" in page.text
        granted = (
            await http.post(
                "/identity/v1/resource-token",
                json={"gateway": "default", "provider": "idp"},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
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
                elicitation_callback=consenting_as(world[1], user, key, []),
            ) as client,
        ):
            sent = (await client.call_tool("mcpu___whoami", {})).content[0].text  # type: ignore[union-attr]
        assert sent.startswith("Bearer ")
        payload = sent.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["sub"] == user  # the upstream saw this user's own token, not the caller's key
        assert key not in sent


async def test_a_forwarded_consent_link_is_refused_at_the_gateway_sign_in(
    world: tuple[Served, Issuer, Path],
) -> None:
    """A sends A's consent link to B: B's browser is asked who it is, B's own key is not
    A's, and nothing reaches the provider. A's next call still asks for consent."""
    served, issuer, _ = world
    a_key, b_key = await key_for(served, "mallory"), await key_for(served, "victor")
    link = await link_for(served, a_key)
    codes_before = dict(issuer.grants)
    async with Browser(issuer, "victor") as b:
        asked = await b.open(link)
        refused = await b.sign_in(asked, b_key)
        assert refused.status_code == 403 and "This link is not yours" in refused.text, refused.text
        assert not refused.history and "set-cookie" not in refused.headers  # never sent on
        # Already signed in at the gateway as B (B's own consent earlier): still stopped.
        own = await b.consent(await link_for(served, b_key), b_key)
        assert "Authorized" in own.text, own.text
        again = await b.open(link)
        assert again.status_code == 403 and "another user than the one this link was made for" in again.text
        assert not again.history  # not redirected to the provider
    assert (
        issuer.grants.get("authorization_code", 0) - codes_before.get("authorization_code", 0) == 1
    )  # B's own
    still = await whoami(served, a_key, "legacy")
    assert still.is_error and "Authorize idp to continue" in still.content[0].text  # type: ignore[union-attr]


async def test_a_forwarded_provider_url_is_refused_at_the_callback(
    world: tuple[Served, Issuer, Path],
) -> None:
    """A signs in for A's own link but sends the provider's authorize URL (copied from the
    redirect) to B; B consents at the provider; the callback in B's browser stores nothing.
    A completing their own flow afterwards works."""
    served, issuer, _ = world
    a_key, b_key = await key_for(served, "mallet"), await key_for(served, "wendy")
    async with Browser(issuer, "mallet") as a:
        on = await a.sign_in(await a.open(await link_for(served, a_key)), a_key, follow=False)
        provider_url = on.headers["location"]
        assert on.status_code == 303 and provider_url.startswith(f"{issuer.url}/authorize?")
    before = issuer.grants.get("authorization_code", 0)
    for signed_in_as_b in (False, True):
        async with Browser(issuer, "wendy") as b:
            if signed_in_as_b:  # B's browser has B's own gateway sign-in
                assert "Authorized" in (await b.consent(await link_for(served, b_key), b_key)).text
                before += 1
            back = await b.open(provider_url)
        assert back.status_code == 403 and "Nothing was connected" in back.text, back.text
        assert str(back.url).startswith(f"{served.base}/identity/oauth/callback?")
    assert issuer.grants.get("authorization_code", 0) == before  # A's code was never exchanged
    still = await whoami(served, a_key, "legacy")
    assert still.is_error and "Authorize idp to continue" in still.content[0].text  # type: ignore[union-attr]
    page = await consent_in_browser(issuer, await link_for(served, a_key), "mallet", a_key)
    assert page.status_code == 200 and "Authorized" in page.text, page.text
    mine = await whoami(served, a_key, "legacy")
    assert mine.structured_content is not None and mine.structured_content["sub"] == "mallet"


async def test_a_consent_sign_in_posted_from_another_site_is_refused(
    world: tuple[Served, Issuer, Path],
) -> None:
    """Login CSRF: a page elsewhere posting the sign-in form with the attacker's key would sign
    the victim's browser in as the attacker; it is refused by its Origin and sets no cookie."""
    served, _, _ = world
    key = await key_for(served, "oscar")
    link = await link_for(served, key)
    state = dict(httpx2.URL(link).params)["state"]
    async with httpx2.AsyncClient(base_url=served.base) as http:
        for origin in ({"Origin": "http://evil.example"}, {}):
            posted = await http.post(
                "/identity/oauth/sign-in", data={"state": state, "credential": key}, headers=origin
            )
            assert posted.status_code == 403 and "another site" in posted.text, posted.text
            assert "set-cookie" not in posted.headers
        late = await http.post(
            "/identity/oauth/sign-in",
            data={"state": state[:-4] + "AAAA", "credential": key},
            headers={"Origin": served.base},
        )
        assert late.status_code == 400 and "not one this gateway made" in late.text


async def test_identity_api_bodies_are_capped_and_checked_after_authentication(
    world: tuple[Served, Issuer, Path],
) -> None:
    """The identity API refuses an unauthenticated caller before reading its body, and any
    body past its cap with 413, whether it declares its length or streams it."""
    served, _, _ = world
    big = b'{"workload": "' + b"x" * 100_000 + b'"}'

    async def streamed() -> Any:
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    async with httpx2.AsyncClient(base_url=served.base, timeout=30) as http:
        anonymous = await http.post("/identity/v1/workload-token", content=big)
        assert anonymous.status_code == 401 and "admin key" in anonymous.json()["error"]
        for body in (big, streamed()):
            made = await http.post("/identity/v1/workload-token", content=body, headers=served.admin_headers)
            assert made.status_code == 413 and "larger than 16384 bytes" in made.json()["error"], made.text
        token = (
            await http.post(
                "/identity/v1/workload-token",
                json={"workload": "w", "user_id": "u"},
                headers=served.admin_headers,
            )
        ).json()["workload_token"]
        forged = await http.post(
            "/identity/v1/resource-token", content=big, headers={"Authorization": "Bearer sb_wl_forged"}
        )
        assert forged.status_code == 401 and "not a workload token" in forged.json()["error"]
        too_big = await http.post(
            "/identity/v1/resource-token", content=streamed(), headers={"Authorization": f"Bearer {token}"}
        )
        assert too_big.status_code == 413
        in_body = await http.post("/identity/v1/resource-token", content=big)
        assert in_body.status_code == 413
        missing = await http.post("/identity/v1/resource-token", json={"provider": "idp"})
        assert missing.status_code == 401 and "Authorization: Bearer sb_wl_" in missing.json()["error"]
