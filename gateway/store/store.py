"""The Store: gateways, targets and API keys per tenant, on SQLite or PostgreSQL.

Every method takes the tenant and every query is scoped by it (the one
exception, ``find_api_key``, looks a key up by its id, which is what tells the
tenant). Writes that change something move one global revision counter, so
other processes and replicas can notice changes by polling it.

Durability: SQLite runs with WAL and ``synchronous=FULL``; PostgreSQL sessions
keep ``synchronous_commit=on``. Driver and SQLAlchemy errors are mapped here,
at the boundary, to StoreError with a message that says what to check.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gateway.store.schema import api_keys, gateways, meta, targets, tenants

Change = Literal["created", "updated", "unchanged", "deleted"]
StoredGateway = tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]]]
MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 7_341_001


class StoreError(Exception):
    """The store cannot do what was asked; the message says what to check."""


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    tenant: str
    name: str
    spec: dict[str, Any]
    revision: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TargetRecord:
    tenant: str
    gateway: str
    name: str
    position: int
    spec: dict[str, Any]
    revision: int
    updated_at: datetime


def normalize_url(url: str) -> str:
    """Use the async drivers for plain sqlite:// and postgresql:// URLs; refuse other schemes."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"{url!r} is not a database URL; use sqlite+aiosqlite:///PATH or postgresql+asyncpg://..."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False))
    if backend == "postgresql":
        return str(parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False))
    raise StoreError(
        f"unsupported database {backend!r} in SWITCHBOARD_DATABASE_URL; "
        "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
    )


