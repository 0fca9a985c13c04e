"""Session binding (identity.sessions) against a real issuer on loopback and a real vault, and the
callback route that serves it (identity.consent): the code waits for the application's
confirmation, is exchanged once, and only ever for the user who asked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.types import Scope

from gateway.store import Store, StoreSecrets
from identity.consent import ProvidersOf, UserOf, consent_routes
from identity.outbound import Broker, ConsentRequired, CredentialError, ProviderSpec, discover
from identity.sessions import URI_PREFIX, Session, SessionBinding, SessionError
from identity.vault import LocalKeyring, Vault
from tests.fixtures.oidc_server import Issuer

pytestmark = pytest.mark.anyio
CALLBACK = "http://127.0.0.1:9/identity/oauth/callback"
BACK = "https://app.example/back?from=agent"


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    b = Broker(Vault(LocalKeyring(tmp_path / "vault.keys"), StoreSecrets(store)), b"k" * 32, CALLBACK)
    yield b
    await b.aclose()
    await store.close()


def spec(issuer: Issuer, variant: str = "v1") -> ProviderSpec:
    return ProviderSpec(
        "~/idp",
        "oauth2_authorization_code",
        secret="agent-secret",
        client_id="agent",
        token_url=f"{issuer.url}/token",
        authorize_url=f"{issuer.url}/authorize",
        scopes=("openid",),
        variant=variant,
    )


async def authorize(issuer: Issuer, link: str) -> tuple[str, str]:
    """What the provider sends back to our callback for ``link``: (code, state)."""
    async with httpx2.AsyncClient() as http:
        answer = await http.get(link)
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    return query["code"][0], query["state"][0]


async def test_the_code_waits_for_the_application_and_becomes_the_users_tokens(
    issuer: Issuer, broker: Broker
) -> None:
    sessions, provider = SessionBinding(broker), spec(issuer)
    session = await sessions.start("t", "alice", provider, return_url=BACK, custom_state="s1")
    uri = sessions.uri(session)
    assert uri.startswith(URI_PREFIX) and sessions.open(uri) == session
    link = sessions.link(session, provider, {"login_hint": "alice"})
    assert "code_challenge_method=S256" in link and "login_hint=alice" in link
    with pytest.raises(SessionError) as early:
        await sessions.bind(session, "alice", provider)
    assert early.value.problem == "pending"

    code, state = await authorize(issuer, link)
    assert sessions.owns(state)
    back = await sessions.returned(state, code=code, error=None)
    assert back.provider == "idp" and back.redirect is not None
    target = urlsplit(back.redirect)
    query = parse_qs(target.query)
    assert target.path == "/back" and query["from"] == ["agent"] and query["state"] == ["s1"]
    assert sessions.open(query["session_id"][0]) == session
    assert issuer.grants == {}  # nothing exchanged before the application confirms
    assert await sessions.look(session) == ("AUTHORIZED", None)

    await sessions.bind(session, "alice", provider)
    assert issuer.grants == {"authorization_code": 1}
    assert await sessions.look(session) is None  # over: its token is the user's now
    token = await broker.secret("t", "alice", provider)
    with pytest.raises(ConsentRequired):  # the same provider asked with other scopes: not this token
        await broker.secret("t", "alice", replace(provider, variant="v2"))
    with pytest.raises(SessionError) as twice:
        await sessions.bind(session, "alice", provider)
    assert twice.value.problem == "unknown"
    assert await broker.secret("t", "alice", provider) == token


async def test_confirmed_for_another_user_the_session_fails_and_nothing_is_stored(
    issuer: Issuer, broker: Broker
) -> None:
    sessions, provider = SessionBinding(broker), spec(issuer)
    session = await sessions.start("t", "alice", provider)
    code, state = await authorize(issuer, sessions.link(session, provider, {"login_hint": "bob"}))
    back = await sessions.returned(state, code=code, error=None)
    assert back.redirect is None  # no return URL: the page tells the user to go back
    with pytest.raises(SessionError) as refused:
        await sessions.bind(session, "bob", provider)
    assert refused.value.problem == "denied"
    status = await sessions.look(session)
    assert status is not None and status[0] == "FAILED"
    with pytest.raises(SessionError) as after:
        await sessions.bind(session, "alice", provider)  # the code is gone with the session
    assert after.value.problem == "failed"
    assert issuer.grants == {}
    with pytest.raises(ConsentRequired):
        await broker.secret("t", "alice", provider)
    again = await sessions.start("t", "alice", provider)  # a failed session is not reused
    assert again.nonce != session.nonce


async def test_an_open_session_is_reused_unless_a_fresh_one_is_forced(issuer: Issuer, broker: Broker) -> None:
    sessions, provider = SessionBinding(broker), spec(issuer)
    first = await sessions.start("t", "alice", provider)
    old_link = sessions.link(first, provider, {"login_hint": "alice"})
    assert await sessions.start("t", "alice", provider) == first
    assert await sessions.start("t", "alice", replace(provider, variant="v2")) != first
    forced = await sessions.start("t", "alice", provider, fresh=True)
    assert forced.nonce != first.nonce and await sessions.look(first) is None
    code, state = await authorize(issuer, old_link)
    with pytest.raises(SessionError, match="replaced by a newer one"):
        await sessions.returned(state, code=code, error=None)
    refused = await sessions.returned(
        (await authorize(issuer, sessions.link(forced, provider, {"login_hint": "alice"})))[1],
        code=None,
        error="access_denied",
    )
    assert refused.error == "access_denied"
    assert await sessions.look(forced) == ("FAILED", "idp did not grant access: access_denied")


async def test_forged_uris_and_reserved_parameters_are_refused(issuer: Issuer, broker: Broker) -> None:
    sessions, provider = SessionBinding(broker), spec(issuer)
    session = await sessions.start("t", "alice", provider)
    for uri in (f"{URI_PREFIX}made-up", sessions.uri(session).removeprefix(URI_PREFIX), f"{URI_PREFIX}x.y"):
        with pytest.raises(SessionError) as unknown:
            sessions.open(uri)
        assert unknown.value.problem == "unknown"
    state = parse_qs(urlsplit(sessions.link(session, provider)).query)["state"][0]
    with pytest.raises(SessionError):
        sessions.open(URI_PREFIX + state)  # a state is sealed for another purpose
    with pytest.raises(CredentialError, match="redirect_uri"):
        sessions.link(session, provider, {"redirect_uri": "https://evil.example/"})
    with pytest.raises(CredentialError, match="credential provider 'idp'"):
        sessions.link(session, replace(provider, name="~/other"))
    consent = parse_qs(urlsplit(broker.consent_url("t", "alice", provider)).query)["state"][0]
    assert not sessions.owns(consent) and sessions.owns(state)


@dataclass
class Parts:
    """What the consent routes are given by the process that serves them."""

    broker: Broker

    @property
    def providers(self) -> ProvidersOf:
        def none(tenant: str, gateway: str) -> Mapping[str, ProviderSpec] | None:
            return None

        return none

    @property
    def user_of(self) -> UserOf:
        async def nobody(tenant: str, gateway: str, credential: str, scope: Scope) -> str | None:
            return None

        return nobody


async def test_the_callback_sends_the_browser_on_to_the_application(issuer: Issuer, broker: Broker) -> None:
    sessions, provider = SessionBinding(broker), spec(issuer)
    routes = Starlette(routes=consent_routes(lambda: Parts(broker)))
    session = await sessions.start("t", "alice", provider, return_url=BACK)
    link = sessions.link(session, provider, {"login_hint": "alice"})
    code, state = await authorize(issuer, link)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(routes), base_url="http://sb") as browser:
        start = await browser.get("/identity/oauth/start", params={"state": state})
        assert start.status_code == 400 and "agent" in start.text  # no sign-in page for a session
        back = await browser.get("/identity/oauth/callback", params={"code": code, "state": state})
        assert back.status_code == 303 and back.headers["location"].startswith(BACK + "&session_id=")
        other = await sessions.start("t", "bob", provider)
        denied = await browser.get(
            "/identity/oauth/callback",
            params={
                "error": "access_denied",
                "state": parse_qs(urlsplit(sessions.link(other, provider)).query)["state"][0],
            },
        )
        assert denied.status_code == 400 and "access_denied" in denied.text
    assert await sessions.look(session) == ("AUTHORIZED", None)
    status = await sessions.look(Session("t", "bob", provider.name, provider.variant, other.nonce))
    assert status is not None and status[0] == "FAILED"


async def test_metadata_is_taken_only_from_the_issuer_it_names(issuer: Issuer) -> None:
    async with httpx2.AsyncClient() as http:
        url = f"{issuer.url}/.well-known/openid-configuration"
        assert await discover(http, url) == {
            "issuer": issuer.url,
            "authorization_endpoint": f"{issuer.url}/authorize",
            "token_endpoint": f"{issuer.url}/token",
        }
        issuer.advertised = "https://elsewhere.example"
        with pytest.raises(CredentialError, match="names issuer 'https://elsewhere"):
            await discover(http, url)
        with pytest.raises(CredentialError, match="cannot be read"):
            await discover(http, f"{issuer.url}/nothing/.well-known/openid-configuration")
