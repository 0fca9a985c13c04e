"""The edge's Authenticator on its own: loopback-only `auth: none`, query tokens, tenants, and
what a remembered verification is worth (only under the same `auth`, only until a revocation
that every process sharing Redis hears of)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.auth import KEY_PREFIX, Authenticator, Revocations
from gateway.config import ApiKeyAuth, NoAuth
from gateway.store import Store
from identity.inbound import InsufficientScope, Refused, new_key
from tests.support.services import redis_url

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    yield s
    await s.close()


def scope(client: str, headers: dict[str, str] | None = None, query: bytes = b"") -> dict[str, object]:
    return {
        "type": "http",
        "path": "/mcp",
        "client": (client, 40000),
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }


async def test_no_auth_serves_loopback_only(store: Store) -> None:
    auth = Authenticator(store)
    assert (await auth.principal("default", "default", NoAuth(), scope("127.0.0.1"))).subject == "anonymous"
    assert (await auth.principal("default", "default", NoAuth(), scope("::1"))).subject == "anonymous"
    with pytest.raises(Refused, match="serves only clients on this machine"):
        await auth.principal("default", "default", NoAuth(), scope("10.1.2.3"))


async def test_query_tokens_are_refused_before_anything_else(store: Store) -> None:
    auth = Authenticator(store)
    with pytest.raises(Refused, match="tokens in the URL are refused"):
        await auth.principal("default", "default", NoAuth(), scope("127.0.0.1", query=b"access_token=abc"))


async def test_a_key_of_another_tenant_opens_nothing_here(store: Store) -> None:
    await store.put_gateway("b", "g", {})
    key_id, key, digest = new_key(KEY_PREFIX)
    await store.add_api_key("b", key_id, digest, "gateway", gateway="g", subject="bob")
    auth = Authenticator(store)
    bob = await auth.principal("b", "g", ApiKeyAuth(kind="api_key"), scope("10.0.0.9", {"X-Api-Key": key}))
    assert (bob.tenant, bob.subject) == ("b", "bob")
    with pytest.raises(Refused, match="another tenant"):
        await auth.principal("a", "g", ApiKeyAuth(kind="api_key"), scope("10.0.0.9", {"X-Api-Key": key}))


async def add_key(store: Store, scopes: list[str] | None = None) -> tuple[str, str]:
    await store.put_gateway("default", "g", {})
    key_id, key, digest = new_key(KEY_PREFIX)
    await store.add_api_key(
        "default", key_id, digest, "gateway", gateway="g", subject="ci", scopes=scopes or ()
    )
    return key_id, key


async def test_a_stricter_auth_applies_at_once_to_a_remembered_key(store: Store) -> None:
    _, key = await add_key(store, ["read"])
    auth = Authenticator(store)
    lax, strict = ApiKeyAuth(kind="api_key"), ApiKeyAuth(kind="api_key", scopes=["deploy"])
    assert (await auth.principal("default", "g", lax, scope("10.0.0.9", {"X-Api-Key": key}))).subject == "ci"
    with pytest.raises(InsufficientScope, match="lacks scope deploy"):  # not the remembered answer
        await auth.principal("default", "g", strict, scope("10.0.0.9", {"X-Api-Key": key}))


async def test_a_key_revoked_in_one_process_is_refused_by_another_sharing_redis(store: Store) -> None:
    key_id, key = await add_key(store)
    url = redis_url()
    here, there = (
        Authenticator(store, revocations=Revocations(url)),
        Authenticator(store, revocations=Revocations(url)),
    )
    keyed = ApiKeyAuth(kind="api_key")
    try:
        assert (await there.principal("default", "g", keyed, scope("10.0.0.9", {"X-Api-Key": key}))).subject
        assert await store.revoke_api_key("default", key_id)
        await here.revoked()  # what the admin API does in the process that revoked it
        with pytest.raises(Refused, match="unknown or revoked"):
            await there.principal("default", "g", keyed, scope("10.0.0.9", {"X-Api-Key": key}))
    finally:
        await here.aclose()
        await there.aclose()


async def test_remembered_keys_are_not_trusted_while_redis_cannot_be_read(store: Store) -> None:
    key_id, key = await add_key(store)
    auth = Authenticator(store, revocations=Revocations("redis://127.0.0.1:1/0"))  # nothing listens
    keyed = ApiKeyAuth(kind="api_key")
    try:
        assert (await auth.principal("default", "g", keyed, scope("10.0.0.9", {"X-Api-Key": key}))).subject
        assert await store.revoke_api_key("default", key_id)  # (and Redis could not be told)
        with pytest.raises(Refused, match="unknown or revoked"):
            await auth.principal("default", "g", keyed, scope("10.0.0.9", {"X-Api-Key": key}))
    finally:
        await auth.aclose()


async def test_a_jwt_verifier_is_its_tenants_and_its_audiences(store: Store) -> None:
    """Without a tenant claim, a tenant's JWT gateway takes tokens as that tenant's (not the
    operator's); and a verifier made for one resource (one Host) never judges another's."""
    from gateway.config import JwtAuth

    auth = Authenticator(store)
    jwt = JwtAuth(kind="jwt", jwks_url="https://idp.example/jwks", issuers=["https://idp.example"])
    try:
        one = auth.verifier("acme", "g", jwt, "https://gw.example/tenants/acme/gateways/g/mcp")
        assert one.default_tenant == "acme"
        other = auth.verifier("acme", "g", jwt, "https://evil.example/tenants/acme/gateways/g/mcp")
        assert other is not one and list(other.audiences) == [
            "https://evil.example/tenants/acme/gateways/g/mcp"
        ]
        again = auth.verifier("acme", "g", jwt, "https://gw.example/tenants/acme/gateways/g/mcp")
        assert list(again.audiences) == ["https://gw.example/tenants/acme/gateways/g/mcp"]
    finally:
        await auth.aclose()
