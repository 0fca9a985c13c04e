"""Alembic environment for the store's migrations; async-aware.

`Store.open` runs the migrations itself and hands over its connection (the sync facade of an
async one, through ``run_sync``) in ``config.attributes["connection"]``. For development,
the ``alembic`` command works too: it builds an async engine from ``sqlalchemy.url`` or
``SWITCHBOARD_DATABASE_URL`` (``alembic -x`` is not needed), and ``--sql`` renders offline.
"""

from __future__ import annotations

import os

import anyio
import sqlalchemy as sa
from alembic import context

from gateway.store._engine import create_engine, normalize_url
from gateway.store._schema import metadata


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("SWITCHBOARD_DATABASE_URL")
    if not url:
        raise SystemExit("set sqlalchemy.url or SWITCHBOARD_DATABASE_URL to the database to migrate")
    return normalize_url(url)


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (shared := context.config.attributes.get("connection")) is not None:
    _run(shared)
else:
    anyio.run(_run_standalone)
