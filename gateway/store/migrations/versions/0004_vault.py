"""The vault: sealed secrets per owner, and the append-only log of their use.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sb_secrets",
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(127), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "user_id", "provider", "name"),
    )
    op.create_table(
        "sb_secret_audit",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.String(63), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(127), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("tool", sa.String(255), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
    )
    op.create_index("sb_secret_audit_owner", "sb_secret_audit", ["tenant", "user_id", "provider"])


def downgrade() -> None:
    op.drop_index("sb_secret_audit_owner", "sb_secret_audit")
    op.drop_table("sb_secret_audit")
    op.drop_table("sb_secrets")
