"""Upstream HTTP requests: a CLIENT span each, the trace context sent along in the
``traceparent``/``tracestate`` headers, and the upstream metrics.

The OpenTelemetry httpx instrumentation patches ``httpx``; the gateway uses ``httpx2``
(and its own HTTP/1.1 pool for OpenAPI targets), so each place that sends a request wraps
it in ``upstream_request`` (or ``upstream_url``) and sends the headers it gives. (Not a
transport: an ``httpx2`` client given a transport stops honouring HTTP(S)_PROXY.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx2
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind

from gateway.telemetry._metrics import current, status_class
from gateway.telemetry._record import current_record
from gateway.telemetry._spans import fail
from gateway.telemetry._tracing import enabled, tracer


class UpstreamRequest:
    """One upstream request in flight (``upstream_request``): a context manager, a class
    rather than a generator since it runs on every upstream call."""

    __slots__ = ("headers", "host", "span", "started", "status")

    def __init__(self, method: str, scheme: str, host: str, port: int | None, path: str) -> None:
        self.host = host
        self.headers: dict[str, str] = {}
        self.status: int | None = None
        self.span: trace.Span | None = None
        if enabled():
            attributes: dict[str, Any] = {
                "http.request.method": method,
                "server.address": host,
                "url.full": _safe_url(scheme, host, port, path),
            }
            if port is not None:
                attributes["server.port"] = port
            parent = current_record()
            span = self.span = (
                parent.child(method, SpanKind.CLIENT, attributes)
                if parent is not None
                else tracer.start_span(method, kind=SpanKind.CLIENT, attributes=attributes)
            )
            if _W3C_ONLY:
                _write_context(self.headers, span.get_span_context())
            else:
                inject(self.headers, context=trace.set_span_in_context(span))
        self.started = 0.0

    def __enter__(self) -> UpstreamRequest:
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        span, status = self.span, self.status
        metrics = current()
        if metrics is not None:
            metrics.upstream.labels(self.host, status_class(status)).inc()
            metrics.upstream_seconds.labels(self.host).observe(time.perf_counter() - self.started)
        if span is not None:
            if exc is not None:
                fail(span, type(exc).__qualname__, str(exc))
            if status is not None:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    fail(span, str(status))
            span.end()


def upstream_request(method: str, scheme: str, host: str, port: int | None, path: str) -> UpstreamRequest:
    """Trace one upstream request: send ``.headers`` with it, set ``.status`` when it answers
    (with a CLIENT span when tracing is on; counted in the upstream metrics)."""
    return UpstreamRequest(method, scheme, host, port, path)


# The propagators the SDK installs unless OTEL_PROPAGATORS names others: W3C trace context and
# baggage. The gateway never puts baggage in a context (clients' is not taken), so under these
# the headers are the trace context's alone, written here without the propagators' lookups.
_W3C_ONLY = os.environ.get("OTEL_PROPAGATORS", "tracecontext,baggage").replace(" ", "").lower() in (
    "tracecontext,baggage",
    "baggage,tracecontext",
    "tracecontext",
)


def trace_headers() -> dict[str, str]:
    """The trace context of the current span as W3C headers (none without a recording span): what
    a hosted agent is sent, so its own spans join the caller's trace."""
    if not enabled():
        return {}
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    headers: dict[str, str] = {}
    _write_context(headers, ctx)
    return headers


def _write_context(headers: dict[str, str], ctx: trace.SpanContext) -> None:
    """``traceparent`` (and ``tracestate``) for ``ctx``, as the W3C propagator writes them."""
    headers["traceparent"] = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    if ctx.trace_state:
        headers["tracestate"] = ctx.trace_state.to_header()


def _safe_url(scheme: str, host: str, port: int | None, path: str) -> str:
    """The URL without credentials or query values (they may hold keys)."""
    path, _, query = path.partition("?")
    if query:
        path += "?" + urlencode([(k, "REDACTED") for k, _ in parse_qsl(query, keep_blank_values=True)])
    return f"{scheme}://{host}{f':{port}' if port else ''}{path}"


@contextmanager
def upstream_url(method: str, url: str) -> Iterator[UpstreamRequest]:
    """``upstream_request`` for a request given by its URL."""
    parts = httpx2.URL(url)
    path = parts.raw_path.decode("ascii", "replace")
    with upstream_request(method, parts.scheme, parts.host, parts.port, path) as traced:
        yield traced
