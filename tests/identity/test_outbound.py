"""The Broker against a real issuer on loopback and a real vault (SQLite store)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest

from gateway.store import Store, StoreSecrets
from identity.outbound import (
    SERVICE,
    STATE_PURPOSE,
    Broker,
    ConsentRequired,
    CredentialError,
    ProviderSpec,
    from_preset,
    redis_locks,
)
from identity.vault import LocalKeyring, Owner, Vault
from tests.fixtures.oidc_server import Issuer
from tests.support.services import redis_url

pytestmark = pytest.mark.anyio
CALLBACK = "http://127.0.0.1:9/identity/oauth/callback"


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    b = Broker(Vault(LocalKeyring(tmp_path / "vault.keys"), StoreSecrets(store)), b"k" * 32, CALLBACK)
    yield b
    await b.aclose()
    await store.close()


def two_lo(issuer: Issuer, secret: str = "agent-secret") -> ProviderSpec:
    return ProviderSpec(
        "g/svc",
        "oauth2_client_credentials",
        secret=secret,
        client_id="agent",
        token_url=f"{issuer.url}/token",
        scopes=("read",),
        resource="https://api.example/",
    )


def three_lo(issuer: Issuer) -> ProviderSpec:
    return ProviderSpec(
        "g/idp",
        "oauth2_authorization_code",
        secret="agent-secret",
        client_id="agent",
        token_url=f"{issuer.url}/token",
        authorize_url=f"{issuer.url}/authorize",
        scopes=("openid",),
    )


async def test_client_credentials_are_fetched_once_and_replaced_when_refused(
    issuer: Issuer, broker: Broker
) -> None:
    first = await broker.secret("t", "alice", two_lo(issuer))
    assert await broker.secret("t", "bob", two_lo(issuer)) == first  # the gateway's own token: shared
    assert issuer.grants == {"client_credentials": 1}
    await broker.secret("t", "alice", two_lo(issuer), stale=first)  # refused upstream: fetch anew
    assert issuer.grants == {"client_credentials": 2}
    with pytest.raises(CredentialError, match="refused the token request \\(HTTP 401\\): invalid_client"):
        await broker.secret("t2", "alice", two_lo(issuer, secret="wrong"))


async def test_a_client_secret_kept_in_the_vault_signs_token_requests(issuer: Issuer, broker: Broker) -> None:
    """A tenant admin gives an OAuth client secret through the admin API (the vault), never by
    an env/file reference; it is bound to its tenant and wins over the configuration's."""
    spec = two_lo(issuer, secret="")
    with pytest.raises(CredentialError, match="invalid_client"):  # a public client: refused
        await broker.secret("t", "alice", spec)
    await broker.vault.put(Owner("t", SERVICE, spec.name, "client_secret"), "agent-secret")
    assert await broker.secret("t", "alice", spec)
    with pytest.raises(CredentialError, match="invalid_client"):  # another tenant's is not used
        await broker.secret("t2", "alice", spec)
    await broker.vault.put(Owner("t2", SERVICE, spec.name, "client_secret"), "agent-secret")
    assert await broker.secret("t2", "alice", two_lo(issuer, secret="wrong"))  # the vault's wins


