"""Session binding (identity.sessions) against a real issuer on loopback and a real vault, and the
callback route that serves it (identity.consent): the code waits for the application's
confirmation (which only the browser that brought the code back carries), is exchanged once, and
only ever for the user who asked; one code per session, and a failed session stays failed. Also
the deadline and size cap of fetches from authorization servers (identity.outbound.fetch)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Scope

from gateway.store import Store, StoreSecrets
from identity.consent import ProvidersOf, UserOf, consent_routes
from identity.outbound import Broker, ConsentRequired, CredentialError, ProviderSpec, discover
from identity.sessions import URI_PREFIX, Confirmation, Session, SessionBinding, SessionError
from identity.vault import LocalKeyring, Vault
from tests.fixtures.oidc_server import Issuer
from tests.support.servers import serve_app

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


def state_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["state"][0]


def confirmation_in(redirect: str | None) -> str:
    """The ``session_id`` the browser takes to the application's return URL."""
    assert redirect is not None
    return parse_qs(urlsplit(redirect).query)["session_id"][0]


def sub(token: str) -> str:
    part = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["sub"])


async def test_the_code_waits_for_the_application_and_becomes_the_users_tokens(
    issuer: Issuer, broker: Broker
) -> None:
    sessions, provider = SessionBinding(broker), spec(issuer)
    session = await sessions.start("t", "alice", provider, return_url=BACK, custom_state="s1")
    uri = sessions.uri(session)
    assert uri.startswith(URI_PREFIX) and sessions.open(uri) == session
    link = sessions.link(session, provider, {"login_hint": "alice"})
    assert "code_challenge_method=S256" in link and "login_hint=alice" in link
    with pytest.raises(SessionError) as early:  # the agent's session URI confirms nothing
        sessions.confirmation(uri)
    assert early.value.problem == "unconfirmed"

    code, state = await authorize(issuer, link)
    assert sessions.owns(state)
    back = await sessions.returned(state, code=code, error=None)
    assert back.provider == "idp" and back.redirect is not None
    target = urlsplit(back.redirect)
    query = parse_qs(target.query)
    assert target.path == "/back" and query["from"] == ["agent"] and query["state"] == ["s1"]
    confirmation = sessions.confirmation(query["session_id"][0])
    assert confirmation.session == session and query["session_id"][0] != uri
    with pytest.raises(SessionError):  # a confirmation is no session URI either
        sessions.open(query["session_id"][0])
    assert issuer.grants == {}  # nothing exchanged before the application confirms
    assert await sessions.look(session) == ("AUTHORIZED", None)

    await sessions.bind(confirmation, "alice", provider)
    assert issuer.grants == {"authorization_code": 1}
    assert await sessions.look(session) is None  # over: its token is the user's now
    token = await broker.secret("t", "alice", provider)
    with pytest.raises(ConsentRequired):  # the same provider asked with other scopes: not this token
        await broker.secret("t", "alice", replace(provider, variant="v2"))
    with pytest.raises(SessionError) as twice:  # used up
        await sessions.bind(confirmation, "alice", provider)
    assert twice.value.problem == "unknown"
    assert await broker.secret("t", "alice", provider) == token


async def test_confirmed_for_another_user_the_session_fails_and_nothing_is_stored(
    issuer: Issuer, broker: Broker
) -> None:
    sessions, provider = SessionBinding(broker), spec(issuer)
    session = await sessions.start("t", "alice", provider, return_url=BACK)
    code, state = await authorize(issuer, sessions.link(session, provider, {"login_hint": "bob"}))
    back = await sessions.returned(state, code=code, error=None)
    confirmation = sessions.confirmation(confirmation_in(back.redirect))  # in bob's browser
    with pytest.raises(SessionError) as refused:
        await sessions.bind(confirmation, "bob", provider)
    assert refused.value.problem == "denied"
    status = await sessions.look(session)
    assert status is not None and status[0] == "FAILED"
    with pytest.raises(SessionError) as after:
        await sessions.bind(confirmation, "alice", provider)  # the code is gone with the session
    assert after.value.problem == "failed"
    assert issuer.grants == {}
    with pytest.raises(ConsentRequired):
        await broker.secret("t", "alice", provider)
    again = await sessions.start("t", "alice", provider, return_url=BACK)  # a failed one is not reused
    assert again.nonce != session.nonce


