"""Traces through a real `switchboard serve`, exported over OTLP/HTTP to a receiver in this
process: a session of calls that all carry one client-supplied W3C trace id (in the HTTP
`traceparent` header and in `params._meta`, SEP-414) comes out as one trace, each tools/call
span a child of the client's span and a parent of its decision and upstream spans; attributes
follow the MCP/GenAI conventions, secrets are masked, and the trace reaches the upstreams."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.harness import ACCEPT, INIT, Served, serve
from tests.e2e.test_federation import free_port, start_upstream
from tests.fixtures.otlp_receiver import OtlpReceiver, ReceivedSpan

MODERN = "2026-07-28"
PASSWORD = "hunter2-correct-horse-battery"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEiLCJyb2xlIjoiYWRtaW4ifQ.c2lnbmF0dXJlLWJ5dGVzLXNlY3JldA"
SIGN_IN = {"user": "ada", "password": PASSWORD, "note": f"my session is {JWT} keep it safe"}
CONFIG = """
gateways:
  - name: default
    targets:
      - name: up
        kind: mcp
        url: http://127.0.0.1:{port}/mcp
        timeout_seconds: 20
        approve_new_tools: true
      - name: hook
        kind: http
        url: http://127.0.0.1:{port}/hook
        timeout_seconds: 10
        tools:
          - name: seen_header
            description: The traceparent header the HTTP function was called with.
            input_schema: {{type: object, properties: {{}}}}
      - name: fx
        kind: function
        functions: [tests.fixtures.functions:add]
        overrides:
          add: {{annotations: {{readOnlyHint: true}}}}
    policies:
      - 'permit(principal, action, resource);'
      - 'forbid(principal, action == Switchboard::Action::"fx___add", resource)
         when {{ context has a && context.a > 100 }};'
    rate_limits:
      - {{limit: 1000/second, per: caller_tool}}
    cache:
      - {{tools: [fx___add], ttl_seconds: 600}}
