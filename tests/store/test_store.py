from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, timedelta

import pytest

from gateway.store import GatewayRecord, Store, TargetRecord

pytestmark = pytest.mark.anyio


async def gateway(store: Store, tenant: str, name: str) -> GatewayRecord:
    found = await store.get_gateway(tenant, name)
    assert found is not None
    return found


async def target(store: Store, tenant: str, gw: str, name: str) -> TargetRecord:
    found = await store.get_target(tenant, gw, name)
    assert found is not None
    return found


async def test_gateway_crud(store: Store) -> None:
    assert (
        await store.put_gateway("default", "g", {"description": "a", "auth": {"kind": "none"}}) == "created"
    )
    created = await gateway(store, "default", "g")
    assert created.tenant == "default" and created.name == "g" and created.revision == await store.revision()
    assert created.updated_at.utcoffset() == timedelta(0) and created.updated_at.tzinfo is UTC
    # equal as JSON, whatever the key order: unchanged, nothing written
    assert (
        await store.put_gateway("default", "g", {"auth": {"kind": "none"}, "description": "a"}) == "unchanged"
    )
    assert await gateway(store, "default", "g") == created
    assert await store.put_gateway("default", "g", {"description": "b"}) == "updated"
    updated = await gateway(store, "default", "g")
    assert updated.spec == {"description": "b"} and updated.revision == created.revision + 1
    assert updated.updated_at >= created.updated_at
    await store.put_gateway("default", "a", {})
    assert [g.name for g in await store.list_gateways("default")] == ["a", "g"]
    assert await store.delete_gateway("default", "g") is True
    assert await store.delete_gateway("default", "g") is False
    assert await store.get_gateway("default", "g") is None
    assert [g.name for g in await store.list_gateways("default")] == ["a"]


async def test_deleting_a_gateway_deletes_its_targets(store: Store) -> None:
    await store.put_gateway("default", "g", {})
    await store.put_target("default", "g", "t", {"kind": "function"})
    assert await store.delete_gateway("default", "g") is True
    assert await store.list_targets("default", "g") == []
    await store.put_gateway("default", "g", {})
    assert await store.list_targets("default", "g") == []
    assert await store.get_target("default", "g", "t") is None


async def test_target_crud(store: Store) -> None:
    await store.put_gateway("default", "g", {})
    assert await store.put_target("default", "g", "t", {"kind": "function", "x": [1, 2]}) == "created"
    created = await target(store, "default", "g", "t")
    assert (created.tenant, created.gateway, created.name, created.position) == ("default", "g", "t", 0)
    assert created.spec == {"kind": "function", "x": [1, 2]} and created.updated_at.tzinfo is UTC
    assert await store.put_target("default", "g", "t", {"x": [1, 2], "kind": "function"}) == "unchanged"
    assert await store.put_target("default", "g", "t", {"kind": "function", "x": [2, 1]}) == "updated"
    assert (await target(store, "default", "g", "t")).revision == created.revision + 1
    assert await store.delete_target("default", "g", "t") is True
    assert await store.delete_target("default", "g", "t") is False
    assert await store.get_target("default", "g", "t") is None
    assert await store.get_gateway("default", "g") is not None  # the gateway stays


async def test_targets_are_ordered_by_position_then_name(store: Store) -> None:
    await store.put_gateway("default", "g", {})
    for name in ("zulu", "alpha", "mike"):  # no position: each goes last
        await store.put_target("default", "g", name, {})
    assert [(t.name, t.position) for t in await store.list_targets("default", "g")] == [
        ("zulu", 0),
        ("alpha", 1),
        ("mike", 2),
    ]
    assert await store.put_target("default", "g", "mike", {}, position=-1) == "updated"  # moving is a change
    assert await store.put_target("default", "g", "bravo", {}, position=1) == "created"  # ties: by name
    assert await store.put_target("default", "g", "zulu", {"new": True}) == "updated"  # keeps its place
    assert [t.name for t in await store.list_targets("default", "g")] == ["mike", "zulu", "alpha", "bravo"]
    assert await store.put_target("default", "g", "last", {}) == "created"
    assert (await target(store, "default", "g", "last")).position == 2


async def test_put_target_on_a_missing_gateway(store: Store) -> None:
    before = await store.revision()
    with pytest.raises(KeyError, match="no gateway named 'nope' in tenant 'default'; create the gateway"):
        await store.put_target("default", "nope", "t", {})
    assert await store.list_targets("default", "nope") == []
    assert await store.revision() == before


