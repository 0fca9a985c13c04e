"""Extraction: events become long-term records, in seconds, batched per session.

An event that may be extracted joins its session's pending job; the job waits ``window``
seconds for more events (at most ``max_wait`` after its first), then a worker of any process
claims it (a conditional update, so two replicas never run one job) and runs every strategy of
the memory on the job's conversation at once. Each strategy's candidates are consolidated with the
records most like them: an exact or near-exact repeat is skipped without asking the model, the
rest go to the model in one request that decides ADD, UPDATE, SKIP or DELETE per candidate.
Every record keeps its sources: the events, the job and the strategy it came from.

A job that fails (the model timed out, or answered garbage every time) is tried again later, up
to ``attempts`` times, then kept as ``FAILED`` with the reason: ``StartMemoryExtractionJob``
runs it again. Strategies that finished are not run twice. No event is lost either way: events
are stored before their job is touched.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import anyio
import orjson
import sqlalchemy as sa

from memory._db import Db
from memory._events import Events, text_of
from memory._llm import ModelError, ModelSettings, ask_json, model_client
from memory._memories import offset, page_size, resolve, token
from memory._prompts import (
    CONSOLIDATION,
    EXTRACTION,
    REFLECTION,
    Decisions,
    Episodes,
    Facts,
    Preferences,
    Reflections,
    Summary,
    consolidation_prompt,
    episode_text,
    extraction_prompt,
    reflection_prompt,
    with_custom,
)
from memory._records import NewRecord, Records
from memory._schema import jobs
from memory._types import Event, Invalid, Job, MemoryView, NotFound, Page, Record, Strategy

logger = logging.getLogger(__name__)
SAME = 0.95  # cosine at or above which a candidate repeats a record (skipped without the model)
NEAR = 0.35  # cosine below which an existing record is not worth showing the model
LEASE = 300.0
RUNNING = 4  # jobs one process runs at once
MAX_PROMPT_CHARS = 60_000  # of conversation in one extraction request (the newest turns)
MAX_JOB_EVENTS = 50  # events in one job: a session's flood becomes several jobs


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def _job(row: Any) -> Job:
    body = orjson.loads(row.events)
    return Job(
        job_id=row.id,
        memory_id=row.memory_id,
        actor_id=row.actor_id,
        session_id=row.session_id,
        strategy_id=row.strategy_id,
        status=row.status,
        event_ids=body["events"],
        attempts=row.attempts,
        failure_reason=row.error,
        created_at=row.created,
        updated_at=row.updated,
    )


class Extractor:
    """Extraction jobs: queued as events arrive, run by `run` in every process that serves memory."""

    def __init__(
        self,
        db: Db,
        events: Events,
        records: Records,
        model: ModelSettings | None,
        *,
        window: float = 0.5,
        max_wait: float = 2.0,
        attempts: int = 3,
        backoff: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db, self.events, self.records, self.model = db, events, records, model
        self.window, self.max_wait, self.attempts, self.backoff = window, max_wait, attempts, backoff
        self.clock = clock
        self._wake = anyio.Event()
        self._running = 0  # jobs claimed by this process and not finished

    # -- queueing ----------------------------------------------------------------------------

    async def enqueue(self, memory: MemoryView, event: Event) -> None:
        """Add an event to its session's pending job (made if there is none)."""
        now = self.clock()
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    sa.select(jobs)
                    .where(
                        jobs.c.memory_id == memory.id,
                        jobs.c.actor_id == event.actor_id,
                        jobs.c.session_id == event.session_id,
                        jobs.c.status == "PENDING",
                        jobs.c.strategy_id.is_(None),
                        jobs.c.attempts == 0,
                    )
                    .order_by(jobs.c.created.desc())
                    .limit(1)
                )
            ).first()
            if row is not None and len(orjson.loads(row.events)["events"]) >= MAX_JOB_EVENTS:
                row = None  # (this one is full: the event starts the session's next job)
            if row is None:
                body = {"events": [event.event_id], "done": []}
                await conn.execute(
                    sa.insert(jobs).values(
                        id=f"job-{uuid.uuid4().hex}",
                        memory_id=memory.id,
                        actor_id=event.actor_id,
                        session_id=event.session_id,
                        strategy_id=None,
                        status="PENDING",
                        events=orjson.dumps(body).decode(),
                        attempts=0,
                        error=None,
                        due=now + self.window,
                        lease=0.0,
                        created=now,
                        updated=now,
                    )
                )
            else:
                body = orjson.loads(row.events)
                body["events"].append(event.event_id)
                due = min(now + self.window, row.created + self.max_wait)
                await conn.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == row.id)
                    .values(events=orjson.dumps(body).decode(), due=max(due, row.due), updated=now)
                )
        self._wake.set()

    async def restart(self, memory_id: str, job_id: str) -> str:
        """Run a failed job again (``StartMemoryExtractionJob``)."""
        async with self.db.write() as conn:
            row = (
                await conn.execute(sa.select(jobs).where(jobs.c.memory_id == memory_id, jobs.c.id == job_id))
            ).first()
            if row is None:
                raise NotFound(f"memory {memory_id} has no extraction job {job_id}")
            if row.status != "FAILED":
                raise Invalid(
                    f"extraction job {job_id} is {row.status}; only a FAILED job can be started again"
                )
            await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id)
                .values(status="PENDING", attempts=0, error=None, due=self.clock(), updated=self.clock())
            )
        self._wake.set()
        return job_id

    async def listing(
        self,
        memory_id: str,
        *,
        status: str | None = None,
        actor_id: str | None = None,
        session_id: str | None = None,
        strategy_id: str | None = None,
        max_results: Any = None,
        next_token: str | None = None,
    ) -> Page:
        size, start = page_size(max_results, 20, 50), offset(next_token)
        query = sa.select(jobs).where(jobs.c.memory_id == memory_id)
        for column, value in (
            (jobs.c.status, status),
            (jobs.c.actor_id, actor_id),
            (jobs.c.session_id, session_id),
        ):
            if value:
                query = query.where(column == value)
        async with self.db.read() as conn:
            rows = list(
                await conn.execute(query.order_by(jobs.c.created.desc()).offset(start).limit(size + 1))
            )
        found = [_job(r) for r in rows]
        if strategy_id:
            found = [j for j in found if j.strategy_id in (None, strategy_id)]
        return Page(items=found[:size], next_token=token(start + size) if len(rows) > size else None)

    async def forget_memory(self, conn: Any, memory_id: str) -> None:
        await conn.execute(sa.delete(jobs).where(jobs.c.memory_id == memory_id))

    # -- running -----------------------------------------------------------------------------

    async def run(
        self, memory_of: Callable[[str], Awaitable[MemoryView | None]], *, poll: float = 0.5
    ) -> None:
        """Claim and run due jobs until cancelled (also those other replicas queued)."""
        async with anyio.create_task_group() as tg:
            while True:
                self._wake = anyio.Event()
                try:  # (no more than can start at once: a claimed job's lease runs while it waits)
                    claimed, next_due = await self._claim(RUNNING - self._running)
                except Exception:  # the database is away for a moment: the next round tries again
                    logger.exception("memory extraction could not claim jobs")
                    claimed, next_due = [], self.clock() + poll
                self._running += len(claimed)
                for row in claimed:
                    tg.start_soon(self._run_one, row, memory_of)
                wait = max(0.0, min(poll, (next_due or math.inf) - self.clock()))
                with anyio.move_on_after(wait):
                    await self._wake.wait()

    async def _claim(self, room: int) -> tuple[list[Any], float | None]:
        now = self.clock()
        if room <= 0:
            return [], now + 0.1
        async with self.db.read() as conn:
            rows = list(
                await conn.execute(
                    sa.select(jobs)
                    .where(
                        sa.or_(
                            sa.and_(jobs.c.status == "PENDING", jobs.c.due <= now),
                            sa.and_(jobs.c.status == "RUNNING", jobs.c.lease < now),
                        )
                    )
                    .order_by(jobs.c.due)
                    .limit(room)
                )
            )
            upcoming = (
                await conn.execute(
                    sa.select(sa.func.min(jobs.c.due)).where(jobs.c.status == "PENDING", jobs.c.due > now)
                )
            ).scalar()
        claimed = []
        for row in rows:
            async with self.db.write() as conn:
                done = await conn.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == row.id, jobs.c.status == row.status, jobs.c.updated == row.updated)
                    .values(status="RUNNING", lease=now + LEASE, attempts=row.attempts + 1, updated=now)
                )
            if done.rowcount == 1:
                claimed.append(row)
        return claimed, upcoming

    async def _run_one(
        self,
        row: Any,
        memory_of: Callable[[str], Awaitable[MemoryView | None]],
    ) -> None:
        try:
            body = orjson.loads(row.events)
            error: str | None = None
            try:
                memory = await memory_of(row.memory_id)
                if memory is not None:
                    await self._extract(memory, row, body)
            except (ModelError, Invalid) as exc:
                error = str(exc)
            except Exception as exc:  # a job must end FAILED or COMPLETED, never stuck RUNNING
                logger.exception("memory extraction job %s failed", row.id)
                error = f"{type(exc).__name__}: {exc}"
            try:
                await self._finish(row, body, self._redacted(error))
            except Exception:  # (the database away: the job's lease runs out and it is run again)
                logger.exception("memory extraction job %s could not be recorded as done", row.id)
        finally:
            self._running -= 1
            self._wake.set()  # (room for another job)

    def _redacted(self, error: str | None) -> str | None:
        """A failure reason as a tenant may read it: without the operator's model URL."""
        if error is None or self.model is None or not self.model.url:
            return error
        return error.replace(self.model.url, "the memory model's URL")

    async def _finish(self, row: Any, body: dict[str, Any], error: str | None) -> None:
        now = self.clock()
        attempts = row.attempts + 1
        if error is None:
            values: dict[str, Any] = {"status": "COMPLETED", "error": None}
        elif attempts < self.attempts:
            values = {"status": "PENDING", "error": error, "due": now + self.backoff * 2 ** (attempts - 1)}
        else:
            values = {"status": "FAILED", "error": error}
            logger.warning("memory extraction job %s failed after %d attempts: %s", row.id, attempts, error)
        async with self.db.write() as conn:
            await conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == row.id)
                .values(events=orjson.dumps(body).decode(), updated=now, **values)
            )
        if values["status"] == "PENDING":
            self._wake.set()

    async def _extract(self, memory: MemoryView, row: Any, body: dict[str, Any]) -> None:
        found = await self.events.many(memory.id, body["events"])
        turns = _latest([turn for event in found for turn in text_of(event)])
        if not turns:
            return
        strategies = [s for s in memory.strategies if row.strategy_id in (None, s.strategy_id)]
        strategies = [s for s in strategies if s.strategy_id not in body["done"]]
        sources = {"events": [e.event_id for e in found], "job": row.id}
        problems: list[str] = []

        async def one(strategy: Strategy) -> None:
            try:
                await self._strategy(memory, strategy, row.actor_id, row.session_id, turns, sources)
            except ModelError as exc:
                problems.append(f"strategy {strategy.strategy_id}: {exc}")
            else:
                body["done"].append(strategy.strategy_id)

        async with anyio.create_task_group() as tg:
            for strategy in strategies:
                tg.start_soon(one, strategy)
        if problems:
            raise ModelError("; ".join(problems))

    async def _strategy(
        self,
        memory: MemoryView,
        strategy: Strategy,
        actor: str,
        session: str,
        turns: Sequence[tuple[str, str]],
        sources: dict[str, Any],
    ) -> None:
        if self.model is None:
            raise ModelError("no model is configured for memory extraction (SWITCHBOARD_MEMORY_MODEL)")
        settings = replace(self.model, model=strategy.model_id) if strategy.model_id else self.model
        client = model_client(settings)
        try:
            kind = strategy.kind
            system, schema = EXTRACTION[kind]
            system = with_custom(system, strategy.extraction_prompt)
            spaces = [
                n
                for t in strategy.namespaces
                if (n := resolve(t, actor=actor, session=session, strategy=strategy.strategy_id))
            ]
            expires = (
                self.clock() + strategy.record_expiry_days * 86400 if strategy.record_expiry_days else None
            )
            base = {"strategy": strategy.strategy_id, "session": session, **sources}
            if kind == "SUMMARIZATION":
                await self._summary(
                    memory, strategy, client, system, spaces, actor, session, turns, base, expires
                )
                return
            answer = await ask_json(client, system, extraction_prompt(turns), schema)
            texts = _texts(answer)
            for namespace in spaces:
                await self._consolidate(
                    memory, strategy, client, namespace, texts, actor, session, base, expires
                )
            if kind == "EPISODIC" and texts and strategy.reflection_namespaces:
                await self._reflect(memory, strategy, client, texts, actor, session, base, expires)
        finally:
            await client.aclose()

    async def _summary(
        self,
        memory: MemoryView,
        strategy: Strategy,
        client: Any,
        system: str,
        spaces: Sequence[str],
        actor: str,
        session: str,
        turns: Sequence[tuple[str, str]],
        sources: dict[str, Any],
        expires: float | None,
    ) -> None:
        for namespace in spaces:
            existing = [
                r
                for r in await self.records.listing(
                    memory.id, prefix=namespace, strategy_id=strategy.strategy_id, actor_id=actor
                )
                if r.namespaces == [namespace] and r.session_id == session
            ]
            previous = existing[0] if existing else None
            answer = await ask_json(
                client, system, extraction_prompt(turns, previous.text if previous else None), Summary
            )
            merged = _merge_sources(previous, sources)
            await self.records.write(
                memory.id,
                [
                    NewRecord(
                        strategy.strategy_id,
                        namespace,
                        answer.summary,
                        actor,
                        session,
                        sources=merged,
                        expires=expires,
                        record_id=previous.memory_record_id if previous else None,
                    )
                ],
            )

    async def _reflect(
        self,
        memory: MemoryView,
        strategy: Strategy,
        client: Any,
        episodes: Sequence[str],
        actor: str,
        session: str,
        sources: dict[str, Any],
        expires: float | None,
    ) -> None:
        for template in strategy.reflection_namespaces:
            namespace = resolve(template, actor=actor, session=session, strategy=strategy.strategy_id)
            if namespace is None:
                continue
            known = [
                r.text
                for r in await self.records.listing(
                    memory.id, prefix=namespace, strategy_id=strategy.strategy_id, actor_id=actor, most=200
                )
                if r.namespaces == [namespace]  # (the prefix would also take /ann/ for /an/)
            ][:20]
            answer = await ask_json(client, REFLECTION, reflection_prompt(episodes, known), Reflections)
            await self._consolidate(
                memory, strategy, client, namespace, answer.reflections, actor, session, sources, expires
            )

    async def _consolidate(
        self,
        memory: MemoryView,
        strategy: Strategy,
        client: Any,
        namespace: str,
        texts: Sequence[str],
        actor: str,
        session: str,
        sources: dict[str, Any],
        expires: float | None,
    ) -> None:
        fresh: list[str] = []
        for text in texts:  # repeats within one answer
            if text.strip() and _norm(text) not in {_norm(t) for t in fresh}:
                fresh.append(text.strip())
        if not fresh:
            return
        neighbours = await self.records.similar(memory.id, namespace, fresh, actor)
        ask: list[tuple[str, list[Record]]] = []
        writes: list[NewRecord] = []
        for text, near in zip(fresh, neighbours, strict=True):
            if any((r.score or 0) >= SAME or _norm(r.text) == _norm(text) for r in near):
                continue  # said already: no model needed to know
            near = [r for r in near if (r.score or 0) >= NEAR]
            if near:
                ask.append((text, near))
            else:
                writes.append(
                    NewRecord(
                        strategy.strategy_id,
                        namespace,
                        text,
                        actor,
                        session,
                        sources=sources,
                        expires=expires,
                    )
                )
        deletes: list[str] = []
        if ask:
            system = with_custom(CONSOLIDATION, strategy.consolidation_prompt)
            prompt = consolidation_prompt(
                [(t, [(r.memory_record_id, r.text) for r in near]) for t, near in ask]
            )
            decided = {d.candidate: d for d in (await ask_json(client, system, prompt, Decisions)).decisions}
            for i, (text, near) in enumerate(ask):
                decision = decided.get(i)
                by_id = {r.memory_record_id: r for r in near}
                target = by_id.get(decision.record_id or "") if decision else None
                action = decision.action if decision else "ADD"
                if action in ("UPDATE", "DELETE") and target is None:
                    action = "ADD"  # it named no record it was shown: keep the candidate
                if action == "SKIP":
                    continue
                if action == "DELETE" and target is not None:
                    deletes.append(target.memory_record_id)
                    continue
                final = (decision.text if decision and decision.text else text).strip()
                writes.append(
                    NewRecord(
                        strategy.strategy_id,
                        namespace,
                        final,
                        actor,
                        session,
                        sources=_merge_sources(target, sources) if target else sources,
                        expires=expires,
                        record_id=target.memory_record_id if target else None,
                    )
                )
        if deletes:
            await self.records.delete(memory.id, deletes)
        await self.records.write(memory.id, writes)


def _latest(turns: list[tuple[str, str]], budget: int = MAX_PROMPT_CHARS) -> list[tuple[str, str]]:
    """The newest turns that fit the prompt's budget (a long turn cut to what is left)."""
    kept: list[tuple[str, str]] = []
    for role, text in reversed(turns):
        if budget <= 0:
            break
        kept.append((role, text[-budget:]))
        budget -= len(text)
    return kept[::-1]


def _texts(answer: Any) -> list[str]:
    if isinstance(answer, Facts):
        return answer.facts
    if isinstance(answer, Preferences):
        return [p.preference for p in answer.preferences]
    if isinstance(answer, Episodes):
        return [episode_text(e) for e in answer.episodes]
    return []


def _merge_sources(previous: Record | None, sources: dict[str, Any]) -> dict[str, Any]:
    """The sources of an updated record: every event it was ever made from, and its jobs."""
    if previous is None:
        return sources
    old = previous.sources or {}
    events = list(dict.fromkeys([*old.get("events", []), *sources.get("events", [])]))
    history = [*old.get("history", []), *([old["job"]] if "job" in old else [])]
    return {**sources, "events": events, "history": history, "previous": previous.text}