"""


@dataclass
class Traced:
    served: Served
    receiver: OtlpReceiver


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    root: Path = tmp_path_factory.mktemp("tracing")
    port = free_port()
    upstream = start_upstream(port, "tests.fixtures.traced_upstream")
    try:
        config = root / "switchboard.yaml"
        config.write_text(CONFIG.format(port=port))
        with OtlpReceiver() as receiver:
            env = receiver.env
            with serve(root / "data", config, env=env) as served:
                yield Traced(served, receiver)
    finally:
        upstream.terminate()
        upstream.wait(10)
        if upstream.stdout is not None:
            upstream.stdout.close()


# -- the client's side ---------------------------------------------------------------------


def new_trace() -> str:
    return secrets.token_hex(16)


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def trace_of(header: str | None) -> tuple[str, str]:
    """(trace id, parent span id) of a traceparent."""
    assert header is not None, "no traceparent"
    version, trace_id, span_id, _flags = header.split("-")
    assert version == "00"
    return trace_id, span_id


def streamed(response: httpx2.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


def answer(response: httpx2.Response, rid: int) -> dict[str, Any]:
    """The JSON-RPC response to request ``rid``, from a JSON body or an SSE stream."""
    assert response.status_code == 200, response.text
    if streamed(response):
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                message = json.loads(line[5:])
                if message.get("id") == rid:
                    return dict(message)
        raise AssertionError(f"no answer to request {rid} in the stream:\n{response.text}")
    message = response.json()
    assert message.get("id") == rid, message
    return dict(message)


def result_text(message: dict[str, Any]) -> str:
    assert "result" in message, message
    return "".join(c.get("text", "") for c in message["result"]["content"] if c.get("type") == "text")


@dataclass
class Call:
    """One tools/call the client made inside its own span ``span_id``."""

    rid: int
    tool: str
    span_id: str
    answer: dict[str, Any]
    streamed: bool = False  # answered over SSE (the SDK path) rather than as one JSON body


def call_modern(
    http: httpx2.Client,
    url: str,
    rid: int,
    tool: str,
    arguments: dict[str, Any],
    trace_id: str,
    *,
    in_meta: bool = True,
    in_header: bool = True,
    header_trace: str | None = None,
    progress: str | None = None,
) -> Call:
    """A 2026-07-28 tools/call (no session; the envelope in `_meta` and the routing headers).
    A progress token sends it down the SDK path (the fast path takes none)."""
    span_id = secrets.token_hex(8)
    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    if in_meta:
        meta["traceparent"] = traceparent(trace_id, span_id)
    if progress is not None:
        meta["progressToken"] = progress
    headers = {**ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool}
    if in_header:
        headers["traceparent"] = traceparent(header_trace or trace_id, span_id)
    body = {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": meta},
    }
    response = http.post(url, json=body, headers=headers)
    return Call(rid, tool, span_id, answer(response, rid), streamed(response))


class LegacySession:
    """A 2025-11-25 session over raw HTTP: the initialize handshake, then calls on its session id."""

    def __init__(self, http: httpx2.Client, url: str) -> None:
        self.http, self.url = http, url
        init = http.post(url, json=INIT, headers=ACCEPT)
        assert init.status_code == 200, init.text
        self.session = init.headers["mcp-session-id"]
        self.headers = {**ACCEPT, "mcp-session-id": self.session, "mcp-protocol-version": "2025-11-25"}
        done = http.post(
            url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=self.headers
        )
        assert done.status_code == 202, done.text
        # Listing binds the session to the gateway, which serves its later plain calls itself.
        listing = {"jsonrpc": "2.0", "id": 0, "method": "tools/list"}
        listed = http.post(url, json=listing, headers=self.headers)
        assert "up___seen_trace" in json.dumps(answer(listed, 0))

    def call(
        self, rid: int, tool: str, arguments: dict[str, Any], trace_id: str, *, progress: bool = False
    ) -> Call:
        """A tools/call in the client's span; ``progress`` asks for progress (served by the SDK path)."""
        span_id = secrets.token_hex(8)
        meta: dict[str, Any] = {"traceparent": traceparent(trace_id, span_id)}
        if progress:
            meta["progressToken"] = f"p{rid}"
        body = {
            "jsonrpc": "2.0",
            "id": rid,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": meta},
        }
        headers = {**self.headers, "traceparent": traceparent(trace_id, span_id)}
        response = self.http.post(self.url, json=body, headers=headers)
        return Call(rid, tool, span_id, answer(response, rid), streamed(response))

    def close(self) -> None:
        self.http.delete(self.url, headers=self.headers)


# -- reading the exported spans ------------------------------------------------------------


def server_spans(spans: list[ReceivedSpan], call: Call) -> list[ReceivedSpan]:
    """The gateway's SERVER spans whose parent is the client's span of ``call``."""
    return [
        s
        for s in spans
        if s.kind == "SERVER" and s.parent_span_id == call.span_id and s.scope == "switchboard"
    ]


def server_span(spans: list[ReceivedSpan], call: Call) -> ReceivedSpan | None:
    """The gateway's span of ``call``: the `tools/call` SERVER span whose parent is the client's span."""
    found = [s for s in server_spans(spans, call) if s.attributes.get("mcp.method.name") == "tools/call"]
    assert len(found) <= 1, found
    return found[0] if found else None


def under(spans: list[ReceivedSpan], root: ReceivedSpan) -> list[ReceivedSpan]:
    """Every span below ``root`` (children, their children...)."""
    children: dict[str, list[ReceivedSpan]] = {}
    for s in spans:
        children.setdefault(s.parent_span_id, []).append(s)
    found: list[ReceivedSpan] = []
    waiting = [root.span_id]
    while waiting:
        for child in children.get(waiting.pop(), []):
            assert child.trace_id == root.trace_id
            found.append(child)
            waiting.append(child.span_id)
    return found


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


