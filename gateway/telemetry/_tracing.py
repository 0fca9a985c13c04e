"""Tracing: one process-wide TracerProvider; each running app adds its span processors.

The OpenTelemetry API allows one global provider per process, and the `mcp` SDK's own
spans (the upstream MCP client's ``MCP send ...``) reach it through the global. So the
provider is installed once (``LeanTracerProvider``: SDK spans made cheaply, see
``_tracer``), with a fan-out processor whose list each app's lifespan adds to and takes
back from. The tracer stamps every span with the tenant the context carries (set where an
MCP request starts), which is how the embedded store keeps each tenant's traces apart, and
the spans under a request (decisions, upstream requests) inherit it.

Exporters come from the standard variables: ``OTEL_TRACES_EXPORTER`` (``otlp``,
``console``, ``none``; a list), ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (``http/protobuf``
by default, or ``grpc``), ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` and ``_HEADERS``, the
``OTEL_BSP_*`` batching knobs and ``OTEL_TRACES_SAMPLER``. Setting an OTLP endpoint alone
turns OTLP on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from gateway import __version__
from gateway.core.errors import ConfigError
from gateway.telemetry._tracer import LeanTracerProvider

TENANT_ATTR = "switchboard.tenant"
TENANT_KEY = otel_context.create_key("switchboard.tenant")
tracer = trace.get_tracer("switchboard", __version__)


class _Fanout(SpanProcessor):
    """The provider's one processor: hands spans to the apps' processors."""

    def __init__(self) -> None:
        self._processors: tuple[SpanProcessor, ...] = ()
        self._starters: tuple[SpanProcessor, ...] = ()

    @property
    def processors(self) -> tuple[SpanProcessor, ...]:
        return self._processors

    @processors.setter
    def processors(self, processors: tuple[SpanProcessor, ...]) -> None:
        self._processors = processors
        # The ones that do anything when a span starts (the SDK's exporters and the store do not).
        self._starters = tuple(p for p in processors if type(p).on_start is not SpanProcessor.on_start)

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        for processor in self._starters:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self.processors)


_fanout: _Fanout | None = None


def enabled() -> bool:
    """Whether this process records spans (some app has turned tracing on)."""
    return _fanout is not None and bool(_fanout._processors)


def add_processors(processors: list[SpanProcessor]) -> None:
    """Start handing spans to ``processors`` (installs the provider on first use)."""
    global _fanout
    if _fanout is None:
        resource = Resource.create(
            {
                "service.name": os.environ.get("OTEL_SERVICE_NAME") or "switchboard",
                "service.version": __version__,
                # The same for every MCP request this process serves (Streamable HTTP).
                "network.transport": "tcp",
                "network.protocol.name": "http",
            }
        )
        fanout = _Fanout()
        trace.set_tracer_provider(LeanTracerProvider(resource, fanout, TENANT_KEY, TENANT_ATTR))
        _fanout = fanout
    _fanout.processors = (*_fanout.processors, *processors)


def remove_processors(processors: list[SpanProcessor]) -> None:
    """Stop handing spans to ``processors`` and shut them down (exporters flush)."""
    if _fanout is not None:
        _fanout.processors = tuple(p for p in _fanout.processors if p not in processors)
    for processor in processors:
        processor.shutdown()


def exporters_from_env(env: Mapping[str, str] | None = None) -> list[SpanProcessor]:
    """The span processors the standard ``OTEL_*`` variables ask for (batching, one each).

    Raises:
        ConfigError: an exporter or protocol this gateway does not know.
    """
    processors: list[SpanProcessor] = []
    for name, protocol in wanted_exporters(env):
        exporter: SpanExporter
        if name == "console":
            exporter = ConsoleSpanExporter()
        elif protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

            exporter = Grpc()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

            exporter = Http()
        processors.append(BatchSpanProcessor(exporter))
    return processors


def wanted_exporters(env: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """The exporters (and the OTLP protocol) the ``OTEL_*`` variables name; checked at start-up,
    before anything is built, so a typo is a one-line refusal.

    Raises:
        ConfigError: an exporter or protocol this gateway does not know.
    """
    env = os.environ if env is None else env
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names and (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        names = ["otlp"]
    wanted: list[tuple[str, str | None]] = []
    for name in names:
        if name == "none":
            continue
        if name == "console":
            wanted.append((name, None))
        elif name == "otlp":
            protocol = (
                env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            ).strip()
            if protocol not in ("grpc", "http/protobuf"):
                raise ConfigError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; use http/protobuf or grpc"
                )
            wanted.append((name, protocol))
        else:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}; use otlp, console or none "
                "(the embedded trace store is on unless SWITCHBOARD_TRACE_STORE=false)"
            )
    return wanted
