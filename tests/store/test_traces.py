"""The embedded trace store: spans written by the sink, read per tenant, forgotten after
the retention; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.lowlevel
import orjson
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, StatusCode

from gateway.store import SessionFilter, Store, StoreTraces
from gateway.telemetry import (
    TENANT_ATTR,
    HttpSpans,
    Record,
    TraceSink,
    _tracing,
    tag_tenant,
    upstream_request,
)
from gateway.telemetry._record import MAX_CHILDREN
from gateway.telemetry._tracer import LeanTracerProvider
from gateway.telemetry._tracing import Outlets

pytestmark = pytest.mark.anyio


def _provider(sink: TraceSink) -> LeanTracerProvider:
    """The gateway's tracer provider, its records going to ``sink`` alone."""
    outlets = Outlets(Resource.create({}))
    outlets.sinks = (sink,)
    return LeanTracerProvider(Resource.create({}), outlets)


def _acme_request(store: Store, name: str) -> tuple[StoreTraces, TraceSink, trace.Tracer, Record]:
    """A sink on ``store`` and acme's request span ``name``, started (not current)."""
    traces = StoreTraces(store)
    sink = TraceSink(traces.write, traces.purge, retention_seconds=3600)
    tracer = _provider(sink).get_tracer("test")
    request = tracer.start_span(name, attributes={TENANT_ATTR: "acme"})
    assert isinstance(request, Record)
    return traces, sink, tracer, request


def _session(
    provider: LeanTracerProvider, tenant: str, session: str, tools: list[str], *, fail: str = ""
) -> None:
    """An MCP session's requests, each with a decision under it (as the gateway makes them)."""
    tracer = provider.get_tracer("test")
    for n, tool in enumerate(tools):
        attributes = {
            "mcp.method.name": "tools/call",
            "jsonrpc.request.id": str(n),
            "gen_ai.tool.name": tool,
            "mcp.session.id": session,
            "enduser.id": f"{tenant}-user",
            "switchboard.gateway": "default",
            TENANT_ATTR: tenant,
        }
        with tracer.start_as_current_span(
            f"tools/call {tool}", kind=SpanKind.SERVER, attributes=attributes
        ) as s:
            with tracer.start_as_current_span("switchboard.policy", attributes={TENANT_ATTR: tenant}):
                pass
            if tool == fail:
                s.set_status(StatusCode.ERROR, "it broke")


async def test_sink_writes_sessions_per_tenant(store: Store) -> None:
    traces = StoreTraces(store)
    sink = TraceSink(traces.write, traces.purge, retention_seconds=3600)
    provider = _provider(sink)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sink.run)
        _session(provider, "acme", "s-1", ["crm___find", "crm___update"], fail="crm___update")
        _session(provider, "acme", "s-2", ["docs___search"])
        _session(provider, "beta", "s-3", ["crm___find"])
        _session(provider, "beta", "s-4", ["bad\x00name"])  # a client's NUL: PostgreSQL text cannot hold it
        provider.get_tracer("t").start_span("no tenant").end()  # kept out of the store
        await anyio.lowlevel.checkpoint()
        sink.close()
    assert sink.written == 4 + 2 + 2 + 2

    acme = await traces.sessions("acme")
    assert {s["session"] for s in acme} == {"s-1", "s-2"}
    one = next(s for s in acme if s["session"] == "s-1")
    assert (one["steps"], one["errors"], one["subject"]) == (2, 1, "acme-user")
    assert [s["session"] for s in await traces.sessions("acme", SessionFilter(tool="update"))] == ["s-1"]
    assert [s["session"] for s in await traces.sessions("acme", SessionFilter(errors_only=True))] == ["s-1"]
    assert await traces.sessions("acme", SessionFilter(subject="beta-user")) == []
    assert await traces.sessions("acme", SessionFilter(since_ns=time.time_ns() + 10**12)) == []
    assert await traces.sessions("acme", SessionFilter(tool="100%_")) == []  # LIKE characters are literal

    spans = await traces.session("acme", "s-1")
    assert [s["name"] for s in spans] == [
        "tools/call crm___find",
        "switchboard.policy",
        "tools/call crm___update",
        "switchboard.policy",
    ]
    step = spans[2]
    assert step["error"] and step["status_message"] == "it broke"
    assert step["attributes"]["gen_ai.tool.name"] == "crm___update"
    assert spans[3]["parent_id"] == step["span_id"] and spans[3]["session"] is None
    assert len(await traces.trace("acme", step["trace_id"])) == 2

    # Another tenant cannot read a session or a trace by its id.
    assert await traces.session("beta", "s-1") == []
    assert await traces.trace("beta", step["trace_id"]) == []
    assert sorted(s["session"] for s in await traces.sessions("beta")) == ["s-3", "s-4"]
    assert [s["tool"] for s in await traces.session("beta", "s-4") if s["tool"]] == ["badname"]

    # The retention: everything started before the cut is forgotten.
    assert await traces.purge(time.time_ns() + 1) == 5  # rows: each call's span holds its decision
    assert await traces.sessions("acme") == []


