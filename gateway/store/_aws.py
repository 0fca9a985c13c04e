"""AgentCore's side of a tenant's resources: the identifier a gateway, target, credential provider
or workload identity has through the AgentCore API, when it was made, the client token of its
create, and the attributes AgentCore keeps that the configuration has no place for (ADR 0031).

These rows sit beside the configuration and never move its revision: the configuration is what
is served; a row here only names it for AgentCore's clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from gateway.store._engine import StoreError
from gateway.store._rows import _now, _utc
from gateway.store._schema import aws_resources
from gateway.store._store import Store


@dataclass(frozen=True, slots=True)
class AwsResource:
    """One resource as AgentCore's clients know it.

    Attributes:
        tenant: The tenant it belongs to.
        kind: ``gateway``, ``target``, ``api_key_provider``, ``oauth2_provider``, ``workload``.
        name: Its name in the configuration (a target's is ``{gateway}/{target}``).
        resource_id: Its AgentCore identifier.
        attrs: What AgentCore keeps of it beyond the configuration.
        client_token: The idempotency token of the request that made it, if any.
        created_at: When AgentCore's clients first saw it (UTC).
        updated_at: When its attributes last changed (UTC).
    """

    tenant: str
    kind: str
    name: str
    resource_id: str
    attrs: dict[str, Any]
    client_token: str | None
    created_at: datetime
    updated_at: datetime


def _resource(row: Any) -> AwsResource:
    return AwsResource(
        str(row.tenant),
        str(row.kind),
        str(row.name),
        str(row.resource_id),
        dict(row.attrs or {}),
        row.client_token,
        _utc(row.created_at),
        _utc(row.updated_at),
    )


def _key(tenant: str, kind: str, name: str) -> tuple[sa.ColumnElement[bool], ...]:
    c = aws_resources.c
    return c.tenant == tenant, c.kind == kind, c.name == name


class StoreAws:
    """AgentCore identifiers and attributes of a tenant's resources."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, tenant: str, kind: str, name: str) -> AwsResource | None:
        async with self.store._read("read an AgentCore resource") as conn:
            row = (await conn.execute(sa.select(aws_resources).where(*_key(tenant, kind, name)))).first()
        return _resource(row) if row is not None else None

    async def by_id(self, tenant: str, kind: str, resource_id: str) -> AwsResource | None:
        c = aws_resources.c
        where = (c.tenant == tenant, c.kind == kind, c.resource_id == resource_id)
        query = sa.select(aws_resources).where(*where)
        async with self.store._read("read an AgentCore resource") as conn:
            row = (await conn.execute(query)).first()
        return _resource(row) if row is not None else None

    async def by_client_token(self, tenant: str, kind: str, token: str) -> AwsResource | None:
        c = aws_resources.c
        query = sa.select(aws_resources).where(c.tenant == tenant, c.kind == kind, c.client_token == token)
        async with self.store._read("read an AgentCore resource") as conn:
            row = (await conn.execute(query)).first()
        return _resource(row) if row is not None else None

    async def list(self, tenant: str, kind: str) -> list[AwsResource]:
        c = aws_resources.c
        query = sa.select(aws_resources).where(c.tenant == tenant, c.kind == kind).order_by(c.name)
        async with self.store._read("list AgentCore resources") as conn:
            return [_resource(r) for r in await conn.execute(query)]

    async def ensure(
        self,
        tenant: str,
        kind: str,
        name: str,
        new_id: Callable[[], str],
        attrs: dict[str, Any] | None = None,
        client_token: str | None = None,
    ) -> AwsResource:
        """The resource's row, made (with ``new_id()``) if it has none; two replicas making it at
        once end with the same row."""
        found = await self.get(tenant, kind, name)
        if found is not None:
            return found
        now = _now()
        try:
            async with self.store._transaction(self.store._writer, "record an AgentCore resource") as conn:
                await conn.execute(
                    sa.insert(aws_resources).values(
                        tenant=tenant,
                        kind=kind,
                        name=name,
                        resource_id=new_id(),
                        attrs=attrs or {},
                        client_token=client_token,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            # made meanwhile by another request: that row stands
        found = await self.get(tenant, kind, name)
        if found is None:
            raise LookupError(f"the AgentCore record of {kind} {name!r} vanished while it was made")
        return found

    async def update(self, tenant: str, kind: str, name: str, attrs: dict[str, Any]) -> None:
        """Replace the resource's attributes."""
        async with self.store._transaction(self.store._writer, "update an AgentCore resource") as conn:
            change = sa.update(aws_resources).where(*_key(tenant, kind, name))
            await conn.execute(change.values(attrs=attrs, updated_at=_now()))

    async def delete(self, tenant: str, kind: str, name: str) -> None:
        async with self.store._transaction(self.store._writer, "forget an AgentCore resource") as conn:
            await conn.execute(sa.delete(aws_resources).where(*_key(tenant, kind, name)))

    async def delete_under(self, tenant: str, kind: str, prefix: str) -> None:
        """Forget every resource of ``kind`` whose name starts with ``prefix`` (a gateway's targets)."""
        c = aws_resources.c
        condition = sa.and_(c.tenant == tenant, c.kind == kind, c.name.startswith(prefix, autoescape=True))
        async with self.store._transaction(self.store._writer, "forget AgentCore resources") as conn:
            await conn.execute(sa.delete(aws_resources).where(condition))