async def test_specs_must_be_json(store: Store) -> None:
    with pytest.raises(ValueError, match="the spec of gateway 'g' is not a JSON document"):
        await store.put_gateway("default", "g", {"when": object()})
    with pytest.raises(ValueError, match="is not a JSON document"):
        await store.put_gateway("default", "g", {"limit": float("nan")})
    assert await store.get_gateway("default", "g") is None


async def test_tenants_are_isolated(store: Store) -> None:
    await store.put_gateway("a", "shared", {"description": "A's"})
    await store.put_target("a", "shared", "t", {"secret": "A"})
    await store.add_api_key("a", "kid-a", "hash-a", "admin")
    # B sees nothing of A's
    assert await store.list_gateways("b") == []
    assert await store.get_gateway("b", "shared") is None
    assert await store.list_targets("b", "shared") == []
    assert await store.get_target("b", "shared", "t") is None
    assert await store.count_api_keys("b", "admin") == 0
    # ...cannot add to, change or delete it
    with pytest.raises(KeyError):
        await store.put_target("b", "shared", "t", {"secret": "B"})
    assert await store.delete_target("b", "shared", "t") is False
    assert await store.delete_gateway("b", "shared") is False
    assert await store.apply("b", [], prune=True) == []
    # and the same names in B are B's own
    assert await store.put_gateway("b", "shared", {"description": "B's"}) == "created"
    assert await store.put_target("b", "shared", "t", {"secret": "B"}) == "created"
    assert await store.delete_target("b", "shared", "t") is True
    assert await store.delete_gateway("b", "shared") is True
    assert (await gateway(store, "a", "shared")).spec == {"description": "A's"}
    assert (await target(store, "a", "shared", "t")).spec == {"secret": "A"}
    assert [g.tenant for g in await store.list_gateways("a")] == ["a"]
    assert await store.count_api_keys("a", "admin") == 1
    assert await store.find_api_key("kid-a") == ("a", "hash-a", "admin")  # the key id tells the tenant


async def test_api_keys(store: Store) -> None:
    assert await store.find_api_key("kid-1") is None
    assert await store.count_api_keys("default", "admin") == 0
    await store.add_api_key("default", "kid-1", "hash-1", "admin")
    await store.add_api_key("default", "kid-2", "hash-2", "admin")
    await store.add_api_key("default", "kid-3", "hash-3", "agent")
    assert await store.find_api_key("kid-2") == ("default", "hash-2", "admin")
    assert await store.count_api_keys("default", "admin") == 2
    assert await store.count_api_keys("default", "agent") == 1
    with pytest.raises(ValueError, match="an API key with id 'kid-1' exists already"):
        await store.add_api_key("other", "kid-1", "hash-x", "admin")
    assert await store.find_api_key("kid-1") == ("default", "hash-1", "admin")


async def test_ensure_tenant_is_idempotent(store: Store) -> None:
    before = await store.revision()
    await store.ensure_tenant("acme")
    await store.ensure_tenant("acme")
    assert await store.revision() == before  # an empty tenant is indistinguishable from none
    assert await store.list_gateways("acme") == []


async def test_revision_moves_only_on_real_changes(store: Store) -> None:
    async def moved(action: Awaitable[object]) -> int:
        before = await store.revision()
        await action
        return await store.revision() - before

    assert await moved(store.put_gateway("default", "g", {})) == 1
    assert await moved(store.put_gateway("default", "g", {})) == 0
    assert await moved(store.put_gateway("default", "g", {"x": 1})) == 1
    assert await moved(store.put_target("default", "g", "t", {})) == 1
    assert await moved(store.put_target("default", "g", "t", {})) == 0
    assert await moved(store.put_target("default", "g", "t", {}, position=0)) == 0
    assert await moved(store.put_target("default", "g", "t", {}, position=5)) == 1
    assert await moved(store.delete_target("default", "g", "missing")) == 0
    assert await moved(store.delete_gateway("default", "missing")) == 0
    assert await moved(store.add_api_key("default", "kid", "hash", "admin")) == 1
    assert await moved(store.find_api_key("kid")) == 0
    assert await moved(store.delete_target("default", "g", "t")) == 1
    assert await moved(store.delete_gateway("default", "g")) == 1
