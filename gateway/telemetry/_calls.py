"""The call pipeline's telemetry: the tools/call span's attributes and metrics (the
pipeline's first stage, inside error mapping), and a span and a count per decision."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from gateway.core.errors import AuthError, InputRequired, RequestError, ToolExecutionError
from gateway.core.pipeline import Stage
from gateway.core.redaction import redact_text
from gateway.core.types import CallContext, CallNext, ToolCall, ToolResult
from gateway.telemetry._capture import capture
from gateway.telemetry._metrics import current
from gateway.telemetry._record import Record, current_record
from gateway.telemetry._spans import fail
from gateway.telemetry._tracing import enabled, tracer

# A stage's decision when it passes the call on / when it answers or refuses itself.
DECISIONS = {
    "policy": ("allow", "deny"),
    "rate_limit": ("allow", "limited"),
    "interceptors": ("continue", "refused"),
    "approval": ("proceed", "declined"),
    "cache": ("miss", "hit"),
}
# Refusals that are decisions, not tool failures (named by class, so no stage module is imported).
_REFUSALS = {"Denied": "denied", "RateLimited": "limited"}


class GatewayTelemetry:
    """What one gateway's calls record: attributes on the tools/call span, and metrics."""

    def __init__(
        self,
        tenant: str,
        gateway: str,
        target_of: Callable[[str], str],
        *,
        capture_content: bool = True,
        capture_bytes: int = 4096,
    ) -> None:
        self.tenant = tenant
        self.gateway = gateway
        self.target_of = target_of
        self.capture_content = capture_content
        self.capture_bytes = capture_bytes

    async def __call__(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        metrics = current()
        span = trace.get_current_span()
        recording = span.is_recording()
        target = self.target_of(call.public_name)
        if recording:
            self._started(span, call, ctx, target)
        started = time.perf_counter()
        outcome = "ok"
        result: ToolResult | None = None
        try:
            result = await call_next(call, ctx)
            if result.is_error:
                outcome = "tool_error"
            return result
        except InputRequired:
            outcome = "input_required"
            raise
        except ToolExecutionError as exc:
            outcome = _REFUSALS.get(type(exc).__name__, "tool_error")
            if recording:
                fail(span, outcome, redact_text(exc.message))
            raise
        except (RequestError, AuthError) as exc:
            outcome = "refused"
            if recording:
                fail(span, type(exc).__name__, str(exc))
            raise
        except Exception as exc:  # the tool's own failure (error mapping words it for the model)
            outcome = "tool_error"
            if recording:
                fail(span, "tool_error", redact_text(f"{type(exc).__name__}: {exc}"))
            raise
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            if metrics is not None:
                labels = (self.tenant, self.gateway, target, call.public_name)
                metrics.tool_calls.labels(*labels, outcome).inc()
                metrics.tool_seconds.labels(*labels).observe(time.perf_counter() - started)
            if recording:
                span.set_attribute("switchboard.outcome", outcome)
                if result is not None:
                    self._finished(span, result)

    def _started(self, span: Span, call: ToolCall, ctx: CallContext, target: str) -> None:
        p = ctx.principal
        attributes: dict[str, Any] = {
            "switchboard.target": target,
            "switchboard.tool.upstream_name": call.name,
            "enduser.id": p.subject,
        }
        if p.client_id:
            attributes["switchboard.client_id"] = p.client_id
        span.set_attributes(attributes)
        if self.capture_content:
            self._capture(
                span, "gen_ai.tool.call.arguments", "switchboard.tool.input_tokens_estimate", call.arguments
            )

    def _capture(self, span: Span, key: str, tokens_key: str, value: Any) -> None:
        """``value`` recorded on ``span``: masked later when it is a record (see ``Record.defer``)."""
        if type(span) is Record:
            span.defer(key, tokens_key, value, self.capture_bytes)
        else:
            text, tokens = capture(value, self.capture_bytes)
            span.set_attributes({key: text, tokens_key: tokens})

    def _finished(self, span: Span, result: ToolResult) -> None:
        wire: dict[str, Any] = {"content": list(result.content)}
        if result.structured is not None:
            wire["structuredContent"] = result.structured
        if self.capture_content:
            self._capture(span, "gen_ai.tool.call.result", "switchboard.tool.output_tokens_estimate", wire)
        if result.is_error:
            message = "".join(str(c.get("text", "")) for c in result.content if c.get("type") == "text")
            fail(span, "tool_error", redact_text(message) if self.capture_content else None)


def decided(
    name: str, stage: Stage, tenant: str, gateway: str, applies: Callable[[str], bool] | None = None
) -> Stage:
    """``stage`` with a span and a count of its decision.

    The span covers the decision only: it ends when the stage passes the call on (the
    first word of DECISIONS), or when the stage answers or refuses by itself (the second).
    A tool no rule of the stage ``applies`` to gets no decision (a cache "miss" is a tool
    that could have been a hit).
    """
    passed_word, stopped_word = DECISIONS[name]
    span_name = f"switchboard.{name}"
    covered: dict[str, bool] = {}

    async def traced(call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        if applies is not None:
            hit = covered.get(call.public_name)
            if hit is None:
                hit = covered[call.public_name] = applies(call.public_name)
            if not hit:
                return await stage(call, ctx, call_next)
        metrics = current()
        span: Span | None = None
        if enabled():
            parent = current_record()
            span = (
                parent.child(span_name, SpanKind.INTERNAL, {"switchboard.stage": name})
                if parent is not None
                else tracer.start_span(span_name, attributes={"switchboard.stage": name})
            )
        if span is None and metrics is None:
            return await stage(call, ctx, call_next)
        done = False

        def finish(decision: str, error: BaseException | None = None) -> None:
            nonlocal done
            done = True
            if metrics is not None:
                metrics.decisions.labels(tenant, gateway, name, decision).inc()
            if span is not None:
                span.set_attribute("switchboard.decision", decision)
                if error is not None:
                    message = error.message if isinstance(error, ToolExecutionError) else str(error)
                    fail(span, type(error).__qualname__, redact_text(message))
                span.end()

        async def passed(call: ToolCall, ctx: CallContext) -> ToolResult:
            if not done:
                finish(passed_word)
            return await call_next(call, ctx)

        try:
            result = await stage(call, ctx, passed)
        except BaseException as exc:
            if not done:
                finish(stopped_word, exc)
            raise
        if not done:
            finish(stopped_word)
        return result

    return traced
