"""Prometheus metrics: what ``GET /metrics`` serves.

One registry per running app (the last one started in a process is the one upstream
requests count against; a process runs one app). Label values are names from the
configuration (tenant, gateway, target, tool) or small fixed sets (outcomes, decisions,
status classes), so the series stay bounded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double what is scraped and say little here
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
Health = Callable[[], Iterable[tuple[str, str, str, bool]]]


class Metrics:
    """The gateway's counters and histograms, in a registry of their own."""

    def __init__(self, health: Health | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "switchboard_mcp_requests",
            "MCP JSON-RPC requests served, by method and outcome (ok or error).",
            ["tenant", "gateway", "method", "outcome"],
            registry=r,
        )
        self.tool_calls = Counter(
            "switchboard_tool_calls",
            "tools/call by outcome: ok, tool_error, denied, limited, input_required, refused, cancelled.",
            ["tenant", "gateway", "target", "tool", "outcome"],
            registry=r,
        )
        self.tool_seconds = Histogram(
            "switchboard_tool_call_duration_seconds",
            "Time in the gateway's pipeline and the upstream for one tools/call.",
            ["tenant", "gateway", "target", "tool"],
            buckets=_SECONDS,
            registry=r,
        )
        self.decisions = Counter(
            "switchboard_pipeline_decisions",
            "Pipeline decisions: policy allow/deny, rate_limit allow/limited, cache hit/miss, "
            "interceptors continue/refused, approval proceed/declined.",
            ["tenant", "gateway", "stage", "decision"],
            registry=r,
        )
        self.upstream = Counter(
            "switchboard_upstream_requests",
            "HTTP requests to upstreams by host and status (2xx..5xx, or error: no answer).",
            ["host", "status"],
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "switchboard_upstream_request_duration_seconds",
            "Time to an upstream's response headers.",
            ["host"],
            buckets=_SECONDS,
            registry=r,
        )
        self.spans_dropped = Counter(
            "switchboard_trace_spans_dropped",
            "Spans the embedded trace store could not keep (its queue was full).",
            registry=r,
        )
        self.health = health
        if health is not None:
            r.register(_Health(health))

    def exposition(self) -> bytes:
        """The text format. With several workers (``PROMETHEUS_MULTIPROC_DIR`` set by the
        parent), the counts of all of them, read from the directory they share."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return bytes(generate_latest(self.registry))
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        if self.health is not None:
            merged.register(_Health(self.health))
        return bytes(generate_latest(merged))


class _Health(Collector):
    """``switchboard_upstream_up``: 1 while a target answers, 0 while it is down (its link
    lost, or its circuit breaker open); read at scrape time."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "switchboard_upstream_up",
            "1 while a target is reachable, 0 while its connection is lost or its breaker is open.",
            labels=["tenant", "gateway", "target"],
        )
        for tenant, gateway, target, up in self.health():
            gauge.add_metric([tenant, gateway, target], 1.0 if up else 0.0)
        yield gauge

    def describe(self) -> Iterator[Metric]:
        return iter(())


_current: Metrics | None = None


def current() -> Metrics | None:
    """The metrics of the app running in this process, if any."""
    return _current


def activate(metrics: Metrics | None) -> None:
    global _current
    _current = metrics


def status_class(status: Any) -> str:
    return f"{int(status) // 100}xx" if isinstance(status, int) else "error"
