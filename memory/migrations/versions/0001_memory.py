"""Memory: memories, events, records, the change log the search indexes follow, extraction jobs.

Revision ID: m0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "m0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mem_changes",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("memory_id", sa.String(100), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
    )
    op.create_table(
        "mem_events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("memory_id", sa.String(100), nullable=False),
        sa.Column("actor_id", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(100), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("branch", sa.String(100), nullable=True),
        sa.Column("root_event_id", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("extract", sa.Boolean(), nullable=False),
        sa.Column("client_token", sa.String(100), nullable=True),
        sa.Column("expires", sa.Float(), nullable=False),
    )
    op.create_index("mem_events_expiry", "mem_events", ["expires"])
    op.create_index("mem_events_session", "mem_events", ["memory_id", "actor_id", "session_id", "ts"])
    op.create_table(
        "mem_jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("memory_id", sa.String(100), nullable=False),
        sa.Column("actor_id", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(100), nullable=False),
        sa.Column("strategy_id", sa.String(100), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("due", sa.Float(), nullable=False),
        sa.Column("lease", sa.Float(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
    )
    op.create_index("mem_jobs_due", "mem_jobs", ["status", "due"])
    op.create_index("mem_jobs_memory", "mem_jobs", ["memory_id", "created"])
    op.create_table(
        "mem_memories",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.UniqueConstraint("tenant", "name", name="mem_memories_name"),
    )
    op.create_table(
        "mem_records",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("memory_id", sa.String(100), nullable=False),
        sa.Column("strategy_id", sa.String(100), nullable=False),
        sa.Column("namespace", sa.String(1024), nullable=False),
        sa.Column("actor_id", sa.String(255), nullable=True),
        sa.Column("session_id", sa.String(100), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("embedder", sa.String(100), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=True),
    )
    op.create_index("mem_records_expiry", "mem_records", ["expires"])
    op.create_index("mem_records_namespace", "mem_records", ["memory_id", "namespace"])


def downgrade() -> None:
    op.drop_table("mem_records")
    op.drop_table("mem_memories")
    op.drop_table("mem_jobs")
    op.drop_table("mem_events")
    op.drop_table("mem_changes")
