"""The call audit's rows in the store: only ever inserted, read newest first with filters.

Each call waits for the commit that carries its record (gateway/audit.py), so a commit's
cost is paid on the hot path. On SQLite, records are written through one plain ``sqlite3``
connection of their own, in a worker thread, one hop per batch (``BEGIN IMMEDIATE``,
``executemany``, ``COMMIT``, with the store's ``synchronous=FULL`` and busy timeout):
through the async engine a commit of a few rows cost about 0.9 ms of CPU, this way about
0.1 ms. Values are converted by the same SQLAlchemy column types the store reads them with.
On PostgreSQL they go through the store's engine (asyncpg, no thread).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.audit import CallRecord
from gateway.store._engine import _SQLITE_BUSY_MS, StoreError
from gateway.store._schema import call_audit
from gateway.store._store import Store, _utc

FIELDS = (
    "tenant",
    "gateway",
    "subject",
    "client",
    "tool",
    "decision",
    "arguments_digest",
    "outcome",
    "error",
    "duration_ms",
    "approval",
)


class _SqliteAppender:
    """One ``sqlite3`` connection that only appends audit rows (opened on first use)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one batch at a time on the connection
        dialect = sqlite_dialect.dialect()
        columns = [c.name for c in call_audit.columns if not (c.name == "id" and c.autoincrement)]
        statement = sa.insert(call_audit).compile(dialect=dialect, column_keys=columns)
        self.sql = statement.string
        self.order = list(statement.positiontup or ())
        self.convert = [
            call_audit.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in self.order
        ]

    def params(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            tuple(row[k] if c is None else c(row[k]) for k, c in zip(self.order, self.convert, strict=True))
            for row in rows
        ]

    def write(self, params: list[tuple[Any, ...]]) -> None:
        """Blocking: run in a worker thread."""
        with self._lock:
            if self._conn is None:
                conn = sqlite3.connect(
                    self.path, timeout=_SQLITE_BUSY_MS / 1000, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA synchronous=FULL")
                self._conn = conn
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(self.sql, params)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class StoreCalls:
    """Writes batches of call records and answers the admin API's queries."""

    def __init__(self, store: Store) -> None:
        self.store = store
        url = store._engine.url
        self._sqlite = (
            _SqliteAppender(url.database)
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
            else None
        )

    async def write(self, records: Sequence[CallRecord]) -> None:
        rows = [
            {**{f: getattr(r, f) for f in FIELDS}, "at": datetime.fromtimestamp(r.at, UTC)} for r in records
        ]
        if self._sqlite is None:
            await self.store._append(call_audit, rows, "write audit records")
            return
        params = self._sqlite.params(rows)
        try:
            await anyio.to_thread.run_sync(self._sqlite.write, params)
        except sqlite3.Error as exc:
            raise StoreError(
                f"the store at {self.store.url} could not write audit records: {exc}. "
                "Check that the database file is writable and its disk not full."
            ) from exc

    async def aclose(self) -> None:
        """Close the SQLite connection of the audit rows (if one was opened)."""
        if self._sqlite is not None:
            await anyio.to_thread.run_sync(self._sqlite.close)

    async def query(
        self,
        tenant: str,
        *,
        gateway: str | None = None,
        tool: str | None = None,
        subject: str | None = None,
        decision: str | None = None,
        outcome: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The tenant's records, newest first, filtered by what is given."""
        query = sa.select(call_audit).where(call_audit.c.tenant == tenant)
        for column, value in (
            (call_audit.c.gateway, gateway),
            (call_audit.c.tool, tool),
            (call_audit.c.subject, subject),
            (call_audit.c.decision, decision),
            (call_audit.c.outcome, outcome),
        ):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(call_audit.c.id.desc()).limit(max(1, min(limit, 1000)))
        async with self.store._read("read audit records") as conn:
            return [
                {"at": _utc(r.at).isoformat(), **{f: getattr(r, f) for f in FIELDS if f != "tenant"}}
                for r in await conn.execute(query)
            ]
