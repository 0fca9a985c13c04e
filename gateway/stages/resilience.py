"""Resilience: one deadline per call, bounded retries, a breaker and a concurrency cap per target.

- **Deadline.** Each call gets ``call_timeout_seconds`` once; retries run inside it, so
  they can never stretch a call beyond it.
- **Retries** only for tools the configuration declares idempotent or read-only
  (``idempotentHint``/``readOnlyHint`` in a target's ``overrides`` or its own tool
  definitions: `gateway.stages.cache.declared_annotations`; what an upstream says of its tools is
  never trusted), only for failures to reach the upstream, and only while the gateway's
  retry budget allows (retries at most ``retry_ratio`` of recent calls, plus a small floor),
  so retries cannot multiply load on an upstream that is already struggling.
- **Circuit breaker** per target: after ``failures`` consecutive failures to reach it, calls
  fail fast for ``open_seconds``; then one trial call is let through (half-open): success
  closes the breaker, failure opens it again.
- **Concurrency cap** per target: at most ``max_concurrent`` calls in flight; the others wait
  for a slot within their deadline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import anyio

from gateway.core.catalog import Catalog
from gateway.core.errors import UpstreamUnavailable
from gateway.core.types import CallContext, CallNext, ToolCall, ToolResult
from gateway.stages.cache import Declared


@dataclass(frozen=True, slots=True)
class Settings:
    call_timeout_seconds: float = 60.0
    retries: int = 2
    retry_ratio: float = 0.1
    failures: int = 5
    open_seconds: float = 30.0
    max_concurrent: int = 64


@dataclass(slots=True)
class Breaker:
    """The state of one target's breaker."""

    failures: int = 0
    opened_at: float | None = None
    trial: bool = False  # a half-open trial call is in flight

    def check(self, settings: Settings, target: str) -> None:
        if self.opened_at is None:
            return
        waited = time.monotonic() - self.opened_at
        if waited < settings.open_seconds or self.trial:
            left = max(1, math.ceil(settings.open_seconds - waited))
            raise UpstreamUnavailable(
                f"target {target!r} is failing (circuit open after {settings.failures} failures in a row); "
                f"not calling it for {left} s more"
            )
        self.trial = True  # half-open: this call is the trial

    def succeeded(self) -> None:
        self.failures, self.opened_at, self.trial = 0, None, False

    def failed(self, settings: Settings) -> None:
        self.failures += 1
        if self.trial or self.failures >= settings.failures:
            self.opened_at, self.trial = time.monotonic(), False


@dataclass(slots=True)
class Budget:
    """Retries allowed as a share of recent calls (a token bucket filled by calls)."""

    ratio: float
    tokens: float = 3.0
    cap: float = 10.0

    def called(self) -> None:
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def take(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class GatewayResilience:
    """The resilience stage of one gateway."""

    catalog: Catalog
    settings: Settings
    declared: Declared = field(default_factory=dict)  # what the configuration says of its tools
    breakers: dict[str, Breaker] = field(default_factory=dict)
    limiters: dict[str, anyio.CapacityLimiter] = field(default_factory=dict)
    budget: Budget = field(init=False)

    def __post_init__(self) -> None:
        self.budget = Budget(self.settings.retry_ratio)

    def _retryable(self, tool: str) -> bool:
        entry = self.catalog.snapshot.tools.get(tool)
        if entry is None:
            return False
        notes = self.declared.get((entry.provider.id, entry.spec.name), {})
        return notes.get("idempotentHint") is True or notes.get("readOnlyHint") is True

    async def __call__(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        tool = call.public_name or call.name
        entry = self.catalog.snapshot.tools.get(tool)
        target = entry.provider.id if entry is not None else ""
        s = self.settings
        ctx.deadline = min(ctx.deadline, anyio.current_time() + s.call_timeout_seconds)
        breaker = self.breakers.setdefault(target, Breaker())
        limiter = self.limiters.setdefault(target, anyio.CapacityLimiter(s.max_concurrent))
        self.budget.called()
        attempts = 1 + (s.retries if self._retryable(tool) else 0)
        with anyio.move_on_after(max(0.0, ctx.remaining())) as scope:
            for attempt in range(attempts):
                breaker.check(s, target)
                try:
                    async with limiter:
                        result = await call_next(call, ctx)
                except UpstreamUnavailable:
                    breaker.failed(s)
                    if attempt + 1 < attempts and ctx.remaining() > 0 and self.budget.take():
                        await anyio.sleep(min(0.05 * 2**attempt, max(0.0, ctx.remaining() / 4)))
                        continue
                    raise
                except Exception:
                    breaker.succeeded()  # the upstream answered; the failure is the tool's
                    raise
                except BaseException:
                    breaker.trial = False  # cancelled: the trial did not decide anything
                    raise
                breaker.succeeded()
                return result
        breaker.failed(s)
        if scope.cancelled_caught:
            raise UpstreamUnavailable(
                f"{tool} did not finish within the call's deadline ({s.call_timeout_seconds:g} s)"
            )
        raise UpstreamUnavailable(f"{tool} could not be completed")