def _safe(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _canonical(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Store:
    """Persistence for the gateway's configuration. Open with ``await Store.open(url)``."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.is_sqlite = engine.dialect.name == "sqlite"

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect, migrate to the newest schema and make sure tenant ``default`` exists.

        Raises:
            StoreError: the URL is not supported or the database cannot be reached or migrated.
        """
        url = normalize_url(url)
        engine = create_async_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            _sqlite_pragmas(engine)
        else:
            _postgres_durability(engine)
        store = cls(engine, url)
        try:
            async with engine.begin() as conn:
                if not store.is_sqlite:
                    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                await conn.run_sync(_upgrade)
            await store.ensure_tenant("default")
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise StoreError(
                f"cannot open the store at {_safe(url)}: {_reason(exc)}. "
                "Check SWITCHBOARD_DATABASE_URL (or --data-dir) and that the database is running."
            ) from None
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise StoreError(f"the store at {_safe(self.url)} failed: {_reason(exc)}") from None

    async def _bump(self, conn: AsyncConnection) -> int:
        result = await conn.execute(
            sa.update(meta)
            .where(meta.c.id == 1)
            .values(revision=meta.c.revision + 1)
            .returning(meta.c.revision)
        )
        return int(result.scalar_one())

    async def revision(self) -> int:
        async with self._tx() as conn:
            return int((await conn.execute(sa.select(meta.c.revision).where(meta.c.id == 1))).scalar_one())

    async def ensure_tenant(self, tenant: str) -> None:
        async with self._tx() as conn:
            exists = await conn.execute(sa.select(tenants.c.name).where(tenants.c.name == tenant))
            if exists.first() is None:
                await conn.execute(sa.insert(tenants).values(name=tenant, created_at=_now()))

    # -- gateways ------------------------------------------------------------------

    async def list_gateways(self, tenant: str) -> list[GatewayRecord]:
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(gateways).where(gateways.c.tenant == tenant).order_by(gateways.c.name)
            )
            return [_gateway(r) for r in rows.mappings()]

    async def get_gateway(self, tenant: str, name: str) -> GatewayRecord | None:
        async with self._tx() as conn:
            row = (await conn.execute(_gateway_q(tenant, name))).mappings().first()
            return _gateway(row) if row else None

    async def put_gateway(self, tenant: str, name: str, spec: dict[str, Any]) -> Change:
        async with self._tx() as conn:
            return await self._put_gateway(conn, tenant, name, spec)

    async def _put_gateway(
        self, conn: AsyncConnection, tenant: str, name: str, spec: dict[str, Any]
    ) -> Change:
        await self._ensure_tenant(conn, tenant)
        row = (await conn.execute(_gateway_q(tenant, name))).mappings().first()
        if row is not None and _canonical(row["spec"]) == _canonical(spec):
            return "unchanged"
        rev = await self._bump(conn)
        values = {"spec": spec, "revision": rev, "updated_at": _now()}
        if row is None:
            await conn.execute(sa.insert(gateways).values(tenant=tenant, name=name, **values))
            return "created"
        await conn.execute(
            sa.update(gateways).where(gateways.c.tenant == tenant, gateways.c.name == name).values(**values)
        )
        return "updated"

    async def delete_gateway(self, tenant: str, name: str) -> bool:
        async with self._tx() as conn:
            return await self._delete_gateway(conn, tenant, name)

    async def _delete_gateway(self, conn: AsyncConnection, tenant: str, name: str) -> bool:
        await conn.execute(sa.delete(targets).where(targets.c.tenant == tenant, targets.c.gateway == name))
        result = await conn.execute(
            sa.delete(gateways).where(gateways.c.tenant == tenant, gateways.c.name == name)
        )
        if result.rowcount:
            await self._bump(conn)
            return True
        return False

    # -- targets -------------------------------------------------------------------

    async def list_targets(self, tenant: str, gateway: str) -> list[TargetRecord]:
        async with self._tx() as conn:
            return await self._targets(conn, tenant, gateway)

    async def _targets(self, conn: AsyncConnection, tenant: str, gateway: str) -> list[TargetRecord]:
        rows = await conn.execute(
            sa.select(targets)
            .where(targets.c.tenant == tenant, targets.c.gateway == gateway)
            .order_by(targets.c.position, targets.c.name)
        )
        return [_target(r) for r in rows.mappings()]

    async def get_target(self, tenant: str, gateway: str, name: str) -> TargetRecord | None:
        async with self._tx() as conn:
            row = (await conn.execute(_target_q(tenant, gateway, name))).mappings().first()
            return _target(row) if row else None

    async def put_target(
        self, tenant: str, gateway: str, name: str, spec: dict[str, Any], position: int | None = None
    ) -> Change:
        """Create or replace one target; new targets go last unless ``position`` says otherwise.

        Raises:
            KeyError: the gateway does not exist in this tenant.
        """
        async with self._tx() as conn:
            if (await conn.execute(_gateway_q(tenant, gateway))).first() is None:
                raise KeyError(f"no gateway named {gateway!r} in tenant {tenant!r}; create the gateway first")
            return await self._put_target(conn, tenant, gateway, name, spec, position)

    async def _put_target(
        self,
        conn: AsyncConnection,
        tenant: str,
        gateway: str,
        name: str,
        spec: dict[str, Any],
        position: int | None,
    ) -> Change:
        row = (await conn.execute(_target_q(tenant, gateway, name))).mappings().first()
        if position is None:
            if row is not None:
                position = int(row["position"])
            else:
                last = await conn.execute(
                    sa.select(sa.func.max(targets.c.position)).where(
                        targets.c.tenant == tenant, targets.c.gateway == gateway
                    )
                )
                top = last.scalar()
                position = 0 if top is None else int(top) + 1
        if row is not None and _canonical(row["spec"]) == _canonical(spec) and row["position"] == position:
            return "unchanged"
        rev = await self._bump(conn)
        values = {"spec": spec, "position": position, "revision": rev, "updated_at": _now()}
        if row is None:
            await conn.execute(sa.insert(targets).values(tenant=tenant, gateway=gateway, name=name, **values))
            return "created"
        await conn.execute(
            sa.update(targets)
            .where(targets.c.tenant == tenant, targets.c.gateway == gateway, targets.c.name == name)
            .values(**values)
        )
        return "updated"

    async def delete_target(self, tenant: str, gateway: str, name: str) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(
                sa.delete(targets).where(
                    targets.c.tenant == tenant, targets.c.gateway == gateway, targets.c.name == name
                )
            )
            if result.rowcount:
                await self._bump(conn)
                return True
            return False

    # -- declarative apply ---------------------------------------------------------

    async def apply(
        self, tenant: str, documents: Sequence[StoredGateway], prune: bool = False
    ) -> list[tuple[str, str, Change]]:
        """Make the tenant's stored gateways match ``documents``, in one transaction.

        Each listed gateway gets exactly the listed targets, in order. With
        ``prune``, gateways not listed are deleted too. Idempotent.
        """
        changes: list[tuple[str, str, Change]] = []
        async with self._tx() as conn:
            listed = {name for name, _, _ in documents}
            for name, spec, target_docs in documents:
                changes.append(("gateway", name, await self._put_gateway(conn, tenant, name, spec)))
                wanted = {t for t, _ in target_docs}
                for existing in await self._targets(conn, tenant, name):
                    if existing.name not in wanted:
                        await conn.execute(
                            sa.delete(targets).where(
                                targets.c.tenant == tenant,
                                targets.c.gateway == name,
                                targets.c.name == existing.name,
                            )
                        )
                        await self._bump(conn)
                        changes.append(("target", f"{name}/{existing.name}", "deleted"))
                for position, (tname, tspec) in enumerate(target_docs):
                    change = await self._put_target(conn, tenant, name, tname, tspec, position)
                    changes.append(("target", f"{name}/{tname}", change))
            if prune:
                rows = await conn.execute(sa.select(gateways.c.name).where(gateways.c.tenant == tenant))
                for (gname,) in rows.all():
                    if gname not in listed and await self._delete_gateway(conn, tenant, gname):
                        changes.append(("gateway", gname, "deleted"))
        return changes

    # -- API keys ------------------------------------------------------------------

    async def add_api_key(self, tenant: str, key_id: str, key_hash: str, purpose: str) -> None:
        async with self._tx() as conn:
            await self._ensure_tenant(conn, tenant)
            await conn.execute(
                sa.insert(api_keys).values(
                    key_id=key_id, tenant=tenant, key_hash=key_hash, purpose=purpose, created_at=_now()
                )
            )

    async def find_api_key(self, key_id: str) -> tuple[str, str, str] | None:
        async with self._tx() as conn:
            row = (
                (await conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)))
                .mappings()
                .first()
            )
            return (row["tenant"], row["key_hash"], row["purpose"]) if row else None

    async def count_api_keys(self, tenant: str, purpose: str) -> int:
        async with self._tx() as conn:
            result = await conn.execute(
                sa.select(sa.func.count()).where(api_keys.c.tenant == tenant, api_keys.c.purpose == purpose)
            )
            return int(result.scalar_one())

    async def _ensure_tenant(self, conn: AsyncConnection, tenant: str) -> None:
        if (await conn.execute(sa.select(tenants.c.name).where(tenants.c.name == tenant))).first() is None:
            await conn.execute(sa.insert(tenants).values(name=tenant, created_at=_now()))


def _gateway_q(tenant: str, name: str) -> sa.Select[Any]:
    return sa.select(gateways).where(gateways.c.tenant == tenant, gateways.c.name == name)


def _target_q(tenant: str, gateway: str, name: str) -> sa.Select[Any]:
    return sa.select(targets).where(
        targets.c.tenant == tenant, targets.c.gateway == gateway, targets.c.name == name
    )


def _gateway(row: Any) -> GatewayRecord:
    return GatewayRecord(
        row["tenant"], row["name"], dict(row["spec"]), int(row["revision"]), _aware(row["updated_at"])
    )


def _target(row: Any) -> TargetRecord:
    return TargetRecord(
        row["tenant"],
        row["gateway"],
        row["name"],
        int(row["position"]),
        dict(row["spec"]),
        int(row["revision"]),
        _aware(row["updated_at"]),
    )


def _upgrade(connection: sa.Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return text[:300]


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below open transactions, so writers take the lock up front
        # (BEGIN IMMEDIATE) instead of failing with SQLITE_BUSY on upgrade from a read lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=10000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _postgres_durability(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET synchronous_commit TO on")
        cursor.close()
