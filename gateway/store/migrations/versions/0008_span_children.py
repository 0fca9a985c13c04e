"""Spans under a request's span kept in its row (one row a call, not one a span).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sb_spans", sa.Column("children", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sb_spans") as batch:
        batch.drop_column("children")
