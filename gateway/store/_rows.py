"""The store's records (gateways, targets, pins) and what turns rows into them: keys,
times in UTC, canonical JSON, the revision counter's reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store._schema import gateways, meta, targets, tenants

Change = Literal["created", "updated", "unchanged", "deleted"]
"""What a write did to one gateway or target."""
GatewayDocument = tuple[str, dict[str, Any], Sequence[tuple[str, dict[str, Any]]]]
"""One gateway for `Store.apply`: (name, spec, [(target name, target spec), ...] in order)."""


@dataclass(frozen=True, slots=True)
class PinRecord:
    """An approved tool definition of one target."""

    tool: str
    digest: str
    definition: dict[str, Any]
    approved_at: datetime


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """A stored gateway.

    Attributes:
        tenant: The tenant it belongs to.
        name: Unique within the tenant.
        spec: Its JSON document (its targets are stored separately).
        revision: The store revision that last changed it.
        updated_at: When it last changed (UTC).
    """

    tenant: str
    name: str
    spec: dict[str, Any]
    revision: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """A stored target of a gateway.

    Attributes:
        tenant: The tenant it belongs to.
        gateway: The gateway it belongs to.
        name: Unique within the gateway.
        position: Its place in the gateway's list (targets are listed by position, then name).
        spec: Its JSON document.
        revision: The store revision that last changed it.
        updated_at: When it last changed (UTC).
    """

    tenant: str
    gateway: str
    name: str
    position: int
    spec: dict[str, Any]
    revision: int
    updated_at: datetime


async def _revision(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.select(meta.c.revision).where(meta.c.id == 1))).scalar_one())


async def _tenant_exists(conn: AsyncConnection, tenant: str) -> bool:
    return (await conn.execute(sa.select(tenants.c.name).where(tenants.c.name == tenant))).first() is not None


def _gateway_key(tenant: str, name: str) -> tuple[sa.ColumnElement[bool], ...]:
    return gateways.c.tenant == tenant, gateways.c.name == name


def _target_key(tenant: str, gateway: str, name: str) -> tuple[sa.ColumnElement[bool], ...]:
    return targets.c.tenant == tenant, targets.c.gateway == gateway, targets.c.name == name


def _check_unique(documents: Sequence[GatewayDocument]) -> None:
    seen: set[str] = set()
    for name, _, target_docs in documents:
        if name in seen:
            raise ValueError(f"gateway {name!r} is listed twice; list each gateway once")
        seen.add(name)
        names: set[str] = set()
        for target, _ in target_docs:
            if target in names:
                raise ValueError(f"target {target!r} is listed twice in gateway {name!r}; list each once")
            names.add(target)


def _canonical(doc: Any, what: str = "a stored document") -> str:
    """The document as canonical JSON, so equal documents compare equal whatever their key order."""
    try:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the spec of {what} is not a JSON document: {exc}") from None


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite keeps no offset; the store writes UTC only.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _key(row: RowMapping) -> dict[str, Any]:
    return {
        "key_id": str(row["key_id"]),
        "tenant": str(row["tenant"]),
        "gateway": row["gateway"],
        "subject": row["subject"],
        "scopes": list(row["scopes"] or []),
        "created_at": _utc(row["created_at"]).isoformat(),
        "hash": str(row["key_hash"]),
    }


def _gateway(row: RowMapping) -> GatewayRecord:
    return GatewayRecord(
        tenant=row["tenant"],
        name=row["name"],
        spec=dict(row["spec"]),
        revision=int(row["revision"]),
        updated_at=_utc(row["updated_at"]),
    )


def _target(row: RowMapping) -> TargetRecord:
    return TargetRecord(
        tenant=row["tenant"],
        gateway=row["gateway"],
        name=row["name"],
        position=int(row["position"]),
        spec=dict(row["spec"]),
        revision=int(row["revision"]),
        updated_at=_utc(row["updated_at"]),
    )
