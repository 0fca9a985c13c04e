"""Telemetry's parts: what a span records of arguments, the exporters the OTEL_* variables
ask for, decision spans and counts, and JSON log lines with trace ids."""

from __future__ import annotations

import io
import logging
from concurrent import futures
from typing import Any

import grpc
import orjson
import pytest
from opentelemetry.propagate import inject
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.core.errors import ConfigError, ToolExecutionError
from gateway.core.types import CallContext, ToolCall, ToolResult
from gateway.telemetry import (
    JsonFormatter,
    _metrics,
    _tracing,
    capture,
    decided,
    exporters_from_env,
    mcp_span,
)

pytestmark = pytest.mark.anyio
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLXZhbHVl"


def test_capture_masks_secrets_and_caps_size() -> None:
    text, tokens = capture(
        {"user": "ann", "password": "hunter2", "nested": {"api_key": "k"}, "note": JWT}, 4096
    )
    recorded = orjson.loads(text)
    assert recorded == {
        "user": "ann",
        "password": "[REDACTED]",
        "nested": {"api_key": "[REDACTED]"},
        "note": "[REDACTED:jwt]",
    }
    assert tokens > 0
    big, big_tokens = capture({"blob": "x" * 10_000}, 100)
    assert big.startswith('{"blob":"xxx') and big.endswith("characters in all]") and len(big) < 140
    assert big_tokens == 2503  # about four characters a token, of what was sent (10,012)
    cut = capture({"a": "x" * 80 + " " + JWT}, 100)[0]  # the cap falls inside the token: masked whole
    assert "eyJ" not in cut and cut.endswith(" [REDACTED:jwt... [149 characters in all]")


def test_capture_masks_common_secret_key_spellings() -> None:
    arguments = {
        "x-api-key": "abc123",
        "Cookie": "sid=1",
        "pwd": 12345,
        "privateKey": "k",
        "auth": "Basic dXNlcjpwYXNz",
        "passphrase": "open",
        "ticket_id": "SUP-1",
        "key": "PROJ-7",
    }
    recorded = orjson.loads(capture(arguments, 4096)[0])
    assert {k for k, v in recorded.items() if v == "[REDACTED]"} == set(arguments) - {"ticket_id", "key"}
    assert recorded["ticket_id"] == "SUP-1" and recorded["key"] == "PROJ-7"


def test_clients_baggage_is_not_taken() -> None:
    from gateway.telemetry._spans import http_context, meta_context

    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = [(b"traceparent", parent.encode()), (b"baggage", b"internal.role=admin")]
    for ctx in (
        http_context(headers),
        meta_context({"traceparent": parent, "baggage": "internal.role=admin"}),
    ):
        carrier: dict[str, str] = {}
        inject(carrier, context=ctx)
        assert carrier["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        assert "baggage" not in carrier


async def test_made_up_methods_share_one_metrics_label(recorded: InMemorySpanExporter) -> None:
    for method in ("tools/list", "x-made-up-1", "x-made-up-2"):
        with mcp_span(method, tenant="t", gateway="g", request_id=1):
            pass
    metrics = _metrics.current()
    assert metrics is not None
    text = metrics.exposition().decode()
    assert 'method="other"' in text and "x-made-up" not in text
    assert 'method="tools/list"' in text


def test_exporters_follow_the_standard_variables() -> None:
    assert exporters_from_env({}) == []
    assert exporters_from_env({"OTEL_TRACES_EXPORTER": "none"}) == []
    http = exporters_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    grpc = exporters_from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"})
    try:
        assert [type(p) for p in http + grpc] == [BatchSpanProcessor, BatchSpanProcessor]
        assert "proto.http" in type(http[0].span_exporter).__module__  # type: ignore[attr-defined]
        assert "proto.grpc" in type(grpc[0].span_exporter).__module__  # type: ignore[attr-defined]
    finally:
        for p in http + grpc:
            p.shutdown()
    with pytest.raises(ConfigError, match="unknown exporter 'zipkin'; use otlp, console or none"):
        exporters_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(ConfigError, match="'http/json' is not supported; use http/protobuf or grpc"):
        exporters_from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


@pytest.fixture
def recorded() -> InMemorySpanExporter:
    """Spans of this test, through the gateway's process-wide provider."""
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    _tracing.add_processors([processor])
    metrics = _metrics.Metrics()
    _metrics.activate(metrics)
    yield exporter
    _tracing.remove_processors([processor])
    _metrics.activate(None)


async def _allow(call: ToolCall, ctx: CallContext, call_next: object) -> ToolResult:
    return await call_next(call, ctx)  # type: ignore[operator, no-any-return]


async def _deny(call: ToolCall, ctx: CallContext, call_next: object) -> ToolResult:
    raise ToolExecutionError("policy forbids crm___delete for ann")


async def _hit(call: ToolCall, ctx: CallContext, call_next: object) -> ToolResult:
    return ToolResult.text("from the cache")


async def test_decisions_are_spans_and_counts(recorded: InMemorySpanExporter) -> None:
    async def upstream(call: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text("done")

    call, ctx = ToolCall("find", {}, "crm___find"), CallContext()
    assert (await decided("policy", _allow, "t", "g")(call, ctx, upstream)).content[0]["text"] == "done"
    with pytest.raises(ToolExecutionError):
        await decided("policy", _deny, "t", "g")(call, ctx, upstream)
    assert (await decided("cache", _hit, "t", "g")(call, ctx, upstream)).content[0][
        "text"
    ] == "from the cache"
    spans = recorded.get_finished_spans()
    assert [(s.name, (s.attributes or {})["switchboard.decision"]) for s in spans] == [
        ("switchboard.policy", "allow"),
        ("switchboard.policy", "deny"),
        ("switchboard.cache", "hit"),
    ]
    assert spans[1].status.description == "policy forbids crm___delete for ann"
    metrics = _metrics.current()
    assert metrics is not None
    text = metrics.exposition().decode()
    assert (
        'switchboard_pipeline_decisions_total{decision="deny",gateway="g",stage="policy",tenant="t"} 1.0'
        in text
    )
    assert (
        'switchboard_pipeline_decisions_total{decision="hit",gateway="g",stage="cache",tenant="t"} 1.0'
        in text
    )


def test_json_log_lines_carry_trace_ids(recorded: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("gateway.test_telemetry")
    log.addHandler(handler)
    try:
        with _tracing.tracer.start_as_current_span("work") as span:
            log.warning("inside %s", "work")
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    inside, outside = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "inside work" and inside["level"] == "warning"
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in outside


def test_provider_is_installed_once() -> None:
    first = TracerProvider()  # a stray provider never replaces the gateway's
    assert first is not None
    _tracing.add_processors([])
    fanout = _tracing._fanout
    _tracing.add_processors([])
    assert _tracing._fanout is fanout


def test_otlp_grpc_export_reaches_a_grpc_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=grpc: spans reach a real OTLP/gRPC receiver."""
    received: list[str] = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.extend(
                s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
            )
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true")
        (processor,) = exporters_from_env(
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        )
        provider = TracerProvider()
        provider.add_span_processor(processor)
        provider.get_tracer("test").start_span("tools/call crm___find").end()
        assert processor.force_flush(10_000)
        provider.shutdown()
    finally:
        server.stop(None)
    assert received == ["tools/call crm___find"]
