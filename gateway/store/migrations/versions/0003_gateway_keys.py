"""Gateway API keys: which gateway a key opens, for which subject, with which scopes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sb_api_keys", sa.Column("gateway", sa.String(63), nullable=True))
    op.add_column("sb_api_keys", sa.Column("subject", sa.String(255), nullable=True))
    op.add_column("sb_api_keys", sa.Column("scopes", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sb_api_keys") as batch:
        batch.drop_column("scopes")
        batch.drop_column("subject")
        batch.drop_column("gateway")
