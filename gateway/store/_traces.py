"""The embedded trace store's rows: spans written in batches, read by session and trace.

A row is a span with no parent in its process (an MCP request's span, an admin request's)
with the spans under it folded into ``children``; reads unfold them. A *session* is what
one agent run looks like from here: the MCP session id when the
client has one (2025 era), else the trace id (one client-supplied ``traceparent`` ties a
stateless run together). Only the MCP request spans carry it; the spans under them
(pipeline decisions, upstream requests) are found through their trace. Every query is
scoped to one tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from gateway.store._appender import LogWriter
from gateway.store._schema import spans
from gateway.store._store import Store

MAX_ROWS = 1000
_UNSET = {"session": None, "gateway": None, "tool": None, "subject": None}  # a folded span's row fields


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """What the trace viewer's search asks for; every part optional."""

    tool: str | None = None
    subject: str | None = None
    errors_only: bool = False
    since_ns: int | None = None
    until_ns: int | None = None
    limit: int = 50


class StoreTraces:
    """Writes batches of finished spans; answers the trace viewer's queries."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._log = LogWriter(store, spans, "spans", durable=False)  # not fsynced: spans are not the audit

    async def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert finished spans' rows (keyed by column) in one transaction."""
        await self._log.append(rows)

    async def aclose(self) -> None:
        """Close the SQLite connection of the span rows (if one was opened)."""
        await self._log.aclose()

    async def purge(self, before_ns: int) -> int:
        """Forget spans that started before ``before_ns`` (the retention); returns how many."""
        async with self.store._transaction(self.store._writer, "purge old spans") as conn:
            result = await conn.execute(sa.delete(spans).where(spans.c.start_ns < before_ns))
            return int(result.rowcount or 0)

    async def sessions(self, tenant: str, where: SessionFilter = SessionFilter()) -> list[dict[str, Any]]:
        """The tenant's sessions with a step matching ``where``, most recent first."""
        matching = sa.select(spans.c.session).where(spans.c.tenant == tenant, spans.c.session.is_not(None))
        if where.tool:
            matching = matching.where(spans.c.tool.contains(where.tool, autoescape=True))
        if where.subject:
            matching = matching.where(spans.c.subject == where.subject)
        if where.errors_only:
            matching = matching.where(spans.c.error.is_(True))
        if where.since_ns is not None:
            matching = matching.where(spans.c.start_ns >= where.since_ns)
        if where.until_ns is not None:
            matching = matching.where(spans.c.start_ns <= where.until_ns)
        errors = sa.func.sum(sa.case((spans.c.error.is_(True), 1), else_=0))
        query = (
            sa.select(
                spans.c.session,
                sa.func.min(spans.c.start_ns).label("start_ns"),
                sa.func.max(spans.c.end_ns).label("end_ns"),
                sa.func.count().label("steps"),
                errors.label("errors"),
                sa.func.max(spans.c.subject).label("subject"),
                sa.func.max(spans.c.gateway).label("gateway"),
            )
            .where(spans.c.tenant == tenant, spans.c.session.in_(matching.distinct()))
            .group_by(spans.c.session)
            .order_by(sa.func.max(spans.c.start_ns).desc())
            .limit(max(1, min(where.limit, MAX_ROWS)))
        )
        async with self.store._read("read trace sessions") as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def session(self, tenant: str, session: str) -> list[dict[str, Any]]:
        """Every span of a session's traces, oldest first (the steps and what ran under them)."""
        traces = (
            sa.select(spans.c.trace_id).where(spans.c.tenant == tenant, spans.c.session == session).distinct()
        )
        return await self._spans(
            "read a session's spans",
            sa.and_(spans.c.tenant == tenant, spans.c.trace_id.in_(traces)),
        )

    async def trace(self, tenant: str, trace_id: str) -> list[dict[str, Any]]:
        """Every span of one trace, oldest first."""
        return await self._spans(
            "read a trace", sa.and_(spans.c.tenant == tenant, spans.c.trace_id == trace_id)
        )

    async def _spans(self, action: str, where: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
        query = sa.select(spans).where(where).order_by(spans.c.start_ns).limit(MAX_ROWS * 5)
        async with self.store._read(action) as conn:
            rows = [dict(r._mapping) for r in await conn.execute(query)]
        found: list[dict[str, Any]] = []
        for row in rows:
            row["attributes"] = orjson.loads(row["attributes"])
            children = orjson.loads(row.pop("children") or "[]")
            found.append(row)
            unset = {"session": None, "gateway": None, "tool": None, "subject": None}
            found += [
                {**unset, **child, "tenant": row["tenant"], "trace_id": row["trace_id"]} for child in children
            ]
        found.sort(key=lambda span: span["start_ns"])
        return found
