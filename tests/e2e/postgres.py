"""A fresh database on the test PostgreSQL server, for tests that serve on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store import normalize_url
from tests.store.conftest import postgres_url


@asynccontextmanager
async def fresh_database(name: str) -> AsyncIterator[str]:
    """Database ``name``, made empty for the block and dropped after it; yields its URL
    (skips the test without SWITCHBOARD_TEST_DATABASE_URL)."""
    url = make_url(normalize_url(postgres_url()))
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await admin.dispose()
