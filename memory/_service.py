"""The memory service: memories, their events and records, extraction, for every tenant.

Every operation names the tenant it acts for, and a memory of another tenant is answered as one
that does not exist. An ``actor_id`` given to a record operation scopes it to that actor's
records (the MCP target passes the caller's); the AgentCore API, like AgentCore, lets a tenant's
keys read every actor of the tenant's memories.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from memory._db import Db
from memory._direct import DirectWrites
from memory._embed import Embedder
from memory._events import Events
from memory._extract import Extractor
from memory._llm import ModelSettings
from memory._memories import (
    check_expiry,
    check_models,
    check_name,
    check_namespace,
    memory_row,
    memory_view,
    modified,
    new_id,
    offset,
    page_size,
    strategies_from,
    token,
)
from memory._records import Records, check_filters
from memory._schema import memories
from memory._types import (
    Event,
    Invalid,
    Job,
    MemoryView,
    NotFound,
    Page,
    Record,
)

logger = logging.getLogger(__name__)
_SWEEP_SECONDS = 60.0
VIEW_SECONDS = 1.0  # how long a memory read is used again (another replica's change shows after it)


class MemoryService(DirectWrites):
    """Memory for every tenant, on one database, with this process's search indexes."""

    def __init__(
        self,
        engine: AsyncEngine,
        embedder: Embedder,
        *,
        model: ModelSettings | None = None,
        model_choices: Sequence[str] = (),
        write_options: Mapping[str, Any] | None = None,
        window: float = 0.5,
        max_wait: float = 2.0,
        attempts: int = 3,
        backoff: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = Db(engine, write_options)
        self._views: dict[tuple[str, str], tuple[float, MemoryView]] = {}  # (a second's cache)
        self.model = model
        # The model ids a custom strategy may name (besides the configured one): the operator's
        # key or identity pays for them, so a tenant picks only among those the operator allows.
        self.model_choices = frozenset(model_choices) | ({model.model} if model is not None else set())
        self.clock = clock
        self.events = Events(self.db, clock)
        self.records = Records(self.db, embedder, clock)
        self.extractor = Extractor(
            self.db,
            self.events,
            self.records,
            model,
            window=window,
            max_wait=max_wait,
            attempts=attempts,
            backoff=backoff,
            clock=clock,
        )

    async def open(self) -> None:
        """Create or migrate memory's tables."""
        await self.db.migrate()

    async def run(self) -> None:
        """Extraction and expiry, until cancelled (every process serving memory runs this)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.extractor.run, self._memory_any_tenant)
            tg.start_soon(self._background, "load the search indexes", self.records.warm)
            while True:
                await self._background("expire events", self.events.expire)
                await self._background("expire records", self.records.expire)
                await anyio.sleep(_SWEEP_SECONDS)

    async def _background(self, what: str, work: Callable[[], Awaitable[object]]) -> None:
        """Background work that fails (the database away for a moment) is logged and tried again
        later: it never takes the process down."""
        try:
            await work()
        except Exception:  # (the boundary of background work)
            logger.exception("memory could not %s", what)

    # -- memories ----------------------------------------------------------------------------

    async def create_memory(
        self,
        tenant: str,
        *,
        name: Any,
        description: str | None = None,
        event_expiry_days: Any = 90,
        strategies: Any = None,
        client_token: str | None = None,
    ) -> MemoryView:
        check_name(name)
        days = check_expiry(event_expiry_days)
        now = self.clock()
        made = strategies_from(strategies or [], now=now)
        check_models(made, made, self.model is not None, self.model_choices)
        view = MemoryView(
            id=new_id(name),
            tenant=tenant,
            name=name,
            description=description,
            event_expiry_days=days,
            strategies=made,
            created_at=now,
            updated_at=now,
        )
        async with self.db.write() as conn:
            taken = (
                await conn.execute(
                    sa.select(memories).where(memories.c.tenant == tenant, memories.c.name == name)
                )
            ).first()
            if taken is not None:
                existing = memory_view(taken)
                if client_token and orjson.loads(taken.body).get("clientToken") == client_token:
                    return existing
                # (AgentCore's wording and error: the SDK's create_or_get_memory looks for both)
                raise Invalid(f"a memory named {name!r} already exists ({existing.id}): pick another name")
            await conn.execute(sa.insert(memories).values(**memory_row(view, client_token)))
        return view

    async def get_memory(self, tenant: str, memory_id: str) -> MemoryView:
        """The tenant's memory (read again after `VIEW_SECONDS`: every call checks it exists)."""
        seen = self._views.get((tenant, memory_id))
        if seen is not None and time.monotonic() - seen[0] < VIEW_SECONDS:
            return seen[1]
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(memories).where(memories.c.id == memory_id, memories.c.tenant == tenant)
                )
            ).first()
        if row is None:
            raise NotFound(f"there is no memory {memory_id!r}: ListMemories shows the memories there are")
        if len(self._views) > 10_000:
            self._views.clear()
        view = memory_view(row)
        self._views[(tenant, memory_id)] = (time.monotonic(), view)
        return view

    async def find_memory(self, tenant: str, name_or_id: str) -> MemoryView:
        """A memory of the tenant by its id, or by its name (names have no '-', ids always do)."""
        column = memories.c.id if "-" in name_or_id else memories.c.name
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(memories).where(column == name_or_id, memories.c.tenant == tenant)
                )
            ).first()
        if row is None:
            raise NotFound(f"there is no memory {name_or_id!r}: ListMemories shows the memories there are")
        return memory_view(row)

    async def _memory_any_tenant(self, memory_id: str) -> MemoryView | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(memories).where(memories.c.id == memory_id))).first()
        return memory_view(row) if row is not None else None

    async def list_memories(
        self, tenant: str, max_results: Any = None, next_token: str | None = None
    ) -> Page:
        size, start = page_size(max_results, 20, 100), offset(next_token)
        async with self.db.read() as conn:
            rows = list(
                await conn.execute(
                    sa.select(memories)
                    .where(memories.c.tenant == tenant)
                    .order_by(memories.c.created, memories.c.id)
                    .offset(start)
                    .limit(size + 1)
                )
            )
        return Page(
            items=[memory_view(r) for r in rows[:size]],
            next_token=token(start + size) if len(rows) > size else None,
        )

    async def update_memory(
        self,
        tenant: str,
        memory_id: str,
        *,
        description: str | None = None,
        event_expiry_days: Any = None,
        add: Any = None,
        modify: Any = None,
        delete: Any = None,
    ) -> MemoryView:
        now = self.clock()
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    sa.select(memories).where(memories.c.id == memory_id, memories.c.tenant == tenant)
                )
            ).first()
            if row is None:
                raise NotFound(f"there is no memory {memory_id!r}")
            view = memory_view(row)
            strategies = list(view.strategies)
            for item in delete or []:
                sid = item.get("memoryStrategyId") if isinstance(item, dict) else None
                view.strategy(str(sid))  # NotFound names it
                strategies = [s for s in strategies if s.strategy_id != sid]
            for i, item in enumerate(modify or []):
                strategies = modified(strategies, item, f"memoryStrategies.modifyMemoryStrategies[{i}]", now)
            added = strategies_from(
                add or [], existing=strategies, now=now, where="memoryStrategies.addMemoryStrategies"
            )
            check_models(added, strategies + added, self.model is not None, self.model_choices)
            view = view.model_copy(
                update={
                    "description": description if description is not None else view.description,
                    "event_expiry_days": check_expiry(event_expiry_days)
                    if event_expiry_days is not None
                    else view.event_expiry_days,
                    "strategies": strategies + added,
                    "updated_at": now,
                }
            )
            await conn.execute(
                sa.update(memories)
                .where(memories.c.id == memory_id)
                .values(body=memory_row(view, orjson.loads(row.body).get("clientToken"))["body"], updated=now)
            )
        self._views.pop((tenant, memory_id), None)
        return view

    async def delete_memory(self, tenant: str, memory_id: str) -> MemoryView:
        view = await self.get_memory(tenant, memory_id)
        self._views.pop((tenant, memory_id), None)
        async with self.db.write() as conn:
            await conn.execute(sa.delete(memories).where(memories.c.id == memory_id))
            await self.events.forget_memory(conn, memory_id)
            await self.records.forget_memory(conn, memory_id)
            await self.extractor.forget_memory(conn, memory_id)
        return view

    # -- events ------------------------------------------------------------------------------

    async def create_event(
        self,
        tenant: str,
        memory_id: str,
        *,
        actor_id: Any,
        session_id: Any,
        timestamp: float | None = None,
        payload: Any,
        branch: Any = None,
        metadata: Any = None,
        extraction_mode: str | None = None,
        client_token: str | None = None,
    ) -> Event:
        memory = await self.get_memory(tenant, memory_id)
        if extraction_mode not in (None, "SKIP", "DEFAULT", "EXTRACT"):
            raise Invalid(f"extractionMode must be SKIP or left out, not {extraction_mode!r}")
        extract = extraction_mode != "SKIP"
        event, new = await self.events.create(
            memory,
            actor_id=actor_id,
            session_id=session_id,
            timestamp=self.clock() if timestamp is None else timestamp,
            payload=payload,
            branch=branch,
            metadata=metadata,
            extract=extract,
            client_token=client_token,
        )
        conversational = any("conversational" in item for item in event.payload)
        if new and extract and memory.strategies and conversational:
            await self.extractor.enqueue(memory, event)
        return event

    async def get_event(
        self, tenant: str, memory_id: str, actor_id: str, session_id: str, event_id: str
    ) -> Event:
        await self.get_memory(tenant, memory_id)
        return await self.events.get(memory_id, actor_id, session_id, event_id)

    async def delete_event(
        self, tenant: str, memory_id: str, actor_id: str, session_id: str, event_id: str
    ) -> str:
        await self.get_memory(tenant, memory_id)
        return await self.events.delete(memory_id, actor_id, session_id, event_id)

    async def list_events(
        self, tenant: str, memory_id: str, actor_id: str, session_id: str, **options: Any
    ) -> Page:
        await self.get_memory(tenant, memory_id)
        return await self.events.listing(memory_id, actor_id, session_id, **options)

    async def list_actors(self, tenant: str, memory_id: str, **options: Any) -> Page:
        await self.get_memory(tenant, memory_id)
        return await self.events.actors(memory_id, **options)

    async def list_sessions(self, tenant: str, memory_id: str, actor_id: str, **options: Any) -> Page:
        await self.get_memory(tenant, memory_id)
        return await self.events.sessions(memory_id, actor_id, **options)

    # -- records -----------------------------------------------------------------------------

    async def retrieve(
        self,
        tenant: str,
        memory_id: str,
        *,
        query: Any,
        namespace: Any = None,
        top_k: Any = None,
        strategy_id: str | None = None,
        filters: Any = None,
        actor_id: str | None = None,
        prefixes: Sequence[str] = (),
    ) -> list[Record]:
        """The best records for ``query``: under ``namespace`` (a prefix), or under any of
        ``prefixes`` (the MCP target's scope of one caller), one ranking for all of them."""
        await self.get_memory(tenant, memory_id)
        if not isinstance(query, str) or not 1 <= len(query) <= 10_000:
            raise Invalid("searchCriteria.searchQuery must be text of 1 to 10,000 characters")
        k = page_size(top_k, 10, 100) if top_k is not None else 10
        within = [check_namespace(p) for p in prefixes]
        if namespace not in (None, "", "/"):
            within.append(check_namespace(namespace))
        return await self.records.search(
            memory_id,
            query,
            k=k,
            prefixes=within,
            strategy_id=strategy_id,
            actor_id=actor_id,
            filters=check_filters(filters, "searchCriteria.metadataFilters"),
        )

    async def list_records(
        self,
        tenant: str,
        memory_id: str,
        *,
        namespace: Any = None,
        strategy_id: str | None = None,
        filters: Any = None,
        actor_id: str | None = None,
        max_results: Any = None,
        next_token: str | None = None,
    ) -> Page:
        await self.get_memory(tenant, memory_id)
        size, start = page_size(max_results, 20, 100), offset(next_token)
        prefix = check_namespace(namespace) if namespace not in (None, "", "/") else None
        found = await self.records.listing(
            memory_id,
            prefix=prefix,
            strategy_id=strategy_id,
            actor_id=actor_id,
            filters=check_filters(filters),
            start=start,
            most=size + 1,
        )
        return Page(items=found[:size], next_token=token(start + size) if len(found) > size else None)

    async def get_record(
        self, tenant: str, memory_id: str, record_id: str, actor_id: str | None = None
    ) -> Record:
        await self.get_memory(tenant, memory_id)
        record = await self.records.get(memory_id, record_id)
        if actor_id is not None and record.actor_id != actor_id:
            raise NotFound(f"memory {memory_id} has no record {record_id}")
        return record

    async def delete_record(
        self, tenant: str, memory_id: str, record_id: str, actor_id: str | None = None
    ) -> str:
        await self.get_record(tenant, memory_id, record_id, actor_id)
        await self.records.delete(memory_id, [record_id])
        return record_id

    async def explain(self, tenant: str, memory_id: str, record_id: str) -> tuple[Record, list[Event]]:
        """A record and the events it was made from (those not expired or deleted since)."""
        record = await self.get_record(tenant, memory_id, record_id)
        return record, await self.events.many(memory_id, record.sources.get("events", []))

    # -- extraction jobs ---------------------------------------------------------------------

    async def list_jobs(self, tenant: str, memory_id: str, **options: Any) -> Page:
        await self.get_memory(tenant, memory_id)
        return await self.extractor.listing(memory_id, **options)

    async def start_job(self, tenant: str, memory_id: str, job_id: str) -> str:
        await self.get_memory(tenant, memory_id)
        return await self.extractor.restart(memory_id, job_id)

    async def wait_idle(self, tenant: str, memory_id: str) -> list[Job]:
        """Wait until no job of the memory is pending or running; returns the jobs (tests and
        benchmarks put a deadline around it)."""
        await self.get_memory(tenant, memory_id)
        while True:
            page = await self.extractor.listing(memory_id, max_results=50)
            if not any(j.status in ("PENDING", "RUNNING") for j in page.items):
                return list(page.items)
            await anyio.sleep(0.05)
