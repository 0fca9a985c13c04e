"""Caching results of tools the configuration declares cacheable (memory, or Redis shared by replicas).

A gateway's `cache` rules name tools (globs) and a TTL. Annotations an upstream reports are
hints for the model, never trusted (gateway/core/types.py): a tool is cached only when the
configuration says so, either

- a rule's ``tools`` names it (a glob that matches: the operator or tenant admin chose it), or
- a rule without ``tools`` applies and the configuration declares the tool
  ``readOnlyHint: true`` itself (a target's ``overrides`` or its own tool definitions:
  `declared_annotations`).

Only successful results are stored. The key holds the tenant, gateway, **the caller** (so
nothing is ever served across users), the tool, its arguments and a fingerprint of the
target's configuration and the tool's definition: a changed target or tool makes new keys,
so stale results are never served after a change.

In memory, results are held in a bounded LRU (`MemoryResults`: at most ``max_entries``
results and ``max_bytes`` of them, the least recently used leaving first); in Redis, its
own ``maxmemory`` policy bounds them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from gateway.config import TargetBase
from gateway.core.catalog import Catalog, Entry
from gateway.core.types import CallContext, CallNext, ToolCall, ToolResult

logger = logging.getLogger(__name__)
MAX_ENTRIES = 10_000
MAX_BYTES = 64 * 1024 * 1024
Declared = Mapping[tuple[str, str], Mapping[str, Any]]
"""(target, the target's tool name as published) -> the annotations the configuration gives it."""


def declared_annotations(targets: Sequence[TargetBase]) -> dict[tuple[str, str], dict[str, Any]]:
    """What the configuration itself says about its tools: the annotations of tools a target
    defines in config (``tools:``), with its ``overrides``' annotations on top (keyed by the
    name the override gives). An upstream's own annotations are not in it."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for target in targets:
        for tool in getattr(target, "tools", None) or ():
            if getattr(tool, "annotations", None):
                out[(target.name, tool.name)] = dict(tool.annotations)
        for inner, override in target.overrides.items():
            if override.annotations:
                key = (target.name, override.name or inner)
                out[key] = {**out.get((target.name, inner), {}), **override.annotations}
    return out


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

    (aiocache's Redis backend still calls redis-py methods deprecated since redis-py 5,
    ``setex`` and ``close``.)
    """

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis  # only when Redis is configured

        self.client = redis.from_url(url)

    async def get(self, key: str) -> Any:
        return await self.client.get(key)

    async def set(self, key: str, value: str, ttl: int) -> Any:
        return await self.client.set(key, value, ex=ttl)

    async def close(self) -> None:
        await self.client.aclose()


class MemoryResults:
    """Results in this process's memory: a TTL'd LRU of at most ``max_entries`` results and
    ``max_bytes`` (UTF-8) of them; a result bigger than ``max_bytes`` is not kept."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, tuple[float, str, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item[1]

    async def set(self, key: str, value: str, ttl: int) -> None:
        size = len(value) if value.isascii() else len(value.encode())
        if key in self._items:
            self._drop(key)
        if size > self.max_bytes:
            return
        self._items[key] = (time.monotonic() + ttl, value, size)
        self.bytes += size
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._items)))  # the least recently used

    def _drop(self, key: str) -> None:
        self.bytes -= self._items.pop(key)[2]

    async def close(self) -> None:
        self._items.clear()
        self.bytes = 0


def result_store(
    redis_url: str | None, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES
) -> ResultStore:
    """Where cached results live: Redis when configured, else this process's memory (bounded)."""
    if not redis_url:
        return MemoryResults(max_entries, max_bytes)
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
        declared: Declared | None = None,
    ) -> None:
        self.tenant = tenant
        self.gateway = gateway
        self.rules = list(rules)
        self.store = store
        self.catalog = catalog
        self.fingerprints = fingerprints  # target -> hash of its configuration
        self.declared = declared or {}
        self.hits = 0

    def _ttl(self, tool: str, entry: Entry) -> int | None:
        """The first rule that makes ``tool`` cacheable: one naming it, or one for every tool
        when the configuration declares it read-only. (The upstream's hints count for nothing.)"""
        for rule in self.rules:
            if rule.tools:
                if rule.applies(tool):
                    return rule.ttl_seconds
            elif self.declared.get((entry.provider.id, entry.spec.name), {}).get("readOnlyHint") is True:
                return rule.ttl_seconds
        return None

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

    def applies(self, tool: str) -> bool:
        """Whether a rule of this gateway may cache ``tool``'s results."""
        return any(rule.applies(tool) for rule in self.rules)

    async def __call__(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
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
