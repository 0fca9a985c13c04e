"""Appending rows to an append-only log table (call audit records, spans) on SQLite, and
upserting rows that change often and are written behind (A2A tasks).

The store's async engine costs about 0.9 ms of CPU for a commit of a few rows (SQLAlchemy's
transaction, aiosqlite's thread hop for each statement), paid on the event loop that serves
the calls being logged. An ``Appender`` holds one plain ``sqlite3`` connection of its own and
writes a batch in one hop to a worker thread (``BEGIN IMMEDIATE``, ``executemany``,
``COMMIT``), with the store's busy timeout; values are converted by the same SQLAlchemy
column types the store reads them with. ``durable`` keeps the store's ``synchronous=FULL``
(a commit is on disk when it returns: the call audit); otherwise ``NORMAL`` (WAL: a commit
survives the process being killed, not the machine losing power: spans).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.store._engine import _SQLITE_BUSY_MS, StoreError

if TYPE_CHECKING:
    from gateway.store._store import Store

# Pages kept in memory by each appender's connection (KiB, SQLite's negative form): the
# indexes' last pages stay cached as the table grows, instead of the default 2 MB's worth.
_CACHE_KIB = 16_384


class Appender:
    """One ``sqlite3`` connection that only inserts rows into ``table`` (opened on first use)."""

    def __init__(
        self, path: str, table: sa.Table, *, durable: bool, statement: sa.Insert | None = None
    ) -> None:
        self.path = path
        self.durable = durable
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one batch at a time on the connection
        dialect = sqlite_dialect.dialect()
        columns = [c.name for c in table.columns if c is not table.autoincrement_column]
        compiled = (statement if statement is not None else sa.insert(table)).compile(
            dialect=dialect, column_keys=columns
        )
        self.sql = compiled.string
        self.order = list(compiled.positiontup or ())
        self.convert = [table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in self.order]

    @staticmethod
    def for_url(
        url: sa.URL, table: sa.Table, *, durable: bool, statement: sa.Insert | None = None
    ) -> Appender | None:
        """An appender for a store at ``url`` when it is a SQLite file, else None; ``statement``:
        an insert of ``table`` other than the plain one (an upsert)."""
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Appender(str(url.database), table, durable=durable, statement=statement)

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Rows (keyed by column) as the statement's parameters, converted as the store converts them."""
        pairs = list(zip(self.order, self.convert, strict=True))
        return [tuple(row[k] if c is None else c(row[k]) for k, c in pairs) for row in rows]

    async def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` in one transaction (raises ``sqlite3.Error`` when it cannot)."""
        await anyio.to_thread.run_sync(self._write, self.params(rows), False)

    async def each(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Run the statement once per row, all in one transaction; how many rows each changed
        (an upsert whose condition refused the row changed none)."""
        counts: list[int] = await anyio.to_thread.run_sync(self._write, self.params(rows), True)
        return counts

    def _write(self, params: list[tuple[Any, ...]], each: bool) -> list[int]:
        with self._lock:
            if self._conn is None:
                conn = sqlite3.connect(
                    self.path, timeout=_SQLITE_BUSY_MS / 1000, isolation_level=None, check_same_thread=False
                )
                conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
                conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
                self._conn = conn
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if each:
                    counts = [conn.execute(self.sql, one).rowcount for one in params]
                else:
                    conn.executemany(self.sql, params)
                    counts = []
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return counts

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class LogWriter:
    """Appends rows to one of the store's append-only logs: through an ``Appender`` on a SQLite
    file, else through the store's engine (asyncpg needs no thread).

    Args:
        what: What the rows are, for errors ("audit records").
    """

    def __init__(self, store: Store, table: sa.Table, what: str, *, durable: bool) -> None:
        self.store = store
        self.table = table
        self.what = what
        self._sqlite = Appender.for_url(store._engine.url, table, durable=durable)

    async def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (keyed by column) in one transaction.

        Raises:
            StoreError: the database did not take them (says what to check).
        """
        if self._sqlite is None:
            await self.store._append(self.table, rows, f"write {self.what}")
            return
        try:
            await self._sqlite.append(rows)
        except sqlite3.Error as exc:
            raise StoreError(
                f"the store at {self.store.url} could not write {self.what}: {exc}. "
                "Check that the database file is writable and its disk not full."
            ) from exc

    async def aclose(self) -> None:
        """Close the appender's SQLite connection (if one was opened)."""
        if self._sqlite is not None:
            await self._sqlite.aclose()
