"""The Store: gateways, targets and admin API keys per tenant, on SQLite or PostgreSQL.

Every method takes the tenant and every query is scoped by it. The one exception,
`Store.find_api_key`, looks a key up by its id, which is what tells the tenant.

Revision: one global counter. Every transaction that changes a gateway, a target or an API key
moves it by exactly one, and the rows it writes record the new value; a write that changes
nothing leaves it alone. Other processes and replicas notice changes by polling `Store.revision`.
(Creating a tenant does not move it: an empty tenant looks the same as a missing one.)

Concurrency: every write transaction first locks the counter's row (``SELECT ... FOR UPDATE`` on
PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), so writers in any number of processes take turns
and each one reads what the previous one committed. Configuration writes are small and rare;
taking turns keeps "created" versus "unchanged" and the positions of new targets exact, with no
unique-constraint races to retry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store._engine import WRITE, StoreError, open_engine, reason
from gateway.store._rows import (
    Change,
    GatewayDocument,
    GatewayRecord,
    PinRecord,
    TargetRecord,
    _canonical,
    _check_unique,
    _gateway,
    _gateway_key,
    _key,
    _now,
    _revision,
    _target,
    _target_key,
    _tenant_exists,
    _utc,
)
from gateway.store._schema import api_keys, gateways, meta, targets, tenants, tool_pins
from gateway.store._writer import _Writer

_DEFAULT_TENANT = "default"


class Store:
    """Persistence for the gateway's configuration; open one with ``await Store.open(url)``.

    Raises:
        StoreError: From every method, when the database fails; the message says what to check.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        """Wrap an engine that `open` made (with the store's connection settings) and migrated."""
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        # table: (driver SQL, column order, each column's bind conversion or None)
        self._inserts: dict[str, tuple[str, list[str], list[Any]]] = {}
        self._url = engine.url.render_as_string(hide_password=True)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._url

    @property
    def engine(self) -> AsyncEngine:
        """The store's engine, for the peers that keep tables of their own in the same database
        (memory): they open their writes with `write_options`."""
        return self._engine

    @property
    def write_options(self) -> dict[str, Any]:
        return {WRITE: True}

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect, migrate the schema to the newest revision and make sure tenant ``default`` exists.

        Args:
            url: ``sqlite+aiosqlite:///PATH`` or ``postgresql+asyncpg://...`` (plain ``sqlite:///``
                and ``postgresql://`` are rewritten to those drivers).

        Raises:
            StoreError: The URL is not supported, or the database cannot be reached or migrated.
        """
        engine = await open_engine(url)
        store = cls(engine)
        try:
            await store.ensure_tenant(_DEFAULT_TENANT)
        except StoreError as exc:
            await _dispose(engine)
            raise StoreError(exc.message) from None  # the message says it all; no driver traceback
        except BaseException:
            await _dispose(engine)
            raise
        return store

    async def close(self) -> None:
        """Close every pooled connection. The store cannot be used afterwards."""
        await self._engine.dispose()

    async def revision(self) -> int:
        """The global revision: it moves by one with every transaction that changes something."""
        async with self._read("read the revision") as conn:
            return await _revision(conn)

    async def list_tenants(self) -> list[str]:
        """Every tenant, by name."""
        async with self._read("list tenants") as conn:
            rows = await conn.execute(sa.select(tenants.c.name).order_by(tenants.c.name))
            return [str(name) for name in rows.scalars()]

    async def ensure_tenant(self, tenant: str) -> None:
        """Create ``tenant`` unless it exists.

        Writes create their tenant as needed; this is for callers that want it to exist first.
        """
        async with self._read(f"look up tenant {tenant!r}") as conn:
            if await _tenant_exists(conn, tenant):
                return
        async with self._write(f"create tenant {tenant!r}") as tx:
            await tx.ensure_tenant(tenant)

    # -- gateways ------------------------------------------------------------------

    async def list_gateways(self, tenant: str) -> list[GatewayRecord]:
        """The tenant's gateways, by name."""
        async with self._read(f"list the gateways of tenant {tenant!r}") as conn:
            rows = await conn.execute(
                sa.select(gateways).where(gateways.c.tenant == tenant).order_by(gateways.c.name)
            )
            return [_gateway(row) for row in rows.mappings()]

    async def get_gateway(self, tenant: str, name: str) -> GatewayRecord | None:
        """One gateway of the tenant, or None."""
        async with self._read(f"read gateway {name!r}") as conn:
            row = (
                (await conn.execute(sa.select(gateways).where(*_gateway_key(tenant, name))))
                .mappings()
                .first()
            )
            return _gateway(row) if row is not None else None

    async def put_gateway(self, tenant: str, name: str, spec: dict[str, Any]) -> Change:
        """Create or replace a gateway's spec (its targets stay as they are).

        Returns:
            "created", "updated", or "unchanged" when the stored spec is equal as JSON.

        Raises:
            ValueError: ``spec`` is not a JSON document.
        """
        async with self._write(f"store gateway {name!r}") as tx:
            return await tx.put_gateway(tenant, name, spec)

    async def delete_gateway(self, tenant: str, name: str) -> bool:
        """Delete a gateway and its targets; False when the tenant has no such gateway."""
        async with self._write(f"delete gateway {name!r}") as tx:
            return await tx.delete_gateway(tenant, name) is not None

    # -- targets -------------------------------------------------------------------

    async def list_targets(self, tenant: str, gateway: str) -> list[TargetRecord]:
        """A gateway's targets, by position and then name (empty for an unknown gateway)."""
        async with self._read(f"list the targets of gateway {gateway!r}") as conn:
            rows = await conn.execute(
                sa.select(targets)
                .where(targets.c.tenant == tenant, targets.c.gateway == gateway)
                .order_by(targets.c.position, targets.c.name)
            )
            return [_target(row) for row in rows.mappings()]

    async def get_target(self, tenant: str, gateway: str, name: str) -> TargetRecord | None:
        """One target of a gateway, or None."""
        async with self._read(f"read target {gateway}/{name}") as conn:
            query = sa.select(targets).where(*_target_key(tenant, gateway, name))
            row = (await conn.execute(query)).mappings().first()
            return _target(row) if row is not None else None

    async def put_target(
        self, tenant: str, gateway: str, name: str, spec: dict[str, Any], position: int | None = None
    ) -> Change:
        """Create or replace one target of an existing gateway.

        Args:
            tenant: The tenant.
            gateway: The gateway, which must exist.
            name: The target's name within the gateway.
            spec: The target's JSON document.
            position: Where it goes in the list; None keeps an existing target's place and puts a
                new one last.

        Returns:
            "created", "updated", or "unchanged" when spec and position are as stored.

        Raises:
            KeyError: The tenant has no such gateway.
            ValueError: ``spec`` is not a JSON document.
        """
        async with self._write(f"store target {gateway}/{name}") as tx:
            return await tx.put_target(tenant, gateway, name, spec, position)

    async def delete_target(self, tenant: str, gateway: str, name: str) -> bool:
        """Delete one target; False when the gateway has no such target."""
        async with self._write(f"delete target {gateway}/{name}") as tx:
            return await tx.delete_target(tenant, gateway, name)

    # -- tool pins -----------------------------------------------------------------

    async def list_pins(self, tenant: str, gateway: str, target: str) -> dict[str, PinRecord]:
        """The approved tool definitions of one target, by upstream tool name."""
        async with self._read(f"read the tool pins of {gateway}/{target}") as conn:
            rows = await conn.execute(
                sa.select(tool_pins).where(
                    tool_pins.c.tenant == tenant, tool_pins.c.gateway == gateway, tool_pins.c.target == target
                )
            )
            return {
                str(row["tool"]): PinRecord(
                    str(row["tool"]), str(row["digest"]), dict(row["definition"]), _utc(row["approved_at"])
                )
                for row in rows.mappings()
            }

    async def approve_pins(
        self, tenant: str, gateway: str, target: str, pins: Mapping[str, tuple[str, dict[str, Any]]]
    ) -> int:
        """Record ``{tool: (digest, definition)}`` as approved; returns how many changed.

        Raises:
            KeyError: The gateway has no such target.
        """
        async with self._write(f"approve tools of {gateway}/{target}") as tx:
            exists = await tx.conn.execute(
                sa.select(targets.c.name).where(*_target_key(tenant, gateway, target))
            )
            if exists.first() is None:
                raise KeyError(f"no target {target!r} in gateway {gateway!r}")
            key = (tool_pins.c.tenant == tenant, tool_pins.c.gateway == gateway, tool_pins.c.target == target)
            rows = await tx.conn.execute(sa.select(tool_pins.c.tool, tool_pins.c.digest).where(*key))
            stored = {str(r.tool): str(r.digest) for r in rows}
            changed = 0
            for tool, (digest, definition) in pins.items():
                if stored.get(tool) == digest:
                    continue
                _canonical(definition, f"the definition of tool {tool!r}")
                values = {"digest": digest, "definition": definition, "approved_at": _now()}
                if tool in stored:
                    await tx.conn.execute(
                        sa.update(tool_pins).where(*key, tool_pins.c.tool == tool).values(**values)
                    )
                else:
                    await tx.conn.execute(
                        sa.insert(tool_pins).values(
                            tenant=tenant, gateway=gateway, target=target, tool=tool, **values
                        )
                    )
                changed += 1
            if changed:
                await tx.changed()
            return changed

    # -- declarative apply ---------------------------------------------------------

    async def apply(
        self, tenant: str, gateways: Sequence[GatewayDocument], prune: bool = False
    ) -> list[tuple[str, str, Change]]:
        """Make the tenant's stored gateways match ``gateways``, in one transaction.

        Each listed gateway is created or updated and gets exactly the listed targets, positioned
        in list order; its other targets are deleted. Gateways not listed stay, unless ``prune``.
        Applying the same input twice changes nothing the second time (and the revision stays).

        Args:
            tenant: The tenant.
            gateways: ``(name, spec, [(target name, target spec), ...])`` for each gateway.
            prune: Also delete the tenant's gateways that are not listed (with their targets).

        Returns:
            ``(kind, name, change)`` for every gateway and target, "unchanged" ones included:
            kind is "gateway" or "target", name is ``gw`` or ``gw/target``. Per gateway: the
            gateway, its listed targets in order, then its deleted targets; pruned gateways last.

        Raises:
            ValueError: A gateway is listed twice, a target twice in one gateway, or a spec is not
                a JSON document. Nothing is stored.
        """
        _check_unique(gateways)
        listed = {name for name, _, _ in gateways}
        changes: list[tuple[str, str, Change]] = []
        async with self._write(f"apply the configuration of tenant {tenant!r}") as tx:
            for name, spec, wanted in gateways:
                changes.append(("gateway", name, await tx.put_gateway(tenant, name, spec)))
                keep = {target for target, _ in wanted}
                stale = [t for t in await tx.target_names(tenant, name) if t not in keep]
                for position, (target, target_spec) in enumerate(wanted):
                    change = await tx.put_target(tenant, name, target, target_spec, position)
                    changes.append(("target", f"{name}/{target}", change))
                for target in stale:
                    await tx.delete_target(tenant, name, target)
                    changes.append(("target", f"{name}/{target}", "deleted"))
            if prune:
                for name in await tx.gateway_names(tenant):
                    if name in listed:
                        continue
                    removed = await tx.delete_gateway(tenant, name)
                    if removed is not None:
                        changes.append(("gateway", name, "deleted"))
                        changes.extend(("target", f"{name}/{target}", "deleted") for target in removed)
        return changes

    # -- admin API keys ------------------------------------------------------------

    async def add_api_key(
        self,
        tenant: str,
        key_id: str,
        key_hash: str,
        purpose: str,
        *,
        gateway: str | None = None,
        subject: str | None = None,
        scopes: Sequence[str] = (),
    ) -> None:
        """Store an API key's hash (never the key) under its public id.

        ``purpose`` is ``admin`` or ``gateway``; a gateway key names its gateway, the
        subject it authenticates as, and its scopes.

        Raises:
            ValueError: A key with this id exists already (in any tenant).
        """
        async with self._write(f"store API key {key_id!r}") as tx:
            taken = await tx.conn.execute(sa.select(api_keys.c.key_id).where(api_keys.c.key_id == key_id))
            if taken.first() is not None:
                raise ValueError(f"an API key with id {key_id!r} exists already; generate a new key")
            await tx.ensure_tenant(tenant)
            await tx.conn.execute(
                sa.insert(api_keys).values(
                    key_id=key_id,
                    tenant=tenant,
                    key_hash=key_hash,
                    purpose=purpose,
                    created_at=_now(),
                    gateway=gateway,
                    subject=subject,
                    scopes=list(scopes) if scopes else None,
                )
            )
            await tx.changed()

    async def find_api_key(self, key_id: str) -> tuple[str, str, str] | None:
        """``(tenant, key_hash, purpose)`` of the key with this id, or None.

        Not tenant-scoped: the key id is what tells the tenant.
        """
        async with self._read("look up an API key") as conn:
            query = sa.select(api_keys.c.tenant, api_keys.c.key_hash, api_keys.c.purpose).where(
                api_keys.c.key_id == key_id
            )
            row = (await conn.execute(query)).first()
            return (str(row.tenant), str(row.key_hash), str(row.purpose)) if row is not None else None

    async def gateway_key(self, key_id: str) -> dict[str, Any] | None:
        """A gateway key's record (``tenant``, ``gateway``, ``subject``, ``scopes``, ``hash``), or None."""
        return await self.key(key_id, "gateway")

    async def key(self, key_id: str, purpose: str) -> dict[str, Any] | None:
        """The record of a key for ``purpose``, or None (not tenant-scoped: the id tells the tenant)."""
        async with self._read("look up an API key") as conn:
            query = sa.select(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.purpose == purpose)
            row = (await conn.execute(query)).mappings().first()
            return _key(row) if row is not None else None

    async def list_gateway_keys(self, tenant: str, gateway: str) -> list[dict[str, Any]]:
        """A gateway's keys (without their hashes), oldest first."""
        async with self._read(f"list the keys of gateway {gateway!r}") as conn:
            query = (
                sa.select(api_keys)
                .where(
                    api_keys.c.tenant == tenant,
                    api_keys.c.gateway == gateway,
                    api_keys.c.purpose == "gateway",
                )
                .order_by(api_keys.c.created_at, api_keys.c.key_id)
            )
            return [
                {k: v for k, v in _key(row).items() if k != "hash"}
                for row in (await conn.execute(query)).mappings()
            ]

    async def list_keys(self, tenant: str, purpose: str) -> list[dict[str, Any]]:
        """The tenant's keys for ``purpose`` (without their hashes), oldest first."""
        async with self._read(f"list the tenant's {purpose} keys") as conn:
            c = api_keys.c
            query = (
                sa.select(api_keys)
                .where(c.tenant == tenant, c.purpose == purpose)
                .order_by(c.created_at, c.key_id)
            )
            return [
                {k: v for k, v in _key(row).items() if k != "hash"}
                for row in (await conn.execute(query)).mappings()
            ]

    async def revoke_api_key(self, tenant: str, key_id: str, purpose: str | None = None) -> bool:
        """Delete a key of the tenant (only one for ``purpose``, when given); False when it has none."""
        async with self._write(f"revoke API key {key_id!r}") as tx:
            where = [api_keys.c.tenant == tenant, api_keys.c.key_id == key_id]
            if purpose is not None:
                where.append(api_keys.c.purpose == purpose)
            result = await tx.conn.execute(sa.delete(api_keys).where(*where))
            if not result.rowcount:
                return False
            await tx.changed()
            return True

    async def count_api_keys(self, tenant: str, purpose: str) -> int:
        """How many keys the tenant has for ``purpose``."""
        async with self._read("count API keys") as conn:
            query = (
                sa.select(sa.func.count())
                .select_from(api_keys)
                .where(api_keys.c.tenant == tenant, api_keys.c.purpose == purpose)
            )
            return int((await conn.execute(query)).scalar_one())

    # -- transactions --------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self, engine: AsyncEngine, action: str) -> AsyncIterator[AsyncConnection]:
        try:
            async with engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(
                f"the store at {self._url} could not {action}: {reason(exc)}. "
                "Check that the database is running and reachable (SWITCHBOARD_DATABASE_URL)."
            ) from exc

    def _read(self, action: str) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._transaction(self._engine, action)

    async def _append(self, table: sa.Table, rows: Sequence[Mapping[str, Any]], action: str) -> None:
        """Insert rows (keyed by column; every column but an autoincrement id) in one transaction.

        For the append-only logs (audit records, spans), written in batches: the statement is
        compiled once per table and the rows go to the driver's executemany as tuples. Core's
        own executemany processes every parameter of every row in Python (~40 us a row), on the
        event loop that serves the calls being logged.
        """
        async with self._transaction(self._writer, action) as conn:
            compiled = self._inserts.get(table.name)
            if compiled is None:
                columns = [c.name for c in table.columns if not (c.name == "id" and c.autoincrement)]
                statement = sa.insert(table).compile(dialect=conn.dialect, column_keys=columns)
                order = list(statement.positiontup or ())
                # The types' own conversions (a datetime for SQLite, say), and only where there is one.
                convert = [
                    table.c[k].type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for k in order
                ]
                compiled = self._inserts[table.name] = (statement.string, order, convert)
            sql, order, convert = compiled
            params = [
                tuple(row[k] if c is None else c(row[k]) for k, c in zip(order, convert, strict=True))
                for row in rows
            ]
            await conn.exec_driver_sql(sql, params)

    @asynccontextmanager
    async def _write(self, action: str) -> AsyncIterator[_Writer]:
        async with self._transaction(self._writer, action) as conn:
            # Take the writers' lock first, so everything read below is what the last writer committed.
            await conn.execute(sa.select(meta.c.revision).where(meta.c.id == 1).with_for_update())
            yield _Writer(conn)


async def _dispose(engine: AsyncEngine) -> None:
    with anyio.CancelScope(shield=True):
        await engine.dispose()
