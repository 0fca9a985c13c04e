"""Memory's tables, and the migrations that make them (memory's own Alembic history).

Memory keeps its rows in the database it is given (the gateway hands it the store's engine), in
tables of its own (``mem_*``) with their own version table, so it migrates and runs without
knowing the gateway's schema, and can run as its own service on a database of its own.

Times are seconds since the epoch (floats). ``mem_changes`` is the log each process follows to
keep its in-memory search index in step with records written by other replicas (ADR 0045).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncConnection

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "mem_alembic_version"
_PG_MIGRATION_LOCK = 7_341_021

metadata = sa.MetaData()

memories = sa.Table(
    "mem_memories",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("tenant", sa.String(63), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the memory's settings and strategies, JSON
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.UniqueConstraint("tenant", "name", name="mem_memories_name"),
)

events = sa.Table(
    "mem_events",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("memory_id", sa.String(100), nullable=False),
    sa.Column("actor_id", sa.String(255), nullable=False),
    sa.Column("session_id", sa.String(100), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),  # the event's own timestamp (the caller's)
    sa.Column("seq", sa.BigInteger, nullable=False),  # order of arrival within the session
    sa.Column("branch", sa.String(100), nullable=True),
    sa.Column("root_event_id", sa.String(64), nullable=True),  # where the branch forks
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("extract", sa.Boolean, nullable=False),  # False: short-term only (SKIP)
    sa.Column("client_token", sa.String(100), nullable=True),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Index("mem_events_session", "memory_id", "actor_id", "session_id", "ts"),
    sa.Index("mem_events_expiry", "expires"),
)

records = sa.Table(
    "mem_records",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("memory_id", sa.String(100), nullable=False),
    sa.Column("strategy_id", sa.String(100), nullable=False),
    sa.Column("namespace", sa.String(1024), nullable=False),
    sa.Column("actor_id", sa.String(255), nullable=True),  # whose record it is (None: shared)
    sa.Column("session_id", sa.String(100), nullable=True),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("sources", sa.Text, nullable=False),  # the events (and job) it was made from, JSON
    sa.Column("vector", sa.LargeBinary, nullable=False),  # float32, L2-normalised
    sa.Column("embedder", sa.String(100), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=True),
    sa.Index("mem_records_namespace", "memory_id", "namespace"),
    sa.Index("mem_records_expiry", "expires"),
)

changes = sa.Table(
    "mem_changes",
    metadata,
    sa.Column(
        "seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("memory_id", sa.String(100), nullable=False),
    sa.Column("record_id", sa.String(64), nullable=False),
)

jobs = sa.Table(
    "mem_jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("memory_id", sa.String(100), nullable=False),
    sa.Column("actor_id", sa.String(255), nullable=False),
    sa.Column("session_id", sa.String(100), nullable=False),
    sa.Column("strategy_id", sa.String(100), nullable=True),  # None: every strategy of the memory
    sa.Column("status", sa.String(16), nullable=False),  # PENDING, RUNNING, COMPLETED, FAILED
    sa.Column("events", sa.Text, nullable=False),  # the event ids it covers, JSON
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("due", sa.Float, nullable=False),  # not started before (the batching window)
    sa.Column("lease", sa.Float, nullable=False),  # a RUNNING job whose lease ran out is taken again
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Index("mem_jobs_due", "status", "due"),
    sa.Index("mem_jobs_memory", "memory_id", "created"),
)


async def migrate(conn: AsyncConnection) -> None:
    """Bring memory's tables to the newest revision, in the caller's (write) transaction."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    await conn.run_sync(_upgrade)


def _upgrade(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
