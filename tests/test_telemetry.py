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
    TENANT_ATTR,
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


def test_capture_reads_members_not_the_json_held_in_a_string() -> None:
    """A result holding JSON as text (a tool search's answer: its text content repeats the
    structured one) is one string: what looks like a member inside it is not one, and the
    members after it are still read; a secret's value the window cuts is masked from its start."""
    inner = orjson.dumps({"token": "in-text", "items": [{"name": "x", "password": "p"}] * 50}).decode()
    text = capture({"content": [{"type": "text", "text": inner}], "client_secret": "s3"}, 8192)[0]
    recorded = orjson.loads(text)
    assert recorded["content"][0]["text"] == inner and recorded["client_secret"] == "[REDACTED]"
    window = '{"ok":"yes","api_key":"sk-live-0123456789abcdef'  # (clip: the value runs on)
    from gateway.telemetry._capture import masked

    assert masked(window, 4000, 2000)[0].startswith('{"ok":"yes","api_key":"[REDACTED]"... [4000')
    long_key = capture({"x" * 150 + "_password": "hunter2", "y" * 150: "seen"}, 4096)[0]
    assert "hunter2" not in long_key and "seen" in long_key  # (a long key is read too)
    newline = masked('{"password":"a\\\nb","n":1}', 24, 2000)[0]  # (a raw newline: not orjson's)
    assert newline == '{"password":"[REDACTED]","n":1}'
    escaped = '{"ok":"yes","password":"say \\"hi\\'  # (cut after an escape's backslash)
    assert masked(escaped, 4000, 2000)[0].startswith('{"ok":"yes","password":"[REDACTED]"... [4000')


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
    _tracing.add_outlets([], [processor])
    metrics = _metrics.Metrics()
    _metrics.activate(metrics)
    yield exporter
    _tracing.remove_outlets([], [processor])
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
    _tracing.add_outlets([], [])
    outlets = _tracing._outlets
    _tracing.add_outlets([], [])
    assert _tracing._outlets is outlets


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


def test_capture_masks_every_secret_key_spelling_it_knows() -> None:
    """The member scan is skipped for text without a secret-looking key: never for one with."""
    from gateway.telemetry._capture import _SECRET_NAMES, _SECRET_PARTS

    for word in (*_SECRET_PARTS, *_SECRET_NAMES):
        spellings = {word, word.upper(), word.title(), f"{word[:2]}_{word[2:]}", f"{word[:2]}-{word[2:]}"}
        if word in _SECRET_PARTS:  # a part of a key; a name is the whole key
            spellings |= {f"x-{word}", f"my{word.title()}", f"{word}_id"}
        for key in spellings:
            recorded = orjson.loads(capture({"plain": "kept", "nested": [{key: 42}]}, 4096)[0])
            assert recorded == {"plain": "kept", "nested": [{key: "[REDACTED]"}]}, key


