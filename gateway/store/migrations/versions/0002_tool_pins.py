"""Tool pins: the approved definition of each federated tool.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sb_tool_pins",
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("gateway", sa.String(63), nullable=False),
        sa.Column("target", sa.String(63), nullable=False),
        sa.Column("tool", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "gateway", "target", "tool"),
        sa.ForeignKeyConstraint(
            ["tenant", "gateway", "target"],
            ["sb_targets.tenant", "sb_targets.gateway", "sb_targets.name"],
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("sb_tool_pins")
