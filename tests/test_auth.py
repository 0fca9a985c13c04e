"""The edge's Authenticator on its own: loopback-only `auth: none`, query tokens, tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.auth import KEY_PREFIX, Authenticator
from gateway.config import ApiKeyAuth, NoAuth
from gateway.store import Store
from identity.inbound import Refused, new_key

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
