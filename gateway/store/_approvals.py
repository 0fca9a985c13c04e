"""Approvals in the store: held calls and their decisions (a decision is written once)."""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from gateway.store._rows import _now, _utc
from gateway.store._schema import approvals
from gateway.store._store import Store


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "gateway": r.gateway,
        "tool": r.tool,
        "subject": r.subject,
        "arguments_digest": r.arguments_digest,
        "arguments": r.arguments_preview,
        "status": r.status,
        "decided_by": r.decided_by,
        "reason": r.reason,
        "created_at": _utc(r.created_at).isoformat(),
        "decided_at": _utc(r.decided_at).isoformat() if r.decided_at else None,
    }


class StoreApprovals:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(
        self,
        tenant: str,
        gateway: str,
        tool: str,
        subject: str,
        digest: str,
        preview: str,
        *,
        status: str = "pending",
        decided_by: str | None = None,
    ) -> str:
        """Record a held call (or one decided at once); returns its id. Durable before returning."""
        approval_id = secrets.token_hex(8)
        now = _now()
        async with self.store._transaction(self.store._writer, "record an approval") as conn:
            await conn.execute(
                sa.insert(approvals).values(
                    id=approval_id,
                    tenant=tenant,
                    gateway=gateway,
                    tool=tool,
                    subject=subject,
                    arguments_digest=digest,
                    arguments_preview=preview[:2000],
                    status=status,
                    decided_by=decided_by,
                    created_at=now,
                    decided_at=now if status != "pending" else None,
                )
            )
        return approval_id

    async def get(self, tenant: str, approval_id: str) -> dict[str, Any] | None:
        async with self.store._read("read an approval") as conn:
            query = sa.select(approvals).where(approvals.c.tenant == tenant, approvals.c.id == approval_id)
            row = (await conn.execute(query)).first()
            return _row(row) if row is not None else None

    async def decide(
        self, tenant: str, approval_id: str, status: str, by: str, reason: str | None = None
    ) -> bool:
        """Decide a pending approval; False when it is not pending (decided already, expired, unknown)."""
        async with self.store._transaction(self.store._writer, "decide an approval") as conn:
            result = await conn.execute(
                sa.update(approvals)
                .where(
                    approvals.c.tenant == tenant,
                    approvals.c.id == approval_id,
                    approvals.c.status == "pending",
                )
                .values(status=status, decided_by=by, reason=(reason or "")[:500] or None, decided_at=_now())
            )
            return bool(result.rowcount)

    async def list(self, tenant: str, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(approvals).where(approvals.c.tenant == tenant)
        if status:
            query = query.where(approvals.c.status == status)
        async with self.store._read("list approvals") as conn:
            rows = await conn.execute(
                query.order_by(approvals.c.created_at.desc()).limit(max(1, min(limit, 1000)))
            )
            return [_row(r) for r in rows]
