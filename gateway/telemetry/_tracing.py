"""Tracing: one process-wide TracerProvider; each running app adds its outlets.

The OpenTelemetry API allows one global provider per process, and the `mcp` SDK's own
spans (the upstream MCP client's ``MCP send ...``) reach it through the global. So the
provider is installed once (``LeanTracerProvider``: spans recorded cheaply, see
``_record``), with ``Outlets`` whose sinks (the embedded store) and processors (exporters)
each app's lifespan adds and takes back. An MCP request's span names its tenant when it
starts, which is how the embedded store keeps each tenant's traces apart; the spans under
it (decisions, upstream requests) are filed with it. The spans under a request whose tenant
was set later (an admin request, ``tag_tenant``: its work may touch every tenant) are not
filed in anyone's store.

Exporters come from the standard variables: ``OTEL_TRACES_EXPORTER`` (``otlp``,
``console``, ``none``; a list), ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (``http/protobuf``
by default, or ``grpc``), ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` and ``_HEADERS``, the
``OTEL_BSP_*`` batching knobs and ``OTEL_TRACES_SAMPLER``. Setting an OTLP endpoint alone
turns OTLP on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Protocol

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from gateway import __version__
from gateway.core.errors import ConfigError
from gateway.telemetry._record import Record, readable
from gateway.telemetry._tracer import LeanTracerProvider

tracer = trace.get_tracer("switchboard", __version__)

# a2a-sdk traces each of its own functions (a dozen spans and more per A2A message, into every
# trace through the gateway's A2A front and a2a targets) unless told not to; the gateway's own
# spans say what a call did. An operator who wants them sets the variable to true.
os.environ.setdefault("OTEL_INSTRUMENTATION_A2A_SDK_ENABLED", "false")


class RecordSink(Protocol):
    """Takes finished trees of records as they are (the embedded trace store)."""

    def take(self, record: Record) -> None: ...


class Outlets:
    """Where the provider's finished records go: the sinks take them as they are; the SDK's
    processors (the exporters) get them as SDK spans, made only when there are any."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.sinks: tuple[RecordSink, ...] = ()
        self.processors: tuple[SpanProcessor, ...] = ()

    def deliver(self, record: Record) -> None:
        for sink in self.sinks:
            sink.take(record)
        if self.processors:
            for span in readable(record, self.resource):
                for processor in self.processors:
                    processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self.processors)


_outlets: Outlets | None = None


def enabled() -> bool:
    """Whether this process records spans (some app has turned tracing on)."""
    return _outlets is not None and bool(_outlets.sinks or _outlets.processors)


def _installed() -> Outlets:
    global _outlets
    if _outlets is None:
        resource = Resource.create(
            {
                "service.name": os.environ.get("OTEL_SERVICE_NAME") or "switchboard",
                "service.version": __version__,
                # The same for every MCP request this process serves (Streamable HTTP).
                "network.transport": "tcp",
                "network.protocol.name": "http",
            }
        )
        outlets = Outlets(resource)
        trace.set_tracer_provider(LeanTracerProvider(resource, outlets))
        _outlets = outlets
    return _outlets


def add_outlets(sinks: Sequence[RecordSink], processors: Sequence[SpanProcessor]) -> None:
    """Start handing finished records to ``sinks`` and ``processors`` (installs the provider
    on first use)."""
    outlets = _installed()
    outlets.sinks = (*outlets.sinks, *sinks)
    outlets.processors = (*outlets.processors, *processors)


def remove_outlets(sinks: Sequence[RecordSink], processors: Sequence[SpanProcessor]) -> None:
    """Stop handing records to ``sinks`` and ``processors``; shut the processors down (exporters flush)."""
    if _outlets is not None:
        _outlets.sinks = tuple(s for s in _outlets.sinks if s not in sinks)
        _outlets.processors = tuple(p for p in _outlets.processors if p not in processors)
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