def decisions(spans: list[ReceivedSpan]) -> dict[str, str]:
    """Stage -> decision of the decision spans among ``spans``."""
    found = {}
    for s in spans:
        if "switchboard.stage" in s.attributes:
            assert s.name == f"switchboard.{s.attributes['switchboard.stage']}"
            assert s.kind == "INTERNAL"
            found[s.attributes["switchboard.stage"]] = s.attributes["switchboard.decision"]
    return found


def wait_for_calls(
    receiver: OtlpReceiver, calls: list[Call], below: dict[int, list[str]] | None = None
) -> list[ReceivedSpan]:
    """The spans received once every call's server span (and the spans named in ``below``, by
    request id, under it) has arrived."""
    below = below or {}

    def done(spans: list[ReceivedSpan]) -> bool:
        for call in calls:
            root = server_span(spans, call)
            if root is None:
                return False
            names = {s.name for s in under(spans, root)}
            if not set(below.get(call.rid, [])) <= names:
                return False
        return True

    return receiver.wait_for(done)


CONVENTIONAL = {
    "mcp.method.name",
    "gen_ai.tool.name",
    "gen_ai.operation.name",
    "jsonrpc.request.id",
    "switchboard.tenant",
    "switchboard.gateway",
    "switchboard.target",
    "enduser.id",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}


def check_call_span(span: ReceivedSpan, call: Call, trace_id: str, target: str) -> None:
    """The attributes every answered tools/call span carries."""
    attrs = span.attributes
    assert span.trace_id == trace_id
    assert span.name == f"tools/call {call.tool}"
    assert set(attrs) >= CONVENTIONAL, sorted(CONVENTIONAL - set(attrs))
    assert attrs["mcp.method.name"] == "tools/call"
    assert attrs["gen_ai.tool.name"] == call.tool
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["jsonrpc.request.id"] == str(call.rid)
    assert attrs["switchboard.tenant"] == "default"
    assert attrs["switchboard.gateway"] == "default"
    assert attrs["switchboard.target"] == target
    assert attrs["enduser.id"] == "anonymous"
    assert span.resource.get("service.name") == "switchboard"


# -- the tests -----------------------------------------------------------------------------


