"""The database edge of the store: URLs, engines, connection settings, migrations, errors.

`open_engine` turns a URL into a connected, migrated engine. SQLAlchemy, driver and Alembic
exceptions become `StoreError` here (while opening) and in `Store` (for each operation), so
no driver exception reaches the rest of the gateway.

Connection settings, on every new connection:

- SQLite: ``journal_mode=WAL``, ``synchronous=FULL``, ``foreign_keys=ON`` and a busy timeout.
  Write transactions start with ``BEGIN IMMEDIATE`` so two processes on one file queue for the
  write lock instead of failing to upgrade a read lock; reads use a deferred ``BEGIN``.
- PostgreSQL: ``synchronous_commit=on`` for the session (sent at connect, so a server or role
  default of ``off`` cannot weaken the store's writes).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.core.errors import SwitchboardError

MIGRATIONS = Path(__file__).parent / "migrations"
WRITE = "switchboard_write"
"""Execution option that marks a connection as a writer (``BEGIN IMMEDIATE`` on SQLite)."""
SUPPORTED = (
    "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DATABASE "
    "(plain sqlite:/// and postgresql:// are accepted and use those drivers)"
)
_PG_MIGRATION_LOCK = 7_341_001  # pg_advisory_xact_lock key: replicas starting together migrate one at a time
_SQLITE_BUSY_MS = 10_000


class StoreError(SwitchboardError):
    """The store could not do what was asked; the message says what failed and what to check."""


def normalize_url(url: str) -> str:
    """Rewrite a database URL to the store's async drivers.

    ``sqlite://`` (any driver) becomes ``sqlite+aiosqlite://``; ``postgresql://``, ``postgres://``
    (any driver) become ``postgresql+asyncpg://``, and a libpq ``sslmode`` option becomes
    asyncpg's ``ssl``.

    Args:
        url: A SQLAlchemy or libpq-style database URL.

    Returns:
        The URL to hand to SQLAlchemy, password included.

    Raises:
        StoreError: The text is not a URL, or names a database the store does not support.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"{_mask(url)!r} is not a database URL; {SUPPORTED}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        query = dict(parsed.query)
        if "sslmode" in query and "ssl" not in query:
            query["ssl"] = query.pop("sslmode")
        parsed = parsed.set(drivername="postgresql+asyncpg", query=query)
    else:
        raise StoreError(
            f"unsupported database {backend!r} in {safe_url(url)} (SWITCHBOARD_DATABASE_URL); {SUPPORTED}"
        )
    return parsed.render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _mask(url)


def _mask(text: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", text)


async def open_engine(url: str) -> AsyncEngine:
    """Normalize ``url``, create its engine, connect, and migrate the schema to the newest revision.

    Raises:
        StoreError: The URL is not supported, or the database cannot be reached or migrated.
    """
    normalized = normalize_url(url)
    try:
        engine = create_engine(normalized)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(
            f"cannot use the database URL {safe_url(normalized)}: {reason(exc)}; {SUPPORTED}"
        ) from None
    try:
        await _connect(engine, normalized)
        await _migrate(engine, normalized)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await engine.dispose()
        raise
    return engine


async def _connect(engine: AsyncEngine, url: str) -> None:
    safe = safe_url(url)
    try:
        await _first_connection(engine, url)
    except (TypeError, ValueError) as exc:  # asyncpg refuses options it does not know, before any I/O
        raise StoreError(
            f"cannot connect to the store at {safe}: the driver refused an option in the URL ({exc}). "
            "Remove it from SWITCHBOARD_DATABASE_URL (asyncpg takes ssl=..., not libpq options)."
        ) from None
    except (SQLAlchemyError, OSError) as exc:
        raise StoreError(
            f"cannot connect to the store at {safe}: {reason(exc)}. {_connect_hint(url)}"
        ) from None


async def _first_connection(engine: AsyncEngine, url: str) -> None:
    """Connect once. Processes opening a new SQLite database together all switch it to WAL, and
    SQLite answers "database is locked" at once (without its busy handler) to those that would
    otherwise deadlock on the upgrade: they try again, for as long as the busy timeout."""
    deadline = anyio.current_time() + _SQLITE_BUSY_MS / 1000
    pause = 0.01
    while True:
        try:
            async with engine.connect():
                return
        except SQLAlchemyError as exc:
            locked = url.startswith("sqlite") and "database is locked" in str(exc)
            if not locked or anyio.current_time() + pause > deadline:
                raise
        await anyio.sleep(pause)
        pause = min(pause * 2, 0.2)


async def _migrate(engine: AsyncEngine, url: str) -> None:
    safe = safe_url(url)
    try:
        await migrate(engine)
    except (CommandError, RevisionError) as exc:
        if "locate revision" in str(exc):
            hint = (
                "The database was set up by a newer Switchboard: upgrade this one, or point "
                "SWITCHBOARD_DATABASE_URL at another database."
            )
        else:
            hint = "The installed package may be missing its migrations; reinstall switchboard."
        raise StoreError(f"cannot migrate the store at {safe}: {reason(exc)}. {hint}") from None
    except (SQLAlchemyError, OSError) as exc:
        raise StoreError(
            f"cannot migrate the store at {safe} to the current schema: {reason(exc)}. Check that the "
            "database user may create tables and that any sb_* tables in it were made by Switchboard."
        ) from None


def create_engine(url: str) -> AsyncEngine:
    """An async engine for a normalized URL, with the store's connection settings installed."""
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_async_engine(url)
        _install_sqlite_settings(engine)
        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,  # after a server restart, stale pooled connections are replaced, not used
        connect_args={"server_settings": {"synchronous_commit": "on", "application_name": "switchboard"}},
    )


def _install_sqlite_settings(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit transactions would start as deferred reads; let the "begin"
        # hook below open every transaction instead, so writers can ask for the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"busy_timeout={_SQLITE_BUSY_MS}",  # first, so switching to WAL waits for other writers too
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to the newest revision shipped in ``migrations/``, in one transaction."""
    async with engine.execution_options(**{WRITE: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


def _upgrade(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def reason(exc: BaseException) -> str:
    """The first line of what the driver said, without the adapter's class-name prefix."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    if not text:
        return type(orig).__name__
    text = re.sub(r"^<class '[\w.]+'>:\s*", "", text.splitlines()[0])
    return text[:300]


def _connect_hint(url: str) -> str:
    """What to check when the database at ``url`` cannot be opened."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or parsed.database == ":memory:":
            return "Check SWITCHBOARD_DATABASE_URL."
        return (
            f"Check that the directory {path.parent} exists and is writable and that {path.name} is a "
            "SQLite database (the path comes from SWITCHBOARD_DATABASE_URL, or the data dir: "
            "SWITCHBOARD_DATA_DIR / --data-dir)."
        )
    return (
        "Check SWITCHBOARD_DATABASE_URL (host, port, user, password, database name) and that "
        "PostgreSQL is running and reachable from this machine."
    )
