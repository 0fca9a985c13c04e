"""The vault's rows in the store (identity.vault.SecretStore on our database).

Secret rows never move the configuration revision; the audit table is only ever
inserted into.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from gateway.store._rows import _now, _utc
from gateway.store._schema import secret_audit, secrets
from gateway.store._store import Store
from identity.vault import Owner, Sealed


def _where(owner: Owner) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        secrets.c.tenant == owner.tenant,
        secrets.c.user_id == owner.user,
        secrets.c.provider == owner.provider,
        secrets.c.name == owner.name,
    )


def _sealed(row: Any) -> Sealed:
    return Sealed(bytes(row.ciphertext), bytes(row.nonce), bytes(row.wrapped_key), str(row.key_id))


class StoreSecrets:
    """Sealed secrets and their audit log, in the gateway's database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get_secret(self, owner: Owner) -> Sealed | None:
        async with self.store._read("read a secret") as conn:
            row = (await conn.execute(sa.select(secrets).where(*_where(owner)))).first()
            return _sealed(row) if row is not None else None

    async def put_secret(self, owner: Owner, sealed: Sealed) -> None:
        values = {
            "ciphertext": sealed.ciphertext,
            "nonce": sealed.nonce,
            "wrapped_key": sealed.wrapped_key,
            "key_id": sealed.key_id,
            "updated_at": _now(),
        }
        async with self.store._write("store a secret") as tx:
            updated = await tx.conn.execute(sa.update(secrets).where(*_where(owner)).values(**values))
            if not updated.rowcount:
                await tx.conn.execute(
                    sa.insert(secrets).values(
                        tenant=owner.tenant,
                        user_id=owner.user,
                        provider=owner.provider,
                        name=owner.name,
                        **values,
                    )
                )

    async def delete_secret(self, owner: Owner) -> bool:
        async with self.store._write("delete a secret") as tx:
            return bool((await tx.conn.execute(sa.delete(secrets).where(*_where(owner)))).rowcount)

    async def all_secrets(self) -> Sequence[tuple[Owner, Sealed]]:
        async with self.store._read("list secrets") as conn:
            rows = await conn.execute(sa.select(secrets))
            return [(Owner(r.tenant, r.user_id, r.provider, r.name), _sealed(r)) for r in rows]

    async def audit(self, owner: Owner, *, action: str, tool: str | None, outcome: str) -> None:
        async with self.store._write("record a secret's use") as tx:
            await tx.conn.execute(
                sa.insert(secret_audit).values(
                    at=_now(),
                    tenant=owner.tenant,
                    user_id=owner.user,
                    provider=owner.provider,
                    name=owner.name,
                    action=action,
                    tool=tool,
                    outcome=outcome,
                )
            )

    async def audit_log(self, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
        """The tenant's newest audit records first."""
        async with self.store._read("read the secrets audit log") as conn:
            rows = await conn.execute(
                sa.select(secret_audit)
                .where(secret_audit.c.tenant == tenant)
                .order_by(secret_audit.c.id.desc())
                .limit(limit)
            )
            return [
                {
                    "at": _utc(r.at).isoformat(),
                    "user": r.user_id,
                    "provider": r.provider,
                    "name": r.name,
                    "action": r.action,
                    "tool": r.tool,
                    "outcome": r.outcome,
                }
                for r in rows
            ]
