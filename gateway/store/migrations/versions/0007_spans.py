"""The embedded trace store: finished spans, kept for the configured retention.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sb_spans",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.String(16), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("session", sa.String(255), nullable=True),
        sa.Column("gateway", sa.String(63), nullable=True),
        sa.Column("tool", sa.String(255), nullable=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("error", sa.Boolean, nullable=False),
        sa.Column("status_message", sa.String(500), nullable=True),
        sa.Column("attributes", sa.Text, nullable=False),
    )
    op.create_index("sb_spans_session", "sb_spans", ["tenant", "session", "start_ns"])
    op.create_index("sb_spans_trace", "sb_spans", ["tenant", "trace_id"])
    op.create_index("sb_spans_start", "sb_spans", ["start_ns"])


def downgrade() -> None:
    op.drop_table("sb_spans")