async def test_an_open_session_is_reused_unless_a_fresh_one_is_forced(issuer: Issuer, broker: Broker) -> None:
    sessions, provider = SessionBinding(broker), spec(issuer)
    first = await sessions.start("t", "alice", provider, return_url=BACK)
    old_link = sessions.link(first, provider, {"login_hint": "alice"})
    assert await sessions.start("t", "alice", provider, return_url=BACK) == first
    assert await sessions.start("t", "alice", replace(provider, variant="v2"), return_url=BACK) != first
    forced = await sessions.start("t", "alice", provider, fresh=True, return_url=BACK)
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
    session = await sessions.start("t", "alice", provider, return_url=BACK)
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
    with pytest.raises(CredentialError, match="return URL"):
        await sessions.start("t", "alice", provider, return_url="")


async def test_a_second_callback_cannot_replace_the_code_awaiting_confirmation(
    issuer: Issuer, broker: Broker
) -> None:
    """Mallory holds Alice's link (forwarded, logged): her callback after Alice's is refused."""
    sessions, provider = SessionBinding(broker), spec(issuer)
    session = await sessions.start("t", "alice", provider, return_url=BACK)
    link = sessions.link(session, provider)
    code_a, state = await authorize(issuer, link + "&login_hint=alice")
    alice_back = await sessions.returned(state, code=code_a, error=None)
    code_m, state_m = await authorize(issuer, link + "&login_hint=mallory")
    assert state_m == state
    with pytest.raises(SessionError) as refused:
        await sessions.returned(state_m, code=code_m, error=None)
    assert refused.value.problem == "answered"
    with pytest.raises(SessionError):  # nor can a refusal fail the session awaiting confirmation
        await sessions.returned(state_m, code=None, error="access_denied")
    assert await sessions.look(session) == ("AUTHORIZED", None)
    await sessions.bind(sessions.confirmation(confirmation_in(alice_back.redirect)), "alice", provider)
    assert sub(await broker.secret("t", "alice", provider)) == "alice"


async def test_a_failed_session_stays_failed(issuer: Issuer, broker: Broker) -> None:
    sessions, provider = SessionBinding(broker), spec(issuer)
    session = await sessions.start("t", "alice", provider, return_url=BACK)
    link = sessions.link(session, provider)
    code, state = await authorize(issuer, link + "&login_hint=bob")
    back = await sessions.returned(state, code=code, error=None)
    with pytest.raises(SessionError):
        await sessions.bind(sessions.confirmation(confirmation_in(back.redirect)), "bob", provider)
    code2, state2 = await authorize(issuer, link + "&login_hint=bob")
    with pytest.raises(SessionError) as refused:  # a replayed callback does not revive it
        await sessions.returned(state2, code=code2, error=None)
    assert refused.value.problem == "answered"
    status = await sessions.look(session)
    assert status is not None and status[0] == "FAILED"
    # refused by the provider: failed too, and no later callback revives it
    other = await sessions.start("t", "carol", provider, return_url=BACK)
    other_link = sessions.link(other, provider)
    await sessions.returned(state_of(other_link), code=None, error="access_denied")
    code3, state3 = await authorize(issuer, other_link + "&login_hint=carol")
    with pytest.raises(SessionError, match="answered already"):
        await sessions.returned(state3, code=code3, error=None)


