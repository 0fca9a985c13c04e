"""Long-term records: written with their vectors, searched through each process's index.

Rows are the truth (``mem_records``); each process keeps, per memory, a hybrid `Index` of the
live records and what filters need of them (strategy, actor, metadata, expiry). Every write also
appends the record's id to ``mem_changes``; before a search the index reads the changes after the
last one it saw and reloads those records, so a record written on another replica is found on
this one at its next search (ADR 0045). On PostgreSQL a writer holds a per-memory advisory lock
until it commits, so change numbers commit in order and a reader never skips one.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from memory._db import Db, Row
from memory._embed import Embedder, EmbedderError
from memory._index import Index
from memory._schema import changes, records
from memory._types import Invalid, NotFound, Record, Unavailable

MAX_TEXT = 16_000
MAX_QUERY_TERMS_TEXT = 2_000  # BM25 reads this much of a query (the embedding reads 256 tokens)
_OPERATORS = (
    "EQUALS_TO",
    "EXISTS",
    "NOT_EXISTS",
    "BEFORE",
    "AFTER",
    "CONTAINS",
    "GREATER_THAN",
    "GREATER_THAN_OR_EQUALS",
    "LESS_THAN",
    "LESS_THAN_OR_EQUALS",
)


@dataclass(slots=True)
class NewRecord:
    """A record to write: where it goes, what it says, and where it came from."""

    strategy_id: str
    namespace: str
    text: str
    actor_id: str | None = None
    session_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)
    expires: float | None = None
    record_id: str | None = None  # an update keeps its id
    timestamp: float | None = None


@dataclass(slots=True)
class _Kept:
    """What a shelf keeps of a record: its row's fields (read by `to_record` as a row's), so a
    search answers from memory; ``meta`` is its metadata parsed, for filters."""

    id: str
    strategy_id: str
    namespace: str
    actor_id: str | None
    session_id: str | None
    content: str
    metadata: str
    sources: str
    created: float
    updated: float
    expires: float | None
    meta: dict[str, Any]

    @classmethod
    def of(cls, row: Any) -> _Kept:
        meta = orjson.loads(row.metadata) if row.metadata != "{}" else _EMPTY
        return cls(
            row.id,
            row.strategy_id,
            row.namespace,
            row.actor_id,
            row.session_id,
            row.content,
            row.metadata,
            row.sources,
            row.created,
            row.updated,
            row.expires,
            meta,
        )


_EMPTY: dict[str, Any] = {}


@dataclass(slots=True)
class _Shelf:
    index: Index
    kept: dict[str, _Kept]
    seen: int
    guard: threading.Lock = field(default_factory=threading.Lock)  # searches run in worker threads


def new_record_id() -> str:
    return f"mem-{uuid.uuid4()}"


def check_text(text: Any, where: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise Invalid(f"{where} must be non-empty text")
    if len(text) > MAX_TEXT:
        raise Invalid(f"{where} is {len(text):,} characters; a record holds at most {MAX_TEXT:,}")
    return text


_KINDS = ("stringValue", "stringListValue", "numberValue", "dateTimeValue")


def check_metadata(metadata: Any, where: str) -> dict[str, Any]:
    """A record's metadata as AgentCore allows it: up to 20 keys, each one kind of value."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > 20:
        raise Invalid(f"{where} must be a map of at most 20 keys to {{stringValue|numberValue|...}}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise Invalid(f"{where}: a key must be text of 1 to 128 characters")
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in _KINDS:
            raise Invalid(f"{where}[{key!r}] must have exactly one of {', '.join(_KINDS)}")
    try:
        size = len(orjson.dumps(metadata, default=str))
    except orjson.JSONEncodeError as exc:
        raise Invalid(f"{where} cannot be stored as JSON: {exc}; send numbers of at most 64 bits") from None
    if size > 8192:
        raise Invalid(f"{where} is {size:,} bytes as JSON; a record's metadata holds at most 8,192")
    return metadata


def check_filters(filters: Any, where: str = "metadataFilters") -> list[dict[str, Any]]:
    if filters is None:
        return []
    if not isinstance(filters, list):
        raise Invalid(f"{where} must be a list of {{left, operator, right}} filters")
    for i, f in enumerate(filters):
        key = (f.get("left") or {}).get("metadataKey") if isinstance(f, dict) else None
        if not isinstance(key, str) or f.get("operator") not in _OPERATORS:
            raise Invalid(
                f"{where}[{i}] needs left.metadataKey and an operator, one of {', '.join(_OPERATORS)}"
            )
        if f["operator"] not in ("EXISTS", "NOT_EXISTS") and not (f.get("right") or {}).get("metadataValue"):
            raise Invalid(f"{where}[{i}] with {f['operator']} needs right.metadataValue")
    return list(filters)


def matches(metadata: Mapping[str, Any], filters: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a record's (or event's) metadata passes every filter."""
    for f in filters:
        key = f["left"]["metadataKey"]
        op = f["operator"]
        have = _plain(metadata.get(key))
        if op == "EXISTS":
            ok = key in metadata
        elif op == "NOT_EXISTS":
            ok = key not in metadata
        else:
            want = _plain(f["right"]["metadataValue"])
            ok = have is not None and _compare(op, have, want)
        if not ok:
            return False
    return True


def _plain(value: Any) -> Any:
    if not isinstance(value, dict) or not value:
        return None
    kind, found = next(iter(value.items()))
    if kind == "dateTimeValue" and isinstance(found, str):
        return datetime.fromisoformat(found).timestamp()
    if kind == "dateTimeValue" and isinstance(found, datetime):
        return found.timestamp()
    return found


def _compare(op: str, have: Any, want: Any) -> bool:
    try:
        if op == "EQUALS_TO":
            return bool(have == want)
        if op == "CONTAINS":
            return want in have if isinstance(have, list | str) else False
        if op in ("BEFORE", "LESS_THAN"):
            return bool(have < want)
        if op in ("AFTER", "GREATER_THAN"):
            return bool(have > want)
        if op == "LESS_THAN_OR_EQUALS":
            return bool(have <= want)
        if op == "GREATER_THAN_OR_EQUALS":
            return bool(have >= want)
    except TypeError:  # a number compared with text: no match, not an error
        return False
    return False


def _lock_key(memory_id: str) -> int:
    return 7_341_100_000 + zlib.crc32(memory_id.encode())


def to_record(row: Any, score: float | None = None) -> Record:
    return Record(
        memory_record_id=row.id,
        content={"text": row.content},
        memory_strategy_id=row.strategy_id,
        namespaces=[row.namespace],
        created_at=row.created,
        timestamp=row.updated,
        metadata=orjson.loads(row.metadata) or None,
        expires_at=row.expires,
        score=score,
        actor_id=row.actor_id,
        session_id=row.session_id,
        sources=orjson.loads(row.sources),
    )


class Records:
    """The long-term records of every memory, and this process's indexes of them."""

    def __init__(self, db: Db, embedder: Embedder, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.embedder = embedder
        self.clock = clock
        self._shelves: dict[str, _Shelf] = {}
        self._searches = anyio.CapacityLimiter(2)  # (searches at once: the machine's cores, no more)
        self._locks: dict[str, anyio.Lock] = {}

    async def write(self, memory_id: str, items: Sequence[NewRecord]) -> list[Record]:
        """Add records, or replace those whose ``record_id`` is set; one transaction."""
        if not items:
            return []
        vectors = await self._embed([i.text for i in items])
        now = self.clock()
        rows: list[Row] = []
        async with self.db.write() as conn:
            await self._lock(conn, memory_id)
            for item, vector in zip(items, vectors, strict=True):
                record_id = item.record_id or new_record_id()
                created = now
                if item.record_id is not None:
                    mine = (records.c.id == record_id, records.c.memory_id == memory_id)
                    old = (await conn.execute(sa.select(records.c.created).where(*mine))).first()
                    if old is None:
                        raise NotFound(f"memory {memory_id} has no record {record_id}")
                    created = old.created
                    await conn.execute(sa.delete(records).where(*mine))
                row = {
                    "id": record_id,
                    "memory_id": memory_id,
                    "strategy_id": item.strategy_id,
                    "namespace": item.namespace,
                    "actor_id": item.actor_id,
                    "session_id": item.session_id,
                    "content": item.text,
                    "metadata": orjson.dumps(item.metadata, default=str).decode(),
                    "sources": orjson.dumps(item.sources).decode(),
                    "vector": np.asarray(vector, dtype=np.float32).tobytes(),
                    "embedder": self.embedder.name,
                    "created": created,
                    "updated": item.timestamp or now,
                    "expires": item.expires,
                }
                await conn.execute(sa.insert(records).values(**row))
                await conn.execute(sa.insert(changes).values(memory_id=memory_id, record_id=record_id))
                rows.append(Row(row))
        shelf = self._shelves.get(memory_id)
        if shelf is not None:
            for written_row, vector in zip(rows, vectors, strict=True):
                self._put(shelf, written_row, vector)
        return [to_record(r) for r in rows]

    async def delete(self, memory_id: str, record_ids: Sequence[str]) -> list[str]:
        """Delete records (from the rows and every index); returns those that existed."""
        if not record_ids:
            return []
        async with self.db.write() as conn:
            await self._lock(conn, memory_id)
            found = [
                r.id
                for r in await conn.execute(
                    sa.select(records.c.id).where(
                        records.c.memory_id == memory_id, records.c.id.in_(list(record_ids))
                    )
                )
            ]
            if found:
                await conn.execute(sa.delete(records).where(records.c.id.in_(found)))
                await conn.execute(
                    sa.insert(changes), [{"memory_id": memory_id, "record_id": r} for r in found]
                )
        shelf = self._shelves.get(memory_id)
        for record_id in found:
            if shelf is not None:
                self._drop(shelf, record_id)
        return found

    async def forget_memory(self, conn: AsyncConnection, memory_id: str) -> None:
        """Every record of a deleted memory, in the caller's transaction."""
        await conn.execute(sa.delete(records).where(records.c.memory_id == memory_id))
        await conn.execute(sa.delete(changes).where(changes.c.memory_id == memory_id))
        self._shelves.pop(memory_id, None)

    async def get(self, memory_id: str, record_id: str) -> Record:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(records).where(records.c.memory_id == memory_id, records.c.id == record_id)
                )
            ).first()
        if row is None or (row.expires is not None and row.expires <= self.clock()):
            raise NotFound(f"memory {memory_id} has no record {record_id}")
        return to_record(row)

    async def listing(
        self,
        memory_id: str,
        *,
        prefix: str | None = None,
        strategy_id: str | None = None,
        actor_id: str | None = None,
        filters: Sequence[Mapping[str, Any]] = (),
        start: int = 0,
        most: int | None = None,
    ) -> list[Record]:
        """The live records that match, newest first: ``most`` of them from ``start`` (paged in the
        database when there are no metadata filters, which are applied here)."""
        query = sa.select(records).where(records.c.memory_id == memory_id)
        if prefix:
            query = query.where(records.c.namespace.startswith(prefix, autoescape=True))
        if strategy_id:
            query = query.where(records.c.strategy_id == strategy_id)
        if actor_id is not None:
            query = query.where(records.c.actor_id == actor_id)
        now = self.clock()
        query = query.where(sa.or_(records.c.expires.is_(None), records.c.expires > now))
        query = query.order_by(records.c.created.desc(), records.c.id)
        if not filters and (start or most is not None):
            query = query.offset(start).limit(most)
        async with self.db.read() as conn:
            rows = list(await conn.execute(query))
        found = [to_record(r) for r in rows]
        if not filters:
            return found
        found = [r for r in found if matches(r.metadata or {}, filters)]
        return found[start : None if most is None else start + most]

    async def search(
        self,
        memory_id: str,
        query: str,
        *,
        k: int,
        prefixes: Sequence[str] = (),
        strategy_id: str | None = None,
        actor_id: str | None = None,
        filters: Sequence[Mapping[str, Any]] = (),
    ) -> list[Record]:
        """The ``k`` best live records for ``query`` (hybrid ranking) in the namespaces under any of
        ``prefixes`` (every namespace when there are none), each with its score."""
        asked: list[Any] = []
        failed: list[BaseException] = []

        async def embed() -> None:
            try:
                asked.append(await self._embed_query(query))
            except Unavailable as exc:  # (raised after the group, not inside an exception group)
                failed.append(exc)

        async with anyio.create_task_group() as tg:  # the query's vector while the index catches up
            tg.start_soon(embed)
            shelf = await self._shelf(memory_id)
        if failed:
            raise failed[0]
        now = self.clock()
        kept = shelf.kept
        allow: Callable[[str], bool] | None = None
        if strategy_id or actor_id is not None or filters:

            def allow(record_id: str) -> bool:
                m = kept.get(record_id)
                return (
                    m is not None
                    and (not strategy_id or m.strategy_id == strategy_id)
                    and (actor_id is None or m.actor_id == actor_id)
                    and (not filters or matches(m.meta, filters))
                )

        def search() -> list[Any]:
            with shelf.guard:  # (the loop's writes wait for this search, not the other way round)
                return shelf.index.search(
                    query[:MAX_QUERY_TERMS_TEXT],
                    asked[0],
                    k=k,
                    namespaces=(lambda ns: ns.startswith(tuple(prefixes))) if prefixes else None,
                    allow=allow,
                )

        # Off the event loop: a search over many namespaces or terms costs this memory's caller,
        # not every other request of the process.
        hits = await anyio.to_thread.run_sync(search, limiter=self._searches)
        found: list[Record] = []
        for hit in hits:
            row = kept.get(hit.record_id)
            if row is None or (row.expires is not None and row.expires <= now):
                continue  # expired since: the sweeper deletes it
            found.append(to_record(row, round(float(hit.score), 6)))
        return found

    async def similar(
        self, memory_id: str, namespace: str, texts: Sequence[str], actor_id: str | None, k: int = 5
    ) -> list[list[Record]]:
        """For each text, the records of ``namespace`` and of ``actor_id`` most like it (what
        consolidation may change: never another actor's record, even in a shared namespace)."""
        shelf = await self._shelf(memory_id)
        if not texts:
            return []
        vectors = await self._embed(list(texts))
        kept = shelf.kept

        def owned(record_id: str) -> bool:
            found = kept.get(record_id)
            return found is not None and found.actor_id == actor_id

        def search() -> list[list[Any]]:
            with shelf.guard:
                return [
                    shelf.index.search(
                        text[:MAX_QUERY_TERMS_TEXT], vector, k=k, namespaces=namespace.__eq__, allow=owned
                    )
                    for text, vector in zip(texts, vectors, strict=True)
                ]

        per_text = await anyio.to_thread.run_sync(search, limiter=self._searches)
        return [
            [to_record(kept[h.record_id], float(h.score)) for h in hits if h.record_id in kept]
            for hits in per_text
        ]

    async def expire(self) -> int:
        """Delete every record whose expiry has passed; returns how many."""
        now = self.clock()
        async with self.db.read() as conn:
            rows = list(
                await conn.execute(
                    sa.select(records.c.memory_id, records.c.id).where(
                        records.c.expires.is_not(None), records.c.expires <= now
                    )
                )
            )
        by_memory: dict[str, list[str]] = {}
        for row in rows:
            by_memory.setdefault(row.memory_id, []).append(row.id)
        for memory_id, ids in by_memory.items():
            await self.delete(memory_id, ids)
        return len(rows)

    async def _embed(self, texts: Sequence[str]) -> Any:
        try:
            return await self.embedder.embed(texts)
        except EmbedderError as exc:
            raise self._unavailable(exc) from None

    async def _embed_query(self, query: str) -> Any:
        """A query's vector: an approximation fit to search with, never stored (the local
        model's int8 encoder, ADR 0048)."""
        try:
            return await self.embedder.embed_query(query)
        except EmbedderError as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: EmbedderError) -> Unavailable:
        reason = str(exc)
        url = getattr(self.embedder, "url", None)
        if isinstance(url, str) and url:  # (the operator's, not the caller's to see)
            reason = reason.replace(url.rstrip("/"), "the embeddings API's URL")
        return Unavailable(f"memory cannot compute embeddings: {reason}")

    async def warm(self) -> None:
        """Load the index of every memory that has records (newest memories first), so the first
        search after a start does not wait for it; a memory's writes meanwhile are caught up."""
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(records.c.memory_id, sa.func.max(records.c.updated).label("last"))
                .group_by(records.c.memory_id)
                .order_by(sa.desc("last"))
            )
            memory_ids = [r.memory_id for r in found]
        for memory_id in memory_ids:
            await self._shelf(memory_id)
        if memory_ids:  # (searches will come: the local model builds its query encoder now, ADR 0048)
            with contextlib.suppress(EmbedderError):
                await self.embedder.embed_query("warm")

    # -- the per-process index -------------------------------------------------------------

    async def _lock(self, conn: AsyncConnection, memory_id: str) -> None:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(memory_id)})

    async def _shelf(self, memory_id: str) -> _Shelf:
        lock = self._locks.setdefault(memory_id, anyio.Lock())
        async with lock:
            shelf = self._shelves.get(memory_id)
            if shelf is None:
                shelf = await self._load(memory_id)
                self._shelves[memory_id] = shelf
            else:
                await self._catch_up(memory_id, shelf)
            return shelf

    async def _load(self, memory_id: str) -> _Shelf:
        async with self.db.read() as conn:
            seen = (
                await conn.execute(
                    sa.select(sa.func.max(changes.c.seq)).where(changes.c.memory_id == memory_id)
                )
            ).scalar() or 0
            rows = list(await conn.execute(sa.select(records).where(records.c.memory_id == memory_id)))
        stale = [r for r in rows if r.embedder != self.embedder.name]
        vectors: dict[str, Any] = {}
        if stale:
            fresh = await self._embed([r.content for r in stale])
            vectors = {r.id: v for r, v in zip(stale, fresh, strict=True)}

        def build() -> _Shelf:  # (a new shelf no one else sees yet: built off the event loop)
            shelf = _Shelf(Index(self.embedder.dim), {}, int(seen))
            for row in rows:
                vector = vectors.get(row.id)
                if vector is None:
                    vector = np.frombuffer(row.vector, dtype=np.float32)
                self._put(shelf, row, vector)
            return shelf

        shelf = await anyio.to_thread.run_sync(build)
        if stale:
            async with self.db.write() as conn:
                for row in stale:
                    await conn.execute(
                        sa.update(records)
                        .where(records.c.id == row.id)
                        .values(
                            vector=np.asarray(vectors[row.id], dtype=np.float32).tobytes(),
                            embedder=self.embedder.name,
                        )
                    )
        return shelf

    async def _catch_up(self, memory_id: str, shelf: _Shelf) -> None:
        async with self.db.read() as conn:
            changed = list(
                await conn.execute(
                    sa.select(changes.c.seq, changes.c.record_id)
                    .where(changes.c.memory_id == memory_id, changes.c.seq > shelf.seen)
                    .order_by(changes.c.seq)
                )
            )
            if not changed:
                return
            ids = sorted({c.record_id for c in changed})
            rows = {r.id: r for r in await conn.execute(sa.select(records).where(records.c.id.in_(ids)))}
        for record_id in ids:
            row = rows.get(record_id)
            if row is None:
                self._drop(shelf, record_id)
            else:
                self._put(shelf, row, np.frombuffer(row.vector, dtype=np.float32))
        shelf.seen = max(shelf.seen, changed[-1].seq)

    def _put(self, shelf: _Shelf, row: Any, vector: Any) -> None:
        with shelf.guard:
            shelf.index.put(row.id, row.namespace, row.content, np.asarray(vector, dtype=np.float32))
            shelf.kept[row.id] = _Kept.of(row)

    def _drop(self, shelf: _Shelf, record_id: str) -> None:
        with shelf.guard:
            if shelf.kept.pop(record_id, None) is not None:
                shelf.index.remove(record_id)
