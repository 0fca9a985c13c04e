from __future__ import annotations

import anyio
import pytest

from gateway.store import Store, StoreError

pytestmark = pytest.mark.anyio


async def test_migrates_an_empty_database_and_reopening_is_a_no_op(store_url: str) -> None:
    first = await Store.open(store_url)
    await first.put_gateway("default", "g", {"description": "one"})
    await first.close()
    second = await Store.open(store_url)
    try:
        assert [g.name for g in await second.list_gateways("default")] == ["g"]
        assert await second.revision() == 1
    finally:
        await second.close()


async def test_gateway_and_target_crud(store: Store) -> None:
    assert await store.put_gateway("default", "g", {"description": "a"}) == "created"
    assert await store.put_gateway("default", "g", {"description": "a"}) == "unchanged"
    assert await store.put_gateway("default", "g", {"description": "b"}) == "updated"
    assert (await store.get_gateway("default", "g")).spec == {"description": "b"}  # type: ignore[union-attr]
    assert await store.put_target("default", "g", "t1", {"kind": "function"}) == "created"
    assert await store.put_target("default", "g", "t0", {"kind": "http"}) == "created"
    assert [t.name for t in await store.list_targets("default", "g")] == ["t1", "t0"]  # insertion order
    assert await store.put_target("default", "g", "t1", {"kind": "function"}) == "unchanged"
    assert await store.delete_target("default", "g", "t1") is True
    assert await store.delete_target("default", "g", "t1") is False
    assert await store.delete_gateway("default", "g") is True
    assert await store.get_gateway("default", "g") is None
    assert await store.list_targets("default", "g") == []


async def test_put_target_on_missing_gateway(store: Store) -> None:
    with pytest.raises(KeyError, match="no gateway named 'nope'"):
        await store.put_target("default", "nope", "t", {})


async def test_tenants_are_isolated(store: Store) -> None:
    await store.put_gateway("a", "shared-name", {"description": "A's"})
    await store.put_target("a", "shared-name", "t", {"secret": "A"})
    await store.add_api_key("a", "kid-a", "hash-a", "admin")
    assert await store.list_gateways("b") == []
    assert await store.get_gateway("b", "shared-name") is None
    assert await store.get_target("b", "shared-name", "t") is None
    assert await store.delete_gateway("b", "shared-name") is False
    assert await store.delete_target("b", "shared-name", "t") is False
    assert await store.count_api_keys("b", "admin") == 0
    await store.put_gateway("b", "shared-name", {"description": "B's"})
    assert (await store.get_gateway("a", "shared-name")).spec == {"description": "A's"}  # type: ignore[union-attr]
    assert await store.find_api_key("kid-a") == ("a", "hash-a", "admin")


async def test_apply_is_idempotent_and_reports_changes(store: Store) -> None:
    doc = [("g", {"description": "x"}, [("t1", {"k": 1}), ("t2", {"k": 2})])]
    assert await store.apply("default", doc) == [
        ("gateway", "g", "created"),
        ("target", "g/t1", "created"),
        ("target", "g/t2", "created"),
    ]
    rev = await store.revision()
    assert {c for *_, c in await store.apply("default", doc)} == {"unchanged"}
    assert await store.revision() == rev
    changed = await store.apply("default", [("g", {"description": "x"}, [("t2", {"k": 3}), ("t3", {})])])
    assert ("target", "g/t1", "deleted") in changed
    assert ("target", "g/t2", "updated") in changed
    assert ("target", "g/t3", "created") in changed
    assert [t.name for t in await store.list_targets("default", "g")] == ["t2", "t3"]


async def test_apply_with_prune_deletes_unlisted_gateways(store: Store) -> None:
    await store.apply("default", [("a", {}, []), ("b", {}, [])])
    assert ("gateway", "b", "deleted") not in await store.apply("default", [("a", {}, [])])
    assert [g.name for g in await store.list_gateways("default")] == ["a", "b"]
    assert ("gateway", "b", "deleted") in await store.apply("default", [("a", {}, [])], prune=True)
    assert [g.name for g in await store.list_gateways("default")] == ["a"]


async def test_revision_moves_only_on_real_changes(store: Store) -> None:
    start = await store.revision()
    await store.put_gateway("default", "g", {})
    await store.put_gateway("default", "g", {})
    await store.delete_target("default", "g", "missing")
    assert await store.revision() == start + 1


async def test_concurrent_writers_on_one_database(store_url: str) -> None:
    one, two = await Store.open(store_url), await Store.open(store_url)
    try:
        await one.put_gateway("default", "g", {})
        start = await one.revision()

        async def writer(s: Store, prefix: str) -> None:
            for i in range(10):
                await s.put_target("default", "g", f"{prefix}{i}", {"i": i})

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer, one, "a")
            tg.start_soon(writer, two, "b")
        assert len(await two.list_targets("default", "g")) == 20
        assert await one.revision() == start + 20
    finally:
        await one.close()
        await two.close()


async def test_bad_urls_give_helpful_errors(tmp_path: object) -> None:
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        await Store.open("mysql://root@127.0.0.1/test")
    with pytest.raises(
        StoreError, match=r"cannot open the store at postgresql\+asyncpg://u:\*\*\*@127.0.0.1:1/x"
    ):
        await Store.open("postgresql://u:secret@127.0.0.1:1/x")
