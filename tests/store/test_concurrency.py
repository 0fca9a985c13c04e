"""Two Store instances on one database stand in for two processes or replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from gateway.store import Change, GatewayDocument, Store

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def two_stores(url: str) -> AsyncIterator[tuple[Store, Store]]:
    one = await Store.open(url)
    try:
        two = await Store.open(url)
        try:
            yield one, two
        finally:
            await two.close()
    finally:
        await one.close()


async def test_concurrent_put_target_from_two_stores(store_url: str) -> None:
    async with two_stores(store_url) as (one, two):
        await one.put_gateway("default", "g", {})
        start = await one.revision()
        results: list[Change] = []

        async def writer(store: Store, prefix: str) -> None:
            for i in range(10):
                results.append(await store.put_target("default", "g", f"{prefix}{i}", {"i": i}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer, one, "a")
            tg.start_soon(writer, two, "b")
        assert results == ["created"] * 20
        stored = await two.list_targets("default", "g")
        assert len(stored) == 20
        assert sorted(t.position for t in stored) == list(range(20))  # each new target went last
        assert await one.revision() == await two.revision() == start + 20
        assert sorted(t.revision for t in stored) == list(range(start + 1, start + 21))


async def test_racing_to_create_the_same_items(store_url: str) -> None:
    async with two_stores(store_url) as (one, two):
        gateway_changes: list[Change] = []
        target_changes: list[Change] = []

        async def writer(store: Store) -> None:
            gateway_changes.append(await store.put_gateway("default", "g", {"same": True}))
            target_changes.append(await store.put_target("default", "g", "t", {"same": True}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer, one)
            tg.start_soon(writer, two)
        assert sorted(gateway_changes) == ["created", "unchanged"]
        assert sorted(target_changes) == ["created", "unchanged"]
        assert await one.revision() == 2


async def test_concurrent_apply_of_one_document(store_url: str) -> None:
    doc: list[GatewayDocument] = [("g", {}, [(f"t{i}", {"i": i}) for i in range(5)]), ("h", {}, [])]
    async with two_stores(store_url) as (one, two):
        results: list[list[Change]] = []

        async def applier(store: Store) -> None:
            results.append([change for *_, change in await store.apply("default", doc, prune=True)])

        async with anyio.create_task_group() as tg:
            tg.start_soon(applier, one)
            tg.start_soon(applier, two)
        assert sorted(results) == [["created"] * 7, ["unchanged"] * 7]
        assert await one.revision() == 1
        assert [(t.name, t.position) for t in await two.list_targets("default", "g")] == [
            (f"t{i}", i) for i in range(5)
        ]
