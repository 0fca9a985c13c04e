"""One write transaction of the store, holding the writers' lock (see ``_store``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store._rows import (
    Change,
    _canonical,
    _gateway_key,
    _now,
    _target_key,
    _tenant_exists,
)
from gateway.store._schema import gateways, meta, targets, tenants, tool_pins


class _Writer:
    """One write transaction, holding the writers' lock; moves the revision at most once."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._revision: int | None = None

    async def changed(self) -> int:
        """Note that this transaction changes something; returns the revision it commits as."""
        if self._revision is None:
            result = await self.conn.execute(
                sa.update(meta)
                .where(meta.c.id == 1)
                .values(revision=meta.c.revision + 1)
                .returning(meta.c.revision)
            )
            self._revision = int(result.scalar_one())
        return self._revision

    async def ensure_tenant(self, tenant: str) -> None:
        if not await _tenant_exists(self.conn, tenant):
            await self.conn.execute(sa.insert(tenants).values(name=tenant, created_at=_now()))

    async def gateway_names(self, tenant: str) -> list[str]:
        rows = await self.conn.execute(
            sa.select(gateways.c.name).where(gateways.c.tenant == tenant).order_by(gateways.c.name)
        )
        return [str(name) for name in rows.scalars()]

    async def target_names(self, tenant: str, gateway: str) -> list[str]:
        rows = await self.conn.execute(
            sa.select(targets.c.name)
            .where(targets.c.tenant == tenant, targets.c.gateway == gateway)
            .order_by(targets.c.position, targets.c.name)
        )
        return [str(name) for name in rows.scalars()]

    async def put_gateway(self, tenant: str, name: str, spec: dict[str, Any]) -> Change:
        canonical = _canonical(spec, f"gateway {name!r}")
        row = (await self.conn.execute(sa.select(gateways.c.spec).where(*_gateway_key(tenant, name)))).first()
        if row is not None and _canonical(row.spec) == canonical:
            return "unchanged"
        values = {"spec": spec, "revision": await self.changed(), "updated_at": _now()}
        if row is None:
            await self.ensure_tenant(tenant)
            await self.conn.execute(sa.insert(gateways).values(tenant=tenant, name=name, **values))
            return "created"
        await self.conn.execute(sa.update(gateways).where(*_gateway_key(tenant, name)).values(**values))
        return "updated"

    async def delete_gateway(self, tenant: str, name: str) -> list[str] | None:
        """Delete a gateway and its targets; returns the targets' names, or None if it was not there."""
        names = await self.target_names(tenant, name)
        await self.conn.execute(
            sa.delete(tool_pins).where(tool_pins.c.tenant == tenant, tool_pins.c.gateway == name)
        )
        await self.conn.execute(
            sa.delete(targets).where(targets.c.tenant == tenant, targets.c.gateway == name)
        )
        result = await self.conn.execute(sa.delete(gateways).where(*_gateway_key(tenant, name)))
        if not result.rowcount:
            return None
        await self.changed()
        return names

    async def put_target(
        self, tenant: str, gateway: str, name: str, spec: dict[str, Any], position: int | None
    ) -> Change:
        canonical = _canonical(spec, f"target {gateway}/{name}")
        parent = await self.conn.execute(sa.select(gateways.c.name).where(*_gateway_key(tenant, gateway)))
        if parent.first() is None:
            raise KeyError(
                f"no gateway named {gateway!r} in tenant {tenant!r}; create the gateway before adding "
                f"target {name!r} to it"
            )
        query = sa.select(targets.c.spec, targets.c.position).where(*_target_key(tenant, gateway, name))
        row = (await self.conn.execute(query)).first()
        if position is None:
            position = int(row.position) if row is not None else await self._next_position(tenant, gateway)
        if row is not None and row.position == position and _canonical(row.spec) == canonical:
            return "unchanged"
        values = {"spec": spec, "position": position, "revision": await self.changed(), "updated_at": _now()}
        if row is None:
            await self.conn.execute(
                sa.insert(targets).values(tenant=tenant, gateway=gateway, name=name, **values)
            )
            return "created"
        await self.conn.execute(
            sa.update(targets).where(*_target_key(tenant, gateway, name)).values(**values)
        )
        return "updated"

    async def _next_position(self, tenant: str, gateway: str) -> int:
        last = await self.conn.execute(
            sa.select(sa.func.max(targets.c.position)).where(
                targets.c.tenant == tenant, targets.c.gateway == gateway
            )
        )
        top = last.scalar()
        return 0 if top is None else int(top) + 1

    async def delete_target(self, tenant: str, gateway: str, name: str) -> bool:
        await self.conn.execute(
            sa.delete(tool_pins).where(
                tool_pins.c.tenant == tenant, tool_pins.c.gateway == gateway, tool_pins.c.target == name
            )
        )
        result = await self.conn.execute(sa.delete(targets).where(*_target_key(tenant, gateway, name)))
        if not result.rowcount:
            return False
        await self.changed()
        return True
