"""AgentCore's identifiers and attributes of a tenant's resources (gateways, targets, credential
providers, workload identities), kept beside the configuration (ADR 0031).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sb_aws_resources",
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("resource_id", sa.String(128), nullable=False),
        sa.Column("attrs", sa.JSON, nullable=False),
        sa.Column("client_token", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "kind", "name"),
    )
    op.create_index("sb_aws_resources_id", "sb_aws_resources", ["tenant", "kind", "resource_id"], unique=True)


def downgrade() -> None:
    op.drop_index("sb_aws_resources_id", "sb_aws_resources")
    op.drop_table("sb_aws_resources")
