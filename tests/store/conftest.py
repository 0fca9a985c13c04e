from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store import Store, normalize_url

PG_URL = os.environ.get("SWITCHBOARD_TEST_DATABASE_URL")
REQUIRED = os.environ.get("SWITCHBOARD_TEST_REQUIRE_SERVICES") == "1"


async def reset_postgres(url: str) -> None:
    """Drop the store's tables so each test starts from an empty database."""
    engine = create_async_engine(normalize_url(url))
    async with engine.begin() as conn:
        for table in ("sb_api_keys", "sb_targets", "sb_gateways", "sb_tenants", "sb_meta", "alembic_version"):
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    await engine.dispose()


def postgres_url() -> str:
    if not PG_URL:
        if REQUIRED:
            pytest.fail("SWITCHBOARD_TEST_DATABASE_URL is not set but SWITCHBOARD_TEST_REQUIRE_SERVICES=1")
        pytest.skip("set SWITCHBOARD_TEST_DATABASE_URL to run the PostgreSQL store tests")
    return PG_URL


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    url = postgres_url()
    await reset_postgres(url)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = await Store.open(store_url)
    try:
        yield s
    finally:
        await s.close()


OpenStore = Callable[[], Store]