async def test_sink_drops_rather_than_waits_when_full(store: Store) -> None:
    traces = StoreTraces(store)
    sink = TraceSink(traces.write, traces.purge, retention_seconds=3600, capacity=3)
    provider = _provider(sink)
    token = otel_context.attach(otel_context.Context())
    try:
        _session(provider, "acme", "s-1", ["a", "b", "c", "d"])  # four rows: three kept (not running yet)
    finally:
        otel_context.detach(token)
    await sink.flush()
    assert sink.written == 6  # three calls' spans and their decisions


async def test_a_span_that_ends_after_its_request_is_kept_on_its_own(store: Store) -> None:
    """Work a request left running: what ends under it after it went out gets a row of its own."""
    traces = StoreTraces(store)
    sink = TraceSink(traces.write, traces.purge, retention_seconds=3600)
    tracer = _provider(sink).get_tracer("test")
    request = tracer.start_span("tools/call a", attributes={TENANT_ATTR: "acme"})
    with trace.use_span(request, end_on_exit=False):
        late = tracer.start_span("switchboard.upstream")
        tracer.start_span("switchboard.policy").end()
    request.end()
    late.end()
    await sink.flush()
    assert sink.written == 3
    rows = await traces.trace("acme", format(request.get_span_context().trace_id, "032x"))
    assert [(r["name"], r["parent_id"]) for r in rows] == [
        ("tools/call a", None),
        ("switchboard.upstream", format(request.get_span_context().span_id, "016x")),
        ("switchboard.policy", format(request.get_span_context().span_id, "016x")),
    ]


async def test_a_span_whose_request_never_ends_is_not_kept(store: Store) -> None:
    """An abandoned request's span (the fast path handing the request to the SDK path, which
    makes its own) is never written, nor what ended under it."""
    traces = StoreTraces(store)
    sink = TraceSink(traces.write, traces.purge, retention_seconds=3600)
    tracer = _provider(sink).get_tracer("test")
    abandoned = tracer.start_span("tools/call a", attributes={TENANT_ATTR: "acme"})  # never ends
    with trace.use_span(abandoned, end_on_exit=False):
        tracer.start_span("switchboard.policy").end()
    await sink.flush()
    assert sink.written == 0


async def test_arguments_are_masked_as_written_and_as_they_were_when_recorded(store: Store) -> None:
    """A call's arguments are serialised when recorded and masked by the writer: the row holds
    them masked, as they were then (a later change to the value is not what ran)."""
    traces, sink, _tracer, request = _acme_request(store, "tools/call a")
    arguments = {"user": "ann", "password": "hunter2", "note": "mail ann@example.com"}
    request.defer("gen_ai.tool.call.arguments", "switchboard.tool.input_tokens_estimate", arguments, 4096)
    arguments["user"] = "changed later"
    request.end()
    await sink.flush()
    (row,) = await traces.trace("acme", format(request.get_span_context().trace_id, "032x"))
    assert orjson.loads(row["attributes"]["gen_ai.tool.call.arguments"]) == {
        "user": "ann",
        "password": "[REDACTED]",
        "note": "mail [REDACTED:email]",
    }
    assert row["attributes"]["switchboard.tool.input_tokens_estimate"] > 0


