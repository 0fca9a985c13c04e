"""The call audit's rows in the store: only ever inserted, read newest first with filters.

Each call waits for the commit that carries its record (gateway/stages/audit.py), so a commit's
cost is paid on the hot path. On SQLite, records are written by an ``Appender`` (one plain
``sqlite3`` connection, one thread hop a batch, ``synchronous=FULL``); on PostgreSQL through
the store's engine (asyncpg, no thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from gateway.store._appender import LogWriter
from gateway.store._rows import _utc
from gateway.store._schema import call_audit
from gateway.store._store import Store


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One tools/call as the audit keeps it (see gateway/stages/audit.py)."""

    at: float
    tenant: str
    gateway: str
    subject: str
    client: str | None
    tool: str
    decision: str
    arguments_digest: str
    outcome: str
    error: str | None
    duration_ms: float
    approval: str | None = None


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


class StoreCalls:
    """Writes batches of call records and answers the admin API's queries."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._log = LogWriter(store, call_audit, "audit records", durable=True)

    async def write(self, records: Sequence[CallRecord]) -> None:
        rows = [
            {**{f: getattr(r, f) for f in FIELDS}, "at": datetime.fromtimestamp(r.at, UTC)} for r in records
        ]
        await self._log.append(rows)

    async def aclose(self) -> None:
        """Close the SQLite connection of the audit rows (if one was opened)."""
        await self._log.aclose()

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