def test_one_traceparent_ties_a_session_of_calls_together(traced: Traced) -> None:
    served, receiver = traced.served, traced.receiver
    trace_id = new_trace()
    with httpx2.Client(timeout=30) as http:
        url = served.mcp
        seen = call_modern(http, url, 1, "up___seen_trace", {}, trace_id)
        signed = call_modern(http, url, 2, "up___sign_in", SIGN_IN, trace_id)
        hooked = call_modern(http, url, 3, "hook___seen_header", {}, trace_id)
        miss = call_modern(http, url, 4, "fx___add", {"a": 2, "b": 3}, trace_id)
        hit = call_modern(http, url, 5, "fx___add", {"a": 2, "b": 3}, trace_id)
        denied = call_modern(http, url, 6, "fx___add", {"a": 1000, "b": 1}, trace_id)
        invalid = call_modern(http, url, 7, "fx___add", {"a": "two"}, trace_id)
    calls = [seen, signed, hooked, miss, hit, denied, invalid]

    # The answers: the upstreams saw the client's trace.
    upstream_meta = json.loads(result_text(seen.answer))["meta"]
    assert trace_of(upstream_meta)[0] == trace_id
    assert result_text(signed.answer) == f"welcome ada; your note: {SIGN_IN['note']}"
    hook_header = hooked.answer["result"]["structuredContent"]["traceparent"]
    assert trace_of(hook_header)[0] == trace_id
    assert miss.answer["result"]["structuredContent"] == {"result": 5}
    assert hit.answer["result"]["structuredContent"] == {"result": 5}
    assert denied.answer["result"]["isError"] is True
    assert invalid.answer["result"]["isError"] is True

    spans = wait_for_calls(
        receiver,
        calls,
        below={1: ["MCP send tools/call seen_trace"], 2: ["MCP send tools/call sign_in"], 3: ["POST"]},
    )
    roots = {call.rid: server_span(spans, call) for call in calls}
    for call, target in zip(calls[:5], ["up", "up", "hook", "fx", "fx"], strict=True):
        root = roots[call.rid]
        assert root is not None
        check_call_span(root, call, trace_id, target)
        assert root.status != "ERROR", root
        assert root.attributes["switchboard.outcome"] == "ok"
    everything = [s for root in roots.values() if root is not None for s in [root, *under(spans, root)]]
    assert {s.trace_id for s in everything} == {trace_id}

    # The MCP target: the SDK's client span sits under the call, and its context is what the
    # upstream received in `_meta` (the gateway's MCP connections send no HTTP `traceparent`).
    for call, tool in ((seen, "seen_trace"), (signed, "sign_in")):
        root = roots[call.rid]
        assert root is not None
        (send,) = named(under(spans, root), f"MCP send tools/call {tool}")
        assert send.kind == "CLIENT"
        assert send.attributes["mcp.method.name"] == "tools/call"
        assert send.attributes["switchboard.tenant"] == "default"
        assert decisions(under(spans, root)).items() >= {"policy": "allow", "rate_limit": "allow"}.items()
    seen_root = roots[seen.rid]
    assert seen_root is not None
    (seen_send,) = named(under(spans, seen_root), "MCP send tools/call seen_trace")
    assert trace_of(upstream_meta) == (trace_id, seen_send.span_id)

    # The HTTP target: an HTTP CLIENT span under the call, whose context the function received.
    hook_root = roots[hooked.rid]
    assert hook_root is not None
    (post,) = named(under(spans, hook_root), "POST")
    assert post.kind == "CLIENT"
    assert post.attributes["http.request.method"] == "POST"
    assert post.attributes["http.response.status_code"] == 200
    assert str(post.attributes["url.full"]).endswith("/hook")
    assert trace_of(hook_header) == (trace_id, post.span_id)

    # Decisions: a cache miss then a hit, then a policy denial (which stops before the rate limit).
    miss_root, hit_root, denied_root = roots[miss.rid], roots[hit.rid], roots[denied.rid]
    assert miss_root is not None and hit_root is not None and denied_root is not None
    assert decisions(under(spans, miss_root)) == {"policy": "allow", "rate_limit": "allow", "cache": "miss"}
    assert decisions(under(spans, hit_root)) == {"policy": "allow", "rate_limit": "allow", "cache": "hit"}
    assert decisions(under(spans, denied_root)) == {"policy": "deny"}
    (policy,) = named(under(spans, denied_root), "switchboard.policy")
    assert policy.status == "ERROR"
    assert denied_root.attributes["error.type"] == "denied"
    assert denied_root.status == "ERROR"
    assert "gen_ai.tool.call.arguments" in denied_root.attributes

    # Arguments that fail the tool's schema: a tool error, on the call's span.
    invalid_root = roots[invalid.rid]
    assert invalid_root is not None
    assert invalid_root.name == "tools/call fx___add"
    assert invalid_root.attributes["error.type"] == "tool_error"
    assert invalid_root.status == "ERROR"


def test_secrets_in_arguments_and_results_never_leave_the_gateway(traced: Traced) -> None:
    served, receiver = traced.served, traced.receiver
    trace_id = new_trace()
    with httpx2.Client(timeout=30) as http:
        signed = call_modern(http, served.mcp, 1, "up___sign_in", SIGN_IN, trace_id)
    assert JWT in result_text(signed.answer)  # the client gets its answer unmasked

    spans = wait_for_calls(receiver, [signed], below={1: ["MCP send tools/call sign_in"]})
    root = server_span(spans, signed)
    assert root is not None
    arguments = json.loads(root.attributes["gen_ai.tool.call.arguments"])
    assert arguments == {
        "user": "ada",
        "password": "[REDACTED]",
        "note": "my session is [REDACTED:jwt] keep it safe",
    }
    result = root.attributes["gen_ai.tool.call.result"]
    assert "[REDACTED:jwt]" in result and "welcome ada" in result
    for body in receiver.bodies:  # nothing exported, anywhere in any span, holds them
        assert PASSWORD.encode() not in body
        assert JWT.encode() not in body
        assert JWT.split(".")[1].encode() not in body


