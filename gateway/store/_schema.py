"""The store's tables (SQLAlchemy Core).

``migrations/`` creates them; these definitions serve the queries and Alembic's autogenerate.
Every configuration row carries its tenant; the primary keys make names unique per tenant
(and target names per gateway).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

meta = Table(
    "sb_meta",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("revision", BigInteger, nullable=False),
)

tenants = Table(
    "sb_tenants",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

gateways = Table(
    "sb_gateways",
    metadata,
    Column("tenant", String(63), nullable=False),
    Column("name", String(63), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "name"),
    ForeignKeyConstraint(["tenant"], ["sb_tenants.name"], ondelete="CASCADE"),
)

targets = Table(
    "sb_targets",
    metadata,
    Column("tenant", String(63), nullable=False),
    Column("gateway", String(63), nullable=False),
    Column("name", String(63), nullable=False),
    Column("position", Integer, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "gateway", "name"),
    ForeignKeyConstraint(
        ["tenant", "gateway"], ["sb_gateways.tenant", "sb_gateways.name"], ondelete="CASCADE"
    ),
)

api_keys = Table(
    "sb_api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("key_hash", String(128), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("gateway", String(63), nullable=True),
    Column("subject", String(255), nullable=True),
    Column("scopes", JSON, nullable=True),
    ForeignKeyConstraint(["tenant"], ["sb_tenants.name"], ondelete="CASCADE"),
)

tool_pins = Table(
    "sb_tool_pins",
    metadata,
    Column("tenant", String(63), nullable=False),
    Column("gateway", String(63), nullable=False),
    Column("target", String(63), nullable=False),
    Column("tool", String(255), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("approved_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "gateway", "target", "tool"),
    ForeignKeyConstraint(
        ["tenant", "gateway", "target"],
        ["sb_targets.tenant", "sb_targets.gateway", "sb_targets.name"],
        ondelete="CASCADE",
    ),
)

secrets = Table(
    "sb_secrets",
    metadata,
    Column("tenant", String(63), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("provider", String(127), nullable=False),
    Column("name", String(63), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("key_id", String(255), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "user_id", "provider", "name"),
)

secret_audit = Table(
    "sb_secret_audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("tenant", String(63), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("provider", String(127), nullable=False),
    Column("name", String(63), nullable=False),
    Column("action", String(16), nullable=False),
    Column("tool", String(255), nullable=True),
    Column("outcome", String(16), nullable=False),
    Index("sb_secret_audit_owner", "tenant", "user_id", "provider"),
)

call_audit = Table(
    "sb_call_audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("tenant", String(63), nullable=False),
    Column("gateway", String(63), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("client", String(255), nullable=True),
    Column("tool", String(255), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("arguments_digest", String(64), nullable=False),
    Column("outcome", String(24), nullable=False),
    Column("error", String(500), nullable=True),
    Column("duration_ms", Float, nullable=False),
    Column("approval", String(255), nullable=True),
    Index("sb_call_audit_tenant", "tenant", "gateway", "tool"),
)

approvals = Table(
    "sb_approvals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("gateway", String(63), nullable=False),
    Column("tool", String(255), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("arguments_digest", String(64), nullable=False),
    Column("arguments_preview", String(2000), nullable=False),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(255), nullable=True),
    Column("reason", String(500), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Index("sb_approvals_tenant_status", "tenant", "status"),
)

spans = Table(
    "sb_spans",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant", String(63), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_id", String(16), nullable=True),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("session", String(255), nullable=True),
    Column("gateway", String(63), nullable=True),
    Column("tool", String(255), nullable=True),
    Column("subject", String(255), nullable=True),
    Column("error", Boolean, nullable=False),
    Column("status_message", String(500), nullable=True),
    Column("attributes", Text, nullable=False),
    Column("children", Text, nullable=True),
    Index("sb_spans_session", "tenant", "session", "start_ns"),
    Index("sb_spans_trace", "tenant", "trace_id"),
    Index("sb_spans_start", "start_ns"),
)

aws_resources = Table(
    "sb_aws_resources",
    metadata,
    Column("tenant", String(63), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("resource_id", String(128), nullable=False),
    Column("attrs", JSON, nullable=False),
    Column("client_token", String(256), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "kind", "name"),
    Index("sb_aws_resources_id", "tenant", "kind", "resource_id", unique=True),
)

a2a_tasks = Table(
    "sb_a2a_tasks",
    metadata,
    Column("id", String(128), nullable=False),
    Column("tenant", String(63), nullable=False),
    Column("agent", String(255), nullable=False),  # "{gateway}/{agent}"
    Column("owner", String(512), nullable=False),
    Column("context_id", String(128), nullable=False),
    Column("state", Integer, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),  # the status timestamp; 0 when it has none
    Column("body", Text, nullable=False),  # the Task as A2A JSON
    PrimaryKeyConstraint("id"),
    Index("sb_a2a_tasks_owner", "tenant", "agent", "owner", "updated_ns"),
)

a2a_push = Table(
    "sb_a2a_push",
    metadata,
    Column("task_id", String(128), nullable=False),
    Column("config_id", String(128), nullable=False),
    Column("tenant", String(63), nullable=False),
    Column("owner", String(512), nullable=False),
    Column("body", Text, nullable=False),  # the config as A2A JSON, sealed (it may hold a credential)
    PrimaryKeyConstraint("task_id", "config_id"),
)
