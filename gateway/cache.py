"""Caching results of read-only tools (aiocache: memory, or Redis shared by replicas).

A gateway's `cache` rules name tools (globs) and a TTL. Only tools whose annotations say
``readOnlyHint: true`` are ever cached, and only successful results. The key holds the
tenant, gateway, **the caller** (so nothing is ever served across users), the tool, its
arguments and a fingerprint of the target's configuration and the tool's definition:
a changed target or tool makes new keys, so stale results are never served after a change.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import redis.asyncio as redis
from aiocache import SimpleMemoryCache

from gateway.core.catalog import Catalog, Entry
from gateway.core.types import CallContext, CallNext, ToolCall, ToolResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CacheRule:
    tools: tuple[str, ...]
    ttl_seconds: int

    def applies(self, tool: str) -> bool:
        return not self.tools or any(fnmatch.fnmatchcase(tool, p) for p in self.tools)


class ResultStore(Protocol):
    async def get(self, key: str) -> Any: ...

    async def set(self, key: str, value: str, ttl: int) -> Any: ...

    async def close(self) -> Any: ...


class RedisResults:
    """Results in Redis, through redis-py's asyncio client.

    (aiocache's own Redis backend still calls redis-py methods deprecated since redis-py 5,
    ``setex`` and ``close``; the memory backend is aiocache's.)
    """

    def __init__(self, url: str) -> None:
        self.client = redis.from_url(url)

    async def get(self, key: str) -> Any:
        return await self.client.get(key)

    async def set(self, key: str, value: str, ttl: int) -> Any:
        return await self.client.set(key, value, ex=ttl)

    async def close(self) -> None:
        await self.client.aclose()


def result_store(redis_url: str | None) -> ResultStore:
    """Where cached results live: Redis when configured, else this process's memory."""
    if not redis_url:
        memory: ResultStore = SimpleMemoryCache()
        return memory
    return RedisResults(redis_url)


class GatewayCache:
    """The caching stage of one gateway."""

    def __init__(
        self,
        tenant: str,
        gateway: str,
        rules: Sequence[CacheRule],
        store: ResultStore,
        catalog: Catalog,
        fingerprints: dict[str, str],
    ) -> None:
        self.tenant = tenant
        self.gateway = gateway
        self.rules = list(rules)
        self.store = store
        self.catalog = catalog
        self.fingerprints = fingerprints  # target -> hash of its configuration
        self.hits = 0

    def _ttl(self, tool: str, entry: Entry) -> int | None:
        if not (entry.spec.annotations or {}).get("readOnlyHint"):
            return None  # never cache what may change the world
        return next((r.ttl_seconds for r in self.rules if r.applies(tool)), None)

    def _key(self, ctx: CallContext, call: ToolCall, entry: Entry) -> str:
        target = entry.provider.id
        doc = [
            self.tenant,
            self.gateway,
            ctx.principal.tenant,
            ctx.principal.subject,
            call.public_name,
            call.arguments,
            self.fingerprints.get(target, ""),
            entry.wire(),
        ]
        digest = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return f"sb:result:{digest}"

    async def stage(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        tool = call.public_name or call.name
        entry = self.catalog.snapshot.tools.get(tool)
        ttl = self._ttl(tool, entry) if entry is not None else None
        if ttl is None or entry is None:
            return await call_next(call, ctx)
        key = self._key(ctx, call, entry)
        try:
            cached: Any = await self.store.get(key)
        except Exception as exc:  # noqa: BLE001 - boundary: a cache that fails is a cache that misses
            logger.warning("result cache unavailable (%s); calling the tool", exc)
            cached = None
        if isinstance(cached, (bytes, str)):
            doc = orjson.loads(cached)
            self.hits += 1
            return ToolResult(content=tuple(doc["content"]), structured=doc.get("structured"), is_error=False)
        result = await call_next(call, ctx)
        if not result.is_error:
            payload = orjson.dumps({"content": list(result.content), "structured": result.structured})
            try:
                await self.store.set(key, payload.decode(), ttl=ttl)
            except Exception as exc:  # noqa: BLE001 - boundary
                logger.warning("result cache unavailable (%s); not stored", exc)
        return result
