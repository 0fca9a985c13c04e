from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store import Store, StoreError, normalize_url
from tests.store.conftest import drop_store_tables, postgres_url

pytestmark = pytest.mark.anyio

SUPPORTED = "sqlite+aiosqlite:///PATH or postgresql+asyncpg://"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/sb.db", "sqlite+aiosqlite:///data/sb.db"),
        ("sqlite+pysqlite:////abs/sb.db", "sqlite+aiosqlite:////abs/sb.db"),
        ("sqlite+aiosqlite:///sb.db", "sqlite+aiosqlite:///sb.db"),
        ("postgresql://u:p@db:5432/sb", "postgresql+asyncpg://u:p@db:5432/sb"),
        ("postgres://u@db/sb", "postgresql+asyncpg://u@db/sb"),
        ("postgresql+psycopg2://u@db/sb?sslmode=require", "postgresql+asyncpg://u@db/sb?ssl=require"),
        ("postgresql+asyncpg://u@db/sb", "postgresql+asyncpg://u@db/sb"),
    ],
)
def test_urls_are_rewritten_to_the_async_drivers(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root:hunter2@127.0.0.1/sb", r"unsupported database 'mysql' in mysql://root:\*\*\*@127"),
        ("not a url", "'not a url' is not a database URL"),
        ("", "'' is not a database URL"),
    ],
)
async def test_unsupported_urls_name_the_supported_ones(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as caught:
        await Store.open(url)
    assert SUPPORTED in str(caught.value) and "hunter2" not in str(caught.value)


async def test_an_unreachable_postgresql_names_the_url_without_its_password() -> None:
    with pytest.raises(StoreError) as caught:
        await Store.open("postgresql://switchboard:hunter2@127.0.0.1:1/sb")
    message = str(caught.value)
    assert message.startswith(
        "cannot connect to the store at postgresql+asyncpg://switchboard:***@127.0.0.1:1/sb"
    )
    assert "hunter2" not in message and "SWITCHBOARD_DATABASE_URL" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no driver traceback


async def test_a_sqlite_file_that_cannot_be_opened(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "sb.db"
    with pytest.raises(StoreError, match=f"Check that the directory {missing.parent} exists"):
        await Store.open(f"sqlite:///{missing}")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 512)
    with pytest.raises(StoreError, match="file is not a database"):
        await Store.open(f"sqlite:///{garbage}")


async def test_an_option_asyncpg_refuses() -> None:
    url = postgres_url()
    with pytest.raises(StoreError, match=r"the driver refused an option in the URL \(.*'bogus'"):
        await Store.open(f"{url}{'&' if '?' in url else '?'}bogus=1")


async def test_a_failing_database_gives_store_errors(store: Store) -> None:
    await store.put_gateway("default", "g", {})
    async with store._engine.begin() as conn:  # the tables vanish behind the store's back
        await drop_store_tables(conn)
    with pytest.raises(StoreError, match=r"could not list the gateways of tenant 'default': .*sb_gateways"):
        await store.list_gateways("default")
    with pytest.raises(StoreError, match=r"could not store gateway 'g'") as caught:
        await store.put_gateway("default", "g", {"x": 1})
    assert isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError)  # kept for the logs