def test_gateway_spans_are_sdk_spans_that_exporters_take(recorded: InMemorySpanExporter) -> None:
    """The gateway's tracer makes spans cheaply; what reaches a processor is an SDK span all the same."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan

    token = otel_context.attach(otel_context.Context())
    try:
        with _tracing.tracer.start_as_current_span("outer", attributes={TENANT_ATTR: "acme"}) as outer:
            inner = _tracing.tracer.start_span("inner", attributes={"n": 1, "skip": None})
            inner.set_attribute("listed", [1, "two"])
            thing: Any = ToolCall("find", {}, "crm___find")  # not a plain value: its text is recorded
            inner.set_attribute("thing", thing)
            inner.set_attributes({"flag": True, "gone": None})
            inner.end()
            inner.set_attribute("late", "ignored")  # an ended span does not change
    finally:
        otel_context.detach(token)
    spans = recorded.get_finished_spans()
    assert [s.name for s in spans] == ["inner", "outer"]
    assert all(isinstance(s, ReadableSpan) for s in spans)
    inner_done, outer_done = spans
    attributes: dict[str, Any] = dict(inner_done.attributes or {})  # filed under the request's tenant
    assert attributes.pop("thing").startswith("ToolCall(")
    assert attributes == {"n": 1, "listed": (1, "two"), "flag": True, TENANT_ATTR: "acme"}
    assert inner_done.parent == outer.get_span_context()
    assert inner_done.context.trace_id == outer_done.context.trace_id
    assert outer_done.parent is None
    assert (outer_done.end_time or 0) >= (inner_done.end_time or 0) > (inner_done.start_time or 0)
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_a_parent_that_says_not_sampled_is_followed(recorded: InMemorySpanExporter) -> None:
    from opentelemetry.propagate import extract

    unsampled = extract({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"})
    span = _tracing.tracer.start_span("tools/call x", context=unsampled)
    assert not span.is_recording()
    assert span.get_span_context().trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    span.end()
    sampled = extract({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    _tracing.tracer.start_span("tools/call y", context=sampled).end()
    assert [s.name for s in recorded.get_finished_spans()] == ["tools/call y"]


def test_a_configured_sampler_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace import sampling

    from gateway.telemetry._tracer import LeanTracerProvider

    exporter = InMemorySpanExporter()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    provider = LeanTracerProvider(_resource(), _exporting(exporter))
    assert provider.sampler is sampling.ALWAYS_OFF
    span = provider.get_tracer("t").start_span("dropped")
    assert not span.is_recording()
    span.end()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    provider = LeanTracerProvider(_resource(), _exporting(exporter))
    provider.get_tracer("t").start_span("kept").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["kept"]
    provider.shutdown()


def _exporting(exporter: InMemorySpanExporter) -> _tracing.Outlets:
    outlets = _tracing.Outlets(_resource())
    outlets.processors = (SimpleSpanProcessor(exporter),)
    return outlets


def _resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": "test"})


def test_a_failure_inside_a_span_is_recorded(recorded: InMemorySpanExporter) -> None:
    with pytest.raises(ToolExecutionError), _tracing.tracer.start_as_current_span("work"):
        raise ToolExecutionError("upstream broke")
    (span,) = recorded.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert span.status.description == "ToolExecutionError: upstream broke"
    assert [e.name for e in span.events] == ["exception"]


def test_otel_sdk_disabled_turns_the_gateways_tracer_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.telemetry._tracer import LeanTracerProvider

    exporter = InMemorySpanExporter()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    provider = LeanTracerProvider(_resource(), _exporting(exporter))
    span = provider.get_tracer("t").start_span("nothing")
    assert not span.is_recording()
    span.end()
    assert exporter.get_finished_spans() == ()
    provider.shutdown()


def test_a_trace_the_gateway_starts_has_an_id_that_grows_with_time(recorded: InMemorySpanExporter) -> None:
    """The trace store's indexes append instead of scattering: the first six bytes are the
    start in milliseconds; the rest stays random (W3C level 2 asks the last seven bytes to be)."""
    import time

    before = time.time_ns() // 1_000_000
    ids = []
    for _ in range(64):
        span = _tracing.tracer.start_span("tools/call x")
        ids.append(span.get_span_context().trace_id)
        span.end()
    after = time.time_ns() // 1_000_000
    for trace_id in ids:
        assert before <= trace_id >> 80 <= after
    assert [i >> 80 for i in ids] == sorted(i >> 80 for i in ids)
    assert len({i & (1 << 56) - 1 for i in ids}) == len(ids)  # the low seven bytes differ
    assert all(s.context.trace_flags.random_trace_id for s in recorded.get_finished_spans())


def test_upstream_headers_are_what_the_w3c_propagator_writes(recorded: InMemorySpanExporter) -> None:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    from gateway.telemetry import upstream_request

    parents = {
        "sampled, with tracestate": {
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "vendor=abc,other=x",
        },
        "not sampled": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
        "none": {},
    }
    for case, carrier in parents.items():
        token = otel_context.attach(extract(carrier))
        try:
            with upstream_request("GET", "http", "127.0.0.1", 8080, "/items/7") as traced:
                assert traced.span is not None
                expected: dict[str, str] = {}
                inject(expected, context=trace.set_span_in_context(traced.span))
                assert traced.headers == expected, case
                assert (
                    traced.headers["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
                    or not carrier
                )
        finally:
            otel_context.detach(token)
    upstream = [s for s in recorded.get_finished_spans() if s.name == "GET"]
    assert [s.context.trace_state.to_header() for s in upstream if s.context] == ["vendor=abc,other=x", ""]
