"""Initial store: tenants, gateways, targets, API keys, revision counter.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sb_meta",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO sb_meta (id, revision) VALUES (1, 0)")
    op.create_table(
        "sb_tenants",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sb_gateways",
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "name"),
        sa.ForeignKeyConstraint(["tenant"], ["sb_tenants.name"], ondelete="CASCADE"),
    )
    op.create_table(
        "sb_targets",
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("gateway", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "gateway", "name"),
        sa.ForeignKeyConstraint(
            ["tenant", "gateway"], ["sb_gateways.tenant", "sb_gateways.name"], ondelete="CASCADE"
        ),
    )
    op.create_table(
        "sb_api_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant"], ["sb_tenants.name"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    for table in ("sb_api_keys", "sb_targets", "sb_gateways", "sb_tenants", "sb_meta"):
        op.drop_table(table)