async def test_only_the_confirmation_from_the_returning_browser_completes_a_session(
    issuer: Issuer, broker: Broker
) -> None:
    """Bob (who asked) cannot confirm Victor's authorization of Bob's forwarded link: the agent's
    session URI confirms nothing, a guessed confirmation neither, and his own garbage callback's
    confirmation only fails his session (for good)."""
    sessions, provider = SessionBinding(broker), spec(issuer)
    session = await sessions.start("t", "bob", provider, return_url=BACK)
    link = sessions.link(session, provider)
    code_v, state_v = await authorize(issuer, link + "&login_hint=victor")
    await sessions.returned(state_v, code=code_v, error=None)  # in Victor's browser
    with pytest.raises(SessionError) as polling:
        sessions.confirmation(sessions.uri(session))
    assert polling.value.problem == "unconfirmed"
    with pytest.raises(SessionError) as guessed:
        await sessions.bind(Confirmation(session, "guess", "digest"), "bob", provider)
    assert guessed.value.problem == "unconfirmed"
    assert issuer.grants == {} and await sessions.look(session) == ("AUTHORIZED", None)

    # Bob answers his own link with garbage first: he gets a confirmation, for his garbage only.
    mine = await sessions.start("t", "bob", replace(provider, variant="v2"), return_url=BACK)
    mine_link = sessions.link(mine, replace(provider, variant="v2"))
    back = await sessions.returned(state_of(mine_link), code="garbage", error=None)
    with pytest.raises(SessionError) as failed:
        await sessions.bind(sessions.confirmation(confirmation_in(back.redirect)), "bob", provider)
    assert failed.value.problem == "failed"
    code_v2, state_v2 = await authorize(issuer, mine_link + "&login_hint=victor")
    with pytest.raises(SessionError):  # Victor's answer does not bring it back
        await sessions.returned(state_v2, code=code_v2, error=None)
    with pytest.raises(SessionError):
        await sessions.bind(
            sessions.confirmation(confirmation_in(back.redirect)), "bob", replace(provider, variant="v2")
        )
    with pytest.raises(ConsentRequired):
        await broker.secret("t", "bob", replace(provider, variant="v2"))


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
        again = await browser.get("/identity/oauth/callback", params={"code": "other", "state": state})
        assert again.status_code == 400 and "location" not in again.headers
        assert "answered already" in again.text and "session_id" not in again.text
        other = await sessions.start("t", "bob", provider, return_url=BACK)
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


@pytest.fixture
def slow() -> Iterator[str]:
    """An authorization server on loopback that drips its answers (a byte every 50 ms, for 10 s)
    or answers too much."""

    async def drip(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b'{"issuer": "'
            for _ in range(200):
                await anyio.sleep(0.05)
                yield b"a"

        return StreamingResponse(body(), media_type="application/json")

    async def huge(request: Request) -> Response:
        return Response(b'{"a": "' + b"x" * (2 << 20) + b'"}', media_type="application/json")

    app = Starlette(
        routes=[
            Route("/.well-known/openid-configuration", drip),
            Route("/token", drip, methods=["POST"]),
            Route("/huge/.well-known/openid-configuration", huge),
            Route("/huge/token", huge, methods=["POST"]),
        ]
    )
    with serve_app(app) as url:
        yield url


async def test_a_dripping_or_endless_authorization_server_is_refused_in_time(
    slow: str, broker: Broker
) -> None:
    async with httpx2.AsyncClient() as http:
        started = time.monotonic()
        with pytest.raises(CredentialError, match=r"within 0.5 s"):
            await discover(http, f"{slow}/.well-known/openid-configuration", seconds=0.5)
        assert time.monotonic() - started < 3
        with pytest.raises(CredentialError, match="more than"):
            await discover(http, f"{slow}/huge/.well-known/openid-configuration")
    broker.fetch_seconds = 0.5
    provider = ProviderSpec(
        "~/slow", "oauth2_client_credentials", secret="s", client_id="c", token_url=f"{slow}/token"
    )
    started = time.monotonic()
    with pytest.raises(CredentialError, match=r"token endpoint of '~/slow' failed: .*within 0.5 s"):
        await broker.secret("t", "*", provider)
    assert time.monotonic() - started < 3
    with pytest.raises(CredentialError, match="more than"):
        await broker.secret("t", "*", replace(provider, token_url=f"{slow}/huge/token"))
