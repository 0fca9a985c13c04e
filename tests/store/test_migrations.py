from __future__ import annotations

import anyio
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import gateway.store
from gateway.store import Store, StoreError, normalize_url
from gateway.store._schema import metadata

pytestmark = pytest.mark.anyio


def head() -> str:
    config = Config()
    config.set_main_option("script_location", str(gateway.store.__path__[0] + "/migrations"))
    revision = ScriptDirectory.from_config(config).get_current_head()
    assert revision is not None
    return revision


async def query(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(normalize_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(sa.text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_open_migrates_an_empty_database_to_head(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        assert await store.revision() == 0
        assert await store.list_gateways("default") == []
    finally:
        await store.close()
    assert await query(store_url, "SELECT version_num FROM alembic_version") == [(head(),)]
    assert await query(store_url, "SELECT name FROM sb_tenants") == [("default",)]


async def test_reopening_is_a_no_op(store_url: str) -> None:
    first = await Store.open(store_url)
    try:
        await first.put_gateway("default", "g", {"description": "one"})
        await first.put_target("default", "g", "t", {"kind": "function"})
        revision = await first.revision()
    finally:
        await first.close()
    second = await Store.open(store_url)
    try:
        assert await second.revision() == revision
        assert [g.name for g in await second.list_gateways("default")] == ["g"]
        assert [t.name for t in await second.list_targets("default", "g")] == ["t"]
    finally:
        await second.close()
    assert await query(store_url, "SELECT version_num FROM alembic_version") == [(head(),)]


async def test_replicas_starting_together_on_an_empty_database_migrate_once(store_url: str) -> None:
    opened: list[Store] = []

    async def start() -> None:
        opened.append(await Store.open(store_url))

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(start)
        assert len(opened) == 3
        assert [await s.revision() for s in opened] == [0, 0, 0]
    finally:
        for s in opened:
            await s.close()


async def test_a_database_from_a_newer_version_is_refused(store_url: str) -> None:
    await (await Store.open(store_url)).close()
    await query(store_url, "UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(StoreError, match="set up by a newer Switchboard") as caught:
        await Store.open(store_url)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_writes_are_durable(store: Store, store_url: str) -> None:
    engine = store._engine  # the store's own connections are the ones whose settings matter
    async with engine.connect() as conn:
        if store_url.startswith("sqlite"):
            pragmas = [
                (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys")
            ]
            assert pragmas == ["wal", 2, 1]  # synchronous 2 = FULL
        else:
            assert (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar() == "on"


async def test_the_migrations_make_the_tables_the_store_queries(store: Store) -> None:
    def differences(conn: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with store._engine.connect() as conn:
        assert await conn.run_sync(differences) == []
