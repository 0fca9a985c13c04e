"""Every store test runs on SQLite (a file in tmp_path) and on PostgreSQL.

PostgreSQL comes from SWITCHBOARD_TEST_DATABASE_URL; without it those cases are skipped, or fail
when SWITCHBOARD_TEST_REQUIRE_SERVICES=1. Each PostgreSQL case starts with the store's tables
dropped, and holds an advisory lock meanwhile, so two test runs on one server take turns.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from gateway.store import Store, normalize_url

PG_URL = os.environ.get("SWITCHBOARD_TEST_DATABASE_URL")
REQUIRED = os.environ.get("SWITCHBOARD_TEST_REQUIRE_SERVICES") == "1"
STORE_TABLES = (
    "sb_a2a_push",
    "sb_a2a_tasks",
    "sb_aws_resources",
    "sb_spans",
    "sb_approvals",
    "sb_call_audit",
    "sb_secret_audit",
    "sb_secrets",
    "sb_tool_pins",
    "sb_api_keys",
    "sb_targets",
    "sb_gateways",
    "sb_tenants",
    "sb_meta",
    "alembic_version",
)
_TEST_LOCK = 7_341_002


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def postgres_url() -> str:
    """The test PostgreSQL URL; skips (or fails, when services are required) without one."""
    if not PG_URL:
        if REQUIRED:
            pytest.fail("SWITCHBOARD_TEST_REQUIRE_SERVICES=1 but SWITCHBOARD_TEST_DATABASE_URL is not set")
        pytest.skip("set SWITCHBOARD_TEST_DATABASE_URL to run the PostgreSQL store tests")
    return PG_URL


async def drop_store_tables(conn: AsyncConnection) -> None:
    """Leave the database as if the store had never been there."""
    cascade = " CASCADE" if conn.dialect.name == "postgresql" else ""
    for table in STORE_TABLES:
        await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}{cascade}"))


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database for one test."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    url = postgres_url()
    engine = create_async_engine(normalize_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _TEST_LOCK})
            await drop_store_tables(conn)
            await conn.commit()
            try:
                yield url
            finally:
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _TEST_LOCK})
                await conn.commit()
    finally:
        await engine.dispose()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A store opened on an empty database."""
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()