async def test_a_long_request_keeps_a_bounded_number_of_spans_until_it_ends(store: Store) -> None:
    """Past MAX_CHILDREN, what ends under a request that is still running goes out on its own."""
    traces, sink, tracer, request = _acme_request(store, "tools/call long")
    with trace.use_span(request, end_on_exit=True):
        for n in range(MAX_CHILDREN + 5):
            tracer.start_span(f"step {n}").end()
        assert request.children is not None and len(request.children) == MAX_CHILDREN
    await sink.flush()
    assert sink.written == 1 + MAX_CHILDREN + 5
    rows = await traces.trace("acme", format(request.get_span_context().trace_id, "032x"))
    assert len(rows) == 1 + MAX_CHILDREN + 5


async def test_work_an_admin_request_runs_for_other_tenants_is_not_filed_under_its_tenant(
    store: Store,
) -> None:
    """An admin request is filed under its tenant once it knows it (``tag_tenant``), but the
    work it runs may be every tenant's (a reload lists each tenant's pinned gateways again):
    what runs under it, or ends after it, is in nobody's traces."""
    traces = StoreTraces(store)
    sink = TraceSink(traces.write, traces.purge, retention_seconds=3600)
    seen: dict[str, Any] = {}

    async def admin(scope: Any, receive: Any, send: Any) -> None:
        tag_tenant("acme")
        seen["trace_id"] = format(trace.get_current_span().get_span_context().trace_id, "032x")
        with _tracing.tracer.start_as_current_span("MCP send tools/list", kind=SpanKind.CLIENT):
            pass
        with upstream_request("GET", "https", "crm.globex.example", 443, "/v1/spec") as other:
            other.status = 200
        seen["late"] = _tracing.tracer.start_span("MCP send ping")  # a provider's task opened here
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    _tracing.add_outlets([sink], [])
    try:
        scope = {"type": "http", "method": "PUT", "path": "/admin/v1/gateways/x", "headers": []}
        await HttpSpans(admin)(scope, receive, send)
        seen["late"].end()
    finally:
        _tracing.remove_outlets([sink], [])
    await sink.flush()
    (row,) = await traces.trace("acme", seen["trace_id"])
    assert row["name"] == "PUT" and row["parent_id"] is None  # the request itself: acme's
    assert sink.written == 1


async def test_a_large_result_is_held_capped_until_it_is_written(store: Store) -> None:
    """What waits for the writer is the part of a value that is recorded, not the value."""
    traces, sink, _tracer, request = _acme_request(store, "tools/call big")
    request.defer(
        "gen_ai.tool.call.result", "switchboard.tool.output_tokens_estimate", {"blob": "x" * 10**6}, 100
    )
    assert request.captures is not None and len(request.captures[0][2]) == 200
    request.end()
    await sink.flush()
    (row,) = await traces.trace("acme", format(request.get_span_context().trace_id, "032x"))
    assert row["attributes"]["gen_ai.tool.call.result"].endswith("... [1000011 characters in all]")
    assert row["attributes"]["switchboard.tool.output_tokens_estimate"] == 250003


async def test_a_request_without_a_tenant_is_not_stored(store: Store) -> None:
    traces = StoreTraces(store)
    sink = TraceSink(traces.write, traces.purge, retention_seconds=3600)
    tracer = _provider(sink).get_tracer("test")
    tracer.start_span("tools/call x", attributes={TENANT_ATTR: ""}).end()
    tracer.start_span("tools/call y").end()
    await sink.flush()
    assert sink.written == 0
