"""Alembic environment for memory's tables: run on the connection memory hands over."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from memory._schema import VERSION_TABLE, metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,  # beside the gateway's own history, in the same database
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_run(context.config.attributes["connection"])
