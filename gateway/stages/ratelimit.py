"""Rate limits and quotas per caller, tool, target or gateway (the `limits` library).

A gateway's `rate_limits` are rules such as ``{limit: "100/minute", per: caller}`` or
``{limit: "1000/day", per: caller_tool, tools: ["github___*"]}``. Counters live in memory,
or in Redis when ``SWITCHBOARD_REDIS_URL`` is set so that replicas share them. A refused
call is an ``isError`` result that says when to try again. If Redis fails, the same rule
is counted in this process instead: a local limit, never none.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from gateway.config import parse_limit
from gateway.core.catalog import Catalog
from gateway.core.errors import ToolExecutionError
from gateway.core.types import CallContext, CallNext, ToolCall, ToolResult

logger = logging.getLogger(__name__)


class RateLimited(ToolExecutionError):
    """Over a limit; ``retry_after`` seconds until the next call can pass."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Rule:
    item: RateLimitItem
    per: str
    tools: tuple[str, ...]
    text: str
    callers: tuple[str, ...] = ()
    group: str | None = None

    def applies(self, tool: str) -> bool:
        """Whether it may count calls of ``tool`` (for some caller)."""
        return not self.tools or any(fnmatch.fnmatchcase(tool, p) for p in self.tools)

    def counts(self, tool: str, caller: str) -> bool:
        return (not self.callers or caller in self.callers) and self.applies(tool)

    @property
    def specificity(self) -> tuple[bool, bool]:
        """How narrowly it is drawn: callers named first, then tools (within a group, the most
        specific rule that counts a call is the one that counts it)."""
        return bool(self.callers), bool(self.tools)

    def key(
        self, tenant: str, gateway: str, call: ToolCall, ctx: CallContext, target: str
    ) -> tuple[str, ...]:
        caller = ctx.principal.subject
        parts = {
            "caller": (caller,),
            "tool": (call.public_name or call.name,),
            "target": (target,),
            "caller_tool": (caller, call.public_name or call.name),
            "gateway": (),
        }[self.per]
        # Which rule it is counts too: two rules with the same limit over different tools or
        # callers keep counters of their own.
        scope = "|".join((",".join(self.tools), ",".join(self.callers), self.group or ""))
        return ("sb", tenant, gateway, self.per, self.text, scope, *parts)


def parse_rule(
    limit: str, per: str, tools: Sequence[str], callers: Sequence[str] = (), group: str | None = None
) -> Rule:
    """A rule from config; ValueError names what is wrong with ``limit``."""
    return Rule(parse_limit(limit), per, tuple(tools), limit, tuple(callers), group)


def counting(rules: Sequence[Rule], tool: str, caller: str) -> list[Rule]:
    """The rules that count a call: every ungrouped rule that applies, and in each group the most
    specific rule that applies (the first of equals)."""
    out: list[Rule] = []
    best: dict[str, Rule] = {}
    for rule in rules:
        if not rule.counts(tool, caller):
            continue
        if rule.group is None:
            out.append(rule)
        elif rule.group not in best or rule.specificity > best[rule.group].specificity:
            best[rule.group] = rule
    return out + list(best.values())


class Counters:
    """Where hits are counted: a shared store (Redis) with this process's memory behind it."""

    def __init__(self, storage: Storage | None = None) -> None:
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.shared = MovingWindowRateLimiter(storage) if storage is not None else None
        self.fallbacks = 0  # hits counted locally because the shared store failed
        self._pool = getattr(storage, "switchboard_pool", None)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    async def hit(self, rule: Rule, key: tuple[str, ...]) -> tuple[bool, float]:
        """(allowed, seconds until the window frees a slot)."""
        limiter = self.shared or self.local
        try:
            allowed = await limiter.hit(rule.item, *key)
            reset = (await limiter.get_window_stats(rule.item, *key)).reset_time if not allowed else 0.0
        except Exception as exc:
            if limiter is self.local:
                raise
            self.fallbacks += 1
            logger.warning("rate-limit store failed (%s); counting in this process", exc)
            limiter = self.local
            allowed = await limiter.hit(rule.item, *key)
            reset = (await limiter.get_window_stats(rule.item, *key)).reset_time if not allowed else 0.0
        return allowed, max(0.0, reset - time.time())


class GatewayLimits:
    """The rate-limit stage of one gateway."""

    def __init__(
        self, tenant: str, gateway: str, rules: Sequence[Rule], counters: Counters, catalog: Catalog
    ):
        self.tenant = tenant
        self.gateway = gateway
        self.rules = list(rules)
        self.counters = counters
        self.catalog = catalog
        self._plain = not any(r.callers or r.group for r in self.rules)  # every rule that applies counts

    def applies(self, tool: str) -> bool:
        """Whether a rule of this gateway counts calls of ``tool``."""
        return any(rule.applies(tool) for rule in self.rules)

    async def __call__(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        tool = call.public_name or call.name
        entry = self.catalog.snapshot.tools.get(tool)
        target = entry.provider.id if entry is not None else ""
        rules = self.rules if self._plain else counting(self.rules, tool, ctx.principal.subject)
        for rule in rules:
            if not rule.applies(tool):
                continue
            if rule.item.amount == 0:
                raise RateLimited(f"Calls of {tool} are blocked (a rate limit of {rule.text}).", 60)
            allowed, wait = await self.counters.hit(
                rule, rule.key(self.tenant, self.gateway, call, ctx, target)
            )
            if not allowed:
                seconds = max(1, math.ceil(wait))
                raise RateLimited(
                    f"Rate limit reached for {tool} ({rule.text} per {rule.per.replace('_', ' and ')}); "
                    f"try again in {seconds} s.",
                    seconds,
                )
        return await call_next(call, ctx)


class RequestRate:
    """At most ``limit`` requests per caller (an access key, say), counted where a gateway's rate
    limits are (shared through Redis when configured): ``over(key)`` counts one request and says
    how many seconds to wait when it is one too many."""

    def __init__(self, counters: Counters, limit: str, what: str) -> None:
        self.counters = counters
        self.rule = parse_rule(limit, "caller", ())
        self.what = what

    async def over(self, caller: str) -> float | None:
        allowed, wait = await self.counters.hit(
            self.rule, ("sb", "requests", self.what, self.rule.text, caller)
        )
        return None if allowed else max(1.0, math.ceil(wait))


def shared_counters(redis_url: str | None) -> Storage | None:
    """The shared store for counters: Redis when configured, else None (this process only).

    Through redis-py, on a connection pool `Counters.close` closes (limits' storage has no
    close of its own).
    """
    if not redis_url:
        return None
    import redis.asyncio as redis
    from limits.aio.storage import RedisStorage

    pool = redis.ConnectionPool.from_url(redis_url)
    storage = RedisStorage(
        redis_url.replace("redis://", "async+redis://", 1),
        implementation="redispy",
        connection_pool=pool,  # type: ignore[arg-type]  # passed through to redis-py
    )
    storage.switchboard_pool = pool  # type: ignore[attr-defined]
    return storage
