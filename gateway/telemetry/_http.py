"""Upstream HTTP requests: a CLIENT span each, the trace context sent along in the
``traceparent``/``tracestate`` headers, and the upstream metrics.

The OpenTelemetry httpx instrumentation patches ``httpx``; the gateway uses ``httpx2``
(and its own HTTP/1.1 pool for OpenAPI targets), so each place that sends a request wraps
it in ``upstream_request`` (or ``upstream_url``) and sends the headers it gives. (Not a
transport: an ``httpx2`` client given a transport stops honouring HTTP(S)_PROXY.)
"""

from __future__ import annotations

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
from gateway.telemetry._spans import fail
from gateway.telemetry._tracing import enabled, tracer


class UpstreamRequest:
    """One request in flight: its headers to add, and where its status is reported."""

    __slots__ = ("headers", "span", "status")

    def __init__(self, span: trace.Span | None) -> None:
        self.span = span
        self.headers: dict[str, str] = {}
        self.status: int | None = None


@contextmanager
def upstream_request(
    method: str, scheme: str, host: str, port: int | None, path: str
) -> Iterator[UpstreamRequest]:
    """Trace one upstream request: send ``.headers`` with it, set ``.status`` when it answers."""
    span = None
    if enabled():
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "server.address": host,
            "url.full": _safe_url(scheme, host, port, path),
        }
        if port is not None:
            attributes["server.port"] = port
        span = tracer.start_span(method, kind=SpanKind.CLIENT, attributes=attributes)
    request = UpstreamRequest(span)
    if span is not None:
        inject(request.headers, context=trace.set_span_in_context(span))
    started = time.perf_counter()
    try:
        yield request
    except BaseException as exc:
        if span is not None:
            fail(span, type(exc).__qualname__, str(exc))
        raise
    finally:
        metrics = current()
        if metrics is not None:
            metrics.upstream.labels(host, status_class(request.status)).inc()
            metrics.upstream_seconds.labels(host).observe(time.perf_counter() - started)
        if span is not None:
            if request.status is not None:
                span.set_attribute("http.response.status_code", request.status)
                if request.status >= 500:
                    fail(span, str(request.status))
            span.end()


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