def test_a_handshake_session_is_traced_on_both_paths(traced: Traced) -> None:
    served, receiver = traced.served, traced.receiver
    trace_id = new_trace()
    with httpx2.Client(timeout=30) as http:
        session = LegacySession(http, served.mcp)
        try:
            fast = session.call(11, "up___seen_trace", {}, trace_id)
            sdk = session.call(12, "up___seen_trace", {}, trace_id, progress=True)
            adds = session.call(13, "fx___add", {"a": 40, "b": 2}, trace_id, progress=True)
            invalid = session.call(14, "up___sign_in", {"user": "ada"}, trace_id, progress=True)
        finally:
            session.close()
    assert not fast.streamed and sdk.streamed  # the fast path answered one, the SDK path the other
    for call in (fast, sdk):
        assert trace_of(json.loads(result_text(call.answer))["meta"])[0] == trace_id
    assert adds.answer["result"]["structuredContent"] == {"result": 42}
    assert invalid.answer["result"]["isError"] is True

    calls = [fast, sdk, adds, invalid]
    sent = "MCP send tools/call seen_trace"
    spans = wait_for_calls(receiver, calls, below={11: [sent], 12: [sent]})
    for call, target in ((fast, "up"), (sdk, "up"), (adds, "fx")):
        root = server_span(spans, call)
        assert root is not None
        check_call_span(root, call, trace_id, target)
        assert root.attributes["mcp.protocol.version"] == "2025-11-25"
        assert root.attributes["mcp.session.id"] == session.session
    for call in (fast, sdk):
        root = server_span(spans, call)
        assert root is not None
        (send,) = named(under(spans, root), sent)
        assert trace_of(json.loads(result_text(call.answer))["meta"]) == (trace_id, send.span_id)
    invalid_root = server_span(spans, invalid)
    assert invalid_root is not None
    assert invalid_root.attributes["error.type"] == "tool_error"
    assert invalid_root.status == "ERROR"


def test_a_header_alone_parents_the_call_and_a_differing_header_is_linked(traced: Traced) -> None:
    served, receiver = traced.served, traced.receiver
    trace_id, other = new_trace(), new_trace()
    with httpx2.Client(timeout=30) as http:
        header_only = call_modern(http, served.mcp, 21, "fx___add", {"a": 1, "b": 1}, trace_id, in_meta=False)
        both = call_modern(http, served.mcp, 22, "fx___add", {"a": 1, "b": 2}, trace_id, header_trace=other)
    spans = wait_for_calls(receiver, [header_only, both])
    root = server_span(spans, header_only)
    assert root is not None
    check_call_span(root, header_only, trace_id, "fx")
    assert not root.links
    assert [s.name for s in server_spans(spans, header_only)] == ["tools/call fx___add"]
    linked = server_span(spans, both)
    assert linked is not None
    check_call_span(linked, both, trace_id, "fx")  # `_meta` wins
    assert linked.links == [(other, both.span_id)]


def test_each_request_makes_one_server_span(traced: Traced) -> None:
    served, receiver = traced.served, traced.receiver
    trace_id = new_trace()
    with httpx2.Client(timeout=30) as http:
        fast = call_modern(http, served.mcp, 31, "fx___add", {"a": 5, "b": 5}, trace_id)
        # The SDK path lists tools itself to check Mcp-Param headers: that is no request of the client's.
        slow = call_modern(http, served.mcp, 32, "fx___add", {"a": 6, "b": 5}, trace_id, progress="p-32")
    assert fast.answer["result"]["structuredContent"] == {"result": 10}
    assert slow.answer["result"]["structuredContent"] == {"result": 11}
    spans = wait_for_calls(receiver, [fast, slow])
    for call in (fast, slow):
        assert [s.name for s in server_spans(spans, call)] == ["tools/call fx___add"]
