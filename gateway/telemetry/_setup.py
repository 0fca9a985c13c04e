"""One app's telemetry, opened and closed with the app."""

from __future__ import annotations

from opentelemetry.sdk.trace import SpanProcessor

from gateway.telemetry._metrics import Health, Metrics, activate
from gateway.telemetry._sink import Purge, TraceSink, Write
from gateway.telemetry._tracing import add_outlets, exporters_from_env, remove_outlets


class Telemetry:
    """Tracing (the embedded store and the ``OTEL_*`` exporters) and metrics for one app.

    Args:
        tracing: Record spans at all (``SWITCHBOARD_TRACING``).
        store: Where the embedded trace store writes and purges, or None to keep no spans
            in the database (``SWITCHBOARD_TRACE_STORE``).
        retention_seconds: How long the embedded store keeps a span.
        health: What ``switchboard_upstream_up`` reports, read at scrape time.
    """

    def __init__(
        self,
        *,
        tracing: bool,
        store: tuple[Write, Purge] | None,
        retention_seconds: float,
        health: Health | None = None,
    ) -> None:
        self.metrics = Metrics(health)
        self.sink = TraceSink(*store, retention_seconds) if tracing and store is not None else None
        self.processors: list[SpanProcessor] = exporters_from_env() if tracing else []

    def start(self) -> None:
        activate(self.metrics)
        add_outlets([self.sink] if self.sink else [], self.processors)

    def stop(self) -> None:
        """Stop recording; exporters send what they hold (the store's writer flushes on cancel)."""
        remove_outlets([self.sink] if self.sink else [], self.processors)
        activate(None)
