"""The call pipeline's settings of a gateway: rate limits, cache, resilience, interceptors,
approvals."""

from __future__ import annotations

from typing import Annotated, Literal

from limits import RateLimitItem, parse
from pydantic import Field, field_validator

from gateway.config._targets import TlsFiles
from gateway.core.model import Model


def parse_limit(limit: str) -> RateLimitItem:
    """A rate limit's text as the limits library reads it; ValueError says what it should look like."""
    try:
        return parse(limit)
    except ValueError:
        raise ValueError(f"rate limit {limit!r} is not like '100/minute' or '10 per second'") from None


class RateLimitSpec(Model):
    """A rate limit or quota: at most `limit` calls per caller, tool, target, caller and tool, or gateway."""

    limit: str = Field(description="'100/minute', '10 per second', '1000/day' (the limits library's syntax).")
    per: Literal["caller", "tool", "target", "caller_tool", "gateway"] = "caller"
    tools: list[str] = Field(default_factory=list, description="Globs of tool names it counts; empty: all.")
    callers: list[str] = Field(
        default_factory=list, description="The callers (subjects) it counts; empty: every caller."
    )
    group: str | None = Field(
        None,
        description="Limits of one group are alternatives: a call is counted by the most specific one "
        "that applies to it (callers named, then tools named), not by all of them (AgentCore's "
        "rateLimitId and its entries).",
    )

    @field_validator("limit")
    @classmethod
    def _parses(cls, limit: str) -> str:
        parse_limit(limit)
        return limit


class CacheSpec(Model):
    """Cache results for `ttl_seconds` of the tools matching `tools` (globs); with no `tools`, of the
    tools the configuration declares `readOnlyHint: true` (a target's overrides or tool definitions)."""

    tools: list[str] = Field(default_factory=list)
    ttl_seconds: int = Field(ge=1, le=7 * 24 * 3600)


class ResilienceSpec(Model):
    """Deadline, retries, circuit breaker and concurrency cap (see gateway/stages/resilience.py)."""

    call_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    retries: int = Field(
        2,
        ge=0,
        le=5,
        description="Only for tools the configuration declares idempotentHint or readOnlyHint (overrides).",
    )
    retry_ratio: float = Field(0.1, ge=0, le=1, description="Retries allowed per call, on average.")
    failures: int = Field(5, ge=1, le=1000, description="Failures in a row that open a target's breaker.")
    open_seconds: float = Field(30.0, gt=0, le=3600)
    max_concurrent: int = Field(64, ge=1, le=10_000, description="Calls in flight per target.")


class _InterceptorBase(Model):
    # (not `on`: YAML 1.1 reads a bare `on` as true)
    phase: Literal["request", "response"] = Field(
        description="Before the upstream (request) or after (response)."
    )
    tools: list[str] = Field(default_factory=list, description="Globs of tool names; empty: every tool.")


class PythonInterceptor(_InterceptorBase):
    """A Python callable (sync or async) taking and returning the JSON envelope."""

    kind: Literal["python"]
    function: Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$", description="'package.module:callable'")]


class HttpInterceptor(_InterceptorBase):
    """An HTTP endpoint: the envelope POSTed as JSON, the answer read as JSON."""

    kind: Literal["http"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    tls: TlsFiles | None = Field(None, description="CA bundle and client certificate (file paths).")


class LambdaInterceptor(_InterceptorBase):
    """An AWS Lambda function invoked with the envelope as its payload."""

    kind: Literal["lambda"]
    function_name: str
    region: str | None = None
    endpoint_url: str | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=300)


class RedactInterceptor(Model):
    """Built in: masks secrets and PII in results."""

    kind: Literal["redact"]
    phase: Literal["response"] = "response"
    tools: list[str] = Field(default_factory=list)


InterceptorSpec = Annotated[
    PythonInterceptor | HttpInterceptor | LambdaInterceptor | RedactInterceptor, Field(discriminator="kind")
]


class ApprovalSpec(Model):
    """Calls to these tools wait for a person's approval (the admin API, or asked in the client)."""

    tools: list[str] = Field(default_factory=list, description="Globs of tool names; empty: every tool.")
    timeout_seconds: float = Field(300.0, gt=0, le=7 * 24 * 3600)
    approver: Literal["admin", "client"] = Field(
        "admin",
        description="Who decides: 'admin' (default) holds the call for an administrator (admin API), "
        "never the caller; 'client' asks the calling client (elicitation), which proves only that "
        "the caller's own client said yes: an automated client can answer for itself.",
    )