async def test_consent_round_trip_binds_tokens_to_who_asked(issuer: Issuer, broker: Broker) -> None:
    idp = three_lo(issuer)
    with pytest.raises(ConsentRequired) as asked:
        await broker.secret("t", "alice", idp)
    link = urlsplit(asked.value.url)  # the gateway's start page (it signs the browser in first)
    assert f"{link.scheme}://{link.netloc}{link.path}" == "http://127.0.0.1:9/identity/oauth/start"
    state = parse_qs(link.query)["state"][0]
    assert broker.pending(state) == ("t", "alice", "g/idp")
    authorize = broker.authorize_url(idp, state)
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == [CALLBACK]
    assert query["state"] == [state]
    async with httpx2.AsyncClient() as browser:  # the user approves; the issuer redirects to our callback
        redirect = await browser.get(authorize + "&login_hint=alice")
    back = parse_qs(urlsplit(redirect.headers["location"]).query)
    await broker.complete({"g/idp": idp}, back["code"][0], back["state"][0])
    token = await broker.secret("t", "alice", idp)
    async with httpx2.AsyncClient() as http:
        me = await http.get(f"{issuer.url}/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["sub"] == "alice"
    with pytest.raises(ConsentRequired):  # bob has consented to nothing
        await broker.secret("t", "bob", idp)
    with pytest.raises(ConsentRequired):  # nor has alice in another tenant
        await broker.secret("t2", "alice", idp)


async def test_a_forged_or_late_state_is_refused(broker: Broker) -> None:
    with pytest.raises(CredentialError, match="not one this gateway made"):
        broker.pending("bm90LWEtc3RhdGU")
    late = broker.seal(
        {"t": "t", "u": "alice", "p": "g/idp", "v": "x", "exp": time.time() - 1}, STATE_PURPOSE
    )
    with pytest.raises(CredentialError, match="took too long"):
        broker.pending(late)
    fresh = {"t": "t", "u": "u", "p": "g/idp", "v": "x", "exp": time.time() + 60}
    other = Broker(broker.vault, b"o" * 32, CALLBACK)  # another deployment's key
    with pytest.raises(CredentialError, match="not one this gateway made"):
        other.pending(broker.seal(fresh, STATE_PURPOSE))
    with pytest.raises(CredentialError, match="not one this gateway made"):  # sealed for another use
        broker.pending(broker.seal(fresh, b"consent sign-in"))


async def test_a_sealed_token_opens_only_for_its_own_purpose_and_before_it_expires(broker: Broker) -> None:
    doc = {"t": "t", "g": "g", "u": "alice", "exp": time.time() + 60}
    sealed = broker.seal(doc, b"consent sign-in")
    assert broker.unseal(sealed, b"consent sign-in") == doc
    assert broker.unseal(sealed, STATE_PURPOSE) is None
    assert (
        broker.unseal(sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB"), b"consent sign-in") is None
    )
    assert (
        broker.unseal(broker.seal({**doc, "exp": time.time() - 1}, b"consent sign-in"), b"consent sign-in")
        is None
    )
    assert (
        broker.unseal(broker.seal({"u": "alice"}, b"consent sign-in"), b"consent sign-in") is None
    )  # no expiry
    assert broker.unseal("!!not base64!!", b"consent sign-in") is None


async def test_a_state_for_one_provider_does_not_authorize_another(issuer: Issuer, broker: Broker) -> None:
    idp = three_lo(issuer)
    with pytest.raises(ConsentRequired) as asked:
        await broker.secret("t", "alice", idp)
    state = parse_qs(urlsplit(asked.value.url).query)["state"][0]
    other = ProviderSpec(
        "g/other", "oauth2_authorization_code", client_id="agent", authorize_url=idp.authorize_url
    )
    with pytest.raises(CredentialError, match="not for credential provider 'g/other'"):
        broker.authorize_url(other, state)


async def test_a_refused_refresh_asks_for_consent_again(issuer: Issuer, broker: Broker) -> None:
    idp = three_lo(issuer)
    owner = Owner("t", "alice", "g/idp", "tokens")
    await broker.vault.put(owner, b'{"access_token": "old", "expires_at": 0, "refresh_token": "revoked"}')
    with pytest.raises(ConsentRequired):
        await broker.secret("t", "alice", idp)
    assert await broker.vault.get(owner) is None


async def test_slack_consent_gets_the_users_own_token(issuer: Issuer, broker: Broker) -> None:
    """Slack's OAuth v2: asked with `user_scope`, the token answer carries the user's token
    under `authed_user` (there is no top-level token to take instead)."""
    overrides = {"authorize_url": f"{issuer.url}/authorize", "token_url": f"{issuer.url}/token"}
    slack = from_preset(
        "g/slack",
        "slack",
        client_id="agent",
        secret="agent-secret",
        scopes=["search:read", "chat:write"],
        overrides=overrides,
    )
    with pytest.raises(ConsentRequired) as asked:
        await broker.secret("t", "alice", slack)
    authorize = broker.authorize_url(slack, parse_qs(urlsplit(asked.value.url).query)["state"][0])
    query = parse_qs(urlsplit(authorize).query)
    assert query["user_scope"] == ["search:read,chat:write"] and "scope" not in query
    async with httpx2.AsyncClient() as browser:
        redirect = await browser.get(authorize + "&login_hint=alice")
    back = parse_qs(urlsplit(redirect.headers["location"]).query)
    await broker.complete({"g/slack": slack}, back["code"][0], back["state"][0])
    token = await broker.secret("t", "alice", slack)
    async with httpx2.AsyncClient() as http:
        me = await http.get(f"{issuer.url}/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["sub"] == "alice"


def test_presets() -> None:
    slack = from_preset("g/slack", "slack", client_id="c", secret="s", scopes=["chat:write", "users:read"])
    assert slack.scope_separator == "," and slack.token_url == "https://slack.com/api/oauth.v2.access"
    google = from_preset("g/google", "google", client_id="c", secret=None, scopes=["gmail.send"])
    assert google.extra_authorize == {"access_type": "offline", "prompt": "consent"}
    microsoft = from_preset("g/ms", "microsoft", client_id="c", secret="s", scopes=["Mail.Send"])
    assert microsoft.scopes == ("Mail.Send", "offline_access")
    with pytest.raises(CredentialError, match="unknown preset 'okta'"):
        from_preset("g/x", "okta", client_id="c", secret=None)


async def test_two_replicas_refresh_a_credential_once(issuer: Issuer, tmp_path: Path) -> None:
    """Two brokers (two replicas) on one database, locking in Redis: 2 x 25 concurrent calls
    with an expired token make exactly one refresh request."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    keyring = LocalKeyring(tmp_path / "vault.keys")
    stores = [await Store.open(url), await Store.open(url)]
    locks = [redis_locks(redis_url()), redis_locks(redis_url())]
    brokers = [
        Broker(Vault(keyring, StoreSecrets(store)), b"k" * 32, CALLBACK, shared_locks=lock)
        for store, (lock, _) in zip(stores, locks, strict=True)
    ]
    idp = three_lo(issuer)
    tenant = f"t-{uuid.uuid4().hex[:8]}"  # fresh lock names in the shared Redis
    async with httpx2.AsyncClient() as http:  # alice consents once (through replica 0)
        try:
            await brokers[0].secret(tenant, "alice", idp)
        except ConsentRequired as asked:
            state = parse_qs(urlsplit(asked.url).query)["state"][0]
            redirect = await http.get(brokers[0].authorize_url(idp, state) + "&login_hint=alice")
        back = parse_qs(urlsplit(redirect.headers["location"]).query)
        await brokers[0].complete({"g/idp": idp}, back["code"][0], back["state"][0])
        stale = await brokers[1].secret(tenant, "alice", idp)
        await http.post(f"{issuer.url}/test/expire")
    before = issuer.grants.get("refresh_token", 0)
    got: list[str] = []

    async def refresh_via(broker: Broker) -> None:
        got.append(await broker.secret(tenant, "alice", idp, stale=stale))

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(refresh_via, brokers[i % 2])
    assert issuer.grants.get("refresh_token", 0) - before == 1
    assert len(set(got)) == 1 and len(got) == 50
    for broker, store, (_, close) in zip(brokers, stores, locks, strict=True):
        await broker.aclose()
        await close()
        await store.close()


async def test_a_tenants_token_endpoint_is_reached_only_at_a_public_address(
    issuer: Issuer, tmp_path: Path
) -> None:
    """The gateway gives the broker a checked client for tenants' token requests: a tenant's
    provider whose token URL resolves to the host (here: loopback) gets no request, the
    operator's does."""
    from gateway.egress import Reach

    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    checked = httpx2.AsyncClient(transport=Reach().transport())
    broker = Broker(
        Vault(LocalKeyring(tmp_path / "vault.keys"), StoreSecrets(store)),
        b"k" * 32,
        CALLBACK,
        tenant_http=checked,
    )
    try:
        with pytest.raises(CredentialError, match="private or reserved address"):
            await broker.secret("acme", "alice", two_lo(issuer))
        assert issuer.grants == {}
        assert await broker.secret("default", "alice", two_lo(issuer))  # the operator's tenant
        assert issuer.grants == {"client_credentials": 1}
    finally:
        await broker.aclose()
        await store.close()
