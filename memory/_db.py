"""Memory's edge of the database: transactions on the engine it is given, errors mapped once.

Writers open their transaction with the ``write_options`` the owner of the engine asks for (the
gateway's store takes SQLite's write lock up front with one), so memory and the store queue for
one lock instead of failing to upgrade a read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from memory._schema import migrate
from memory._types import Unavailable


class Db:
    def __init__(self, engine: AsyncEngine, write_options: Mapping[str, Any] | None = None) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**dict(write_options or {}))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self) -> None:
        async with self.write() as conn:
            await migrate(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise Unavailable(f"memory's database failed: {_first_line(exc)}") from None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._writer.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise Unavailable(f"memory's database failed: {_first_line(exc)}") from None


class Row:
    """A row just written, read through the same attribute names as a fetched one."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # (for mypy: every column is set in __init__)
        raise AttributeError(name)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
