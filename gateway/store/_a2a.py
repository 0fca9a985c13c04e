"""A2A tasks the gateway's A2A front serves, and their push notification configs (ADR 0037).

A task belongs to one agent of one gateway (``agent`` is ``{gateway}/{agent}``) and one caller
(``owner``); every read names all three, so a caller sees only their own tasks. Bodies are the
A2A JSON the front gives; a push config's body arrives sealed (it may carry a credential).
"""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store._appender import Appender
from gateway.store._engine import StoreError
from gateway.store._schema import a2a_push, a2a_tasks
from gateway.store._store import Store

_CHANGED = ("context_id", "state", "updated_ns", "body")


@functools.cache
def _upsert(dialect: str) -> sa.Insert:
    """Insert a task, or replace its state when the row of that id is the same caller's task of
    the same agent (a row that is someone else's stays as it is: the statement changes nothing);
    in ``dialect``'s words (postgresql, else sqlite's)."""
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(a2a_tasks)
    new, c = statement.excluded, a2a_tasks.c
    mine = (c.tenant == new.tenant) & (c.agent == new.agent) & (c.owner == new.owner)
    upsert: sa.Insert = statement.on_conflict_do_update(
        index_elements=[c.id], set_={k: new[k] for k in _CHANGED}, where=mine
    )
    return upsert


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task as stored: who and what it is, its list position, its A2A JSON."""

    id: str
    tenant: str
    agent: str
    owner: str
    context_id: str
    state: int
    updated_ns: int
    body: str


class StoreA2a:
    """The A2A front's tasks and push configs."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # On a SQLite file, tasks are written by a plain sqlite3 connection of their own: a
        # task is saved at least once a message, and the async engine's transaction costs
        # about a millisecond of the event loop's time (see gateway/store/_appender.py).
        self._sqlite = Appender.for_url(
            store._engine.url, a2a_tasks, durable=True, statement=_upsert("sqlite")
        )

    async def save_task(self, row: TaskRow) -> None:
        """Insert or replace the task (an upsert); a task id never moves to another owner or
        agent: a row of that id that is someone else's stays as it is, refused."""
        if await self.save_tasks([row]):
            raise StoreError(f"A2A task {row.id!r} belongs to another caller or agent")

    async def save_tasks(self, rows: Sequence[TaskRow]) -> list[str]:
        """Insert or replace the tasks, in one transaction, as :meth:`save_task` does each; the
        ids of those refused (another caller's or agent's).

        Raises:
            StoreError: the database did not take them (says what to check).
        """
        values = [dataclasses.asdict(row) for row in rows]
        if self._sqlite is not None:
            try:
                counts = await self._sqlite.each(values)
            except sqlite3.Error as exc:
                raise StoreError(
                    f"the store at {self.store.url} could not save A2A tasks: {exc}. "
                    "Check that the database file is writable and its disk not full."
                ) from exc
        else:
            async with self.store._transaction(self.store._writer, "save A2A tasks") as conn:
                counts = [(await conn.execute(_upsert(conn.dialect.name), one)).rowcount for one in values]
        return [row.id for row, count in zip(rows, counts, strict=True) if not count]

    async def aclose(self) -> None:
        """Close the tasks' SQLite connection (if one was opened)."""
        if self._sqlite is not None:
            await self._sqlite.aclose()

    async def get_task(self, tenant: str, agent: str, owner: str, task_id: str) -> str | None:
        c = a2a_tasks.c
        query = sa.select(c.body).where(
            c.id == task_id, c.tenant == tenant, c.agent == agent, c.owner == owner
        )
        async with self.store._read("read an A2A task") as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def list_tasks(
        self,
        tenant: str,
        agent: str,
        owner: str,
        *,
        context_id: str = "",
        state: int = 0,
        after_ns: int | None = None,
        before: tuple[int, str] | None = None,
        limit: int = 50,
    ) -> tuple[list[TaskRow], int]:
        """One page of the caller's tasks, newest status first (then by id, descending), and how
        many match in all. ``before``: the (updated_ns, id) of the last task of the page before."""
        c = a2a_tasks.c
        where: list[sa.ColumnElement[bool]] = [c.tenant == tenant, c.agent == agent, c.owner == owner]
        if context_id:
            where.append(c.context_id == context_id)
        if state:
            where.append(c.state == state)
        if after_ns is not None:
            where.append(c.updated_ns >= after_ns)
        count = sa.select(sa.func.count()).select_from(a2a_tasks).where(*where)
        if before is not None:
            where.append(
                sa.or_(c.updated_ns < before[0], sa.and_(c.updated_ns == before[0], c.id < before[1]))
            )
        query = sa.select(a2a_tasks).where(*where).order_by(c.updated_ns.desc(), c.id.desc()).limit(limit)
        async with self.store._read("list A2A tasks") as conn:
            total = int((await conn.execute(count)).scalar_one())
            rows = [TaskRow(**r._mapping) for r in await conn.execute(query)]
        return rows, total

    async def delete_task(self, tenant: str, agent: str, owner: str, task_id: str) -> None:
        c = a2a_tasks.c
        async with self.store._transaction(self.store._writer, "delete an A2A task") as conn:
            await conn.execute(
                sa.delete(a2a_tasks).where(
                    c.id == task_id, c.tenant == tenant, c.agent == agent, c.owner == owner
                )
            )
            await conn.execute(
                sa.delete(a2a_push).where(
                    a2a_push.c.task_id == task_id, a2a_push.c.tenant == tenant, a2a_push.c.owner == owner
                )
            )

    async def set_push(self, task_id: str, config_id: str, tenant: str, owner: str, body: str) -> None:
        c = a2a_push.c
        async with self.store._transaction(self.store._writer, "save an A2A push config") as conn:
            await conn.execute(sa.delete(a2a_push).where(c.task_id == task_id, c.config_id == config_id))
            await conn.execute(
                sa.insert(a2a_push).values(
                    task_id=task_id, config_id=config_id, tenant=tenant, owner=owner, body=body
                )
            )

    async def get_push(
        self, task_id: str, tenant: str | None = None, owner: str | None = None
    ) -> Sequence[str]:
        """The task's push configs (sealed): the caller's, or (no caller: dispatch) everyone's."""
        c = a2a_push.c
        where = [c.task_id == task_id]
        if tenant is not None and owner is not None:
            where += [c.tenant == tenant, c.owner == owner]
        query = sa.select(c.body).where(*where).order_by(c.config_id)
        async with self.store._read("read A2A push configs") as conn:
            return [str(b) for b in (await conn.execute(query)).scalars()]

    async def delete_push(self, task_id: str, tenant: str, owner: str, config_id: str | None) -> None:
        c = a2a_push.c
        where = [c.task_id == task_id, c.tenant == tenant, c.owner == owner]
        if config_id is not None:
            where.append(c.config_id == config_id)
        async with self.store._transaction(self.store._writer, "delete A2A push configs") as conn:
            await conn.execute(sa.delete(a2a_push).where(*where))
