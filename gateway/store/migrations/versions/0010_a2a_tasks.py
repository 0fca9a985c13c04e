"""A2A tasks served by the gateway's A2A front, and their push notification configs (ADR 0037).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sb_a2a_tasks",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("agent", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(512), nullable=False),
        sa.Column("context_id", sa.String(128), nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("sb_a2a_tasks_owner", "sb_a2a_tasks", ["tenant", "agent", "owner", "updated_ns"])
    op.create_table(
        "sb_a2a_push",
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("config_id", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("owner", sa.String(512), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("task_id", "config_id"),
    )


def downgrade() -> None:
    op.drop_table("sb_a2a_push")
    op.drop_index("sb_a2a_tasks_owner", "sb_a2a_tasks")
    op.drop_table("sb_a2a_tasks")
