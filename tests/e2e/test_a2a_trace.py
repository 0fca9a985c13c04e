"""One trace per trip across protocols, through a real ``switchboard serve`` exporting over OTLP:
an A2A client uses an OpenAPI target's tool through the published tools agent, and an MCP
client delegates to an A2A agent (the same gateway's, reached over HTTP as any remote agent)
whose skill is an MCP-served function; every hop's spans share the caller's trace id, the
OpenAPI upstream sees it in ``traceparent``, and each tool call has its audit record."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from a2a.client import A2ACardResolver, ClientCallContext, ClientConfig, ClientFactory
from a2a.helpers import new_text_message
from a2a.types import Role, SendMessageRequest, TaskState
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.harness import Served, serve
from tests.e2e.test_agentcore import _document as pets_document
from tests.fixtures.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def pets() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def pet(request: Request) -> JSONResponse:
        seen.append(request.headers.get("traceparent", ""))
        return JSONResponse({"id": request.path_params["pet_id"], "name": "Rex"})

    with serve_app(Starlette(routes=[Route("/pets/{pet_id}", pet)])) as base:
        yield base, seen


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, pets: tuple[str, list[str]]
) -> Iterator[tuple[Served, OtlpReceiver]]:
    root: Path = tmp_path_factory.mktemp("a2a-trace")

    config = f"""
gateways:
  - name: default
    a2a_agent: {{}}
    targets:
      - name: pets
        kind: openapi
        spec: {json.dumps(pets_document(pets[0]))}
  - name: inner
    a2a_agent: {{name: adder}}
    targets:
      - name: fx
        kind: function
        functions: [tests.fixtures.functions:add]
"""
    (root / "switchboard.yaml").write_text(config)
    with OtlpReceiver() as receiver:
        env = receiver.env
        with serve(root / "data", root / "switchboard.yaml", env=env) as served:
            yield served, receiver


async def _spans(receiver: OtlpReceiver, trace_id: str, wanted: int) -> list[ReceivedSpan]:
    found: list[ReceivedSpan] = []
    with anyio.move_on_after(20):
        while len(found := [s for s in receiver.spans if s.trace_id == trace_id]) < wanted:  # noqa: ASYNC110
            await anyio.sleep(0.1)
    assert len(found) >= wanted, [(s.name, s.kind) for s in found]
    return found


async def _audit(served: Served, **query: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        records: list[dict[str, Any]] = (await admin.get("/admin/v1/audit", params=query)).json()["records"]
        return records


async def test_an_a2a_client_uses_an_openapi_tool_in_one_trace(
    traced: tuple[Served, OtlpReceiver], pets: tuple[str, list[str]]
) -> None:
    served, receiver = traced
    trace_id = secrets.token_hex(16)
    parent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    async with httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, f"{served.base}/a2a/tools").get_agent_card()
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
        message = new_text_message('{"pet_id": "7"}', role=Role.ROLE_USER)
        message.metadata.update({"skill": "pets___getPet"})
        context = ClientCallContext(service_parameters={"traceparent": parent})
        events = [e async for e in client.send_message(SendMessageRequest(message=message), context=context)]
    task = events[-1].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert '"name": "Rex"' in task.artifacts[0].parts[0].text or "Rex" in task.artifacts[0].parts[0].text
    assert pets[1] and pets[1][-1].split("-")[1] == trace_id  # the upstream is in the caller's trace
    spans = await _spans(receiver, trace_id, 3)
    kinds = {s.kind for s in spans}
    assert {"SERVER", "CLIENT"} <= kinds
    call = next(s for s in spans if s.name == "tools/call pets___getPet")
    assert call.attributes["switchboard.via"] == "a2a/tools"
    assert not [s for s in spans if s.name.startswith("a2a.")]  # (a2a-sdk's own spans are off)
    records = await _audit(served, tool="pets___getPet")
    assert records and records[0]["outcome"] == "ok"


async def test_an_mcp_client_delegates_to_an_a2a_agent_in_one_trace(
    traced: tuple[Served, OtlpReceiver],
) -> None:
    served, receiver = traced
    async with httpx.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        made = await admin.post(
            "/admin/v1/gateways/default/targets",
            json={"name": "delegate", "kind": "a2a", "url": f"{served.base}/gateways/inner/a2a/adder"},
        )
        assert made.status_code in (200, 201), made.text
    trace_id = secrets.token_hex(16)
    meta = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    async with Client(served.mcp, mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "delegate___fx___add" in names
        result = await client.call_tool(
            "delegate___fx___add", {"message": "", "data": {"a": 20, "b": 22}}, meta=meta
        )
    assert not result.is_error, result
    assert "42" in "".join(getattr(b, "text", "") for b in result.content)
    # The call's trace is the one _meta names, unless this test process sent a traceparent header
    # of its own (an earlier test's instrumentation, in the same worker): the header then parents
    # the call (ADR 0018). Either way the whole trip is one trace: the call's.
    with anyio.fail_after(20):
        while not (called := [s for s in receiver.spans if s.name == "tools/call delegate___fx___add"]):  # noqa: ASYNC110
            await anyio.sleep(0.1)
    trace_id = called[0].trace_id
    spans = await _spans(receiver, trace_id, 4)
    server = [s for s in spans if s.kind == "SERVER"]
    assert len({s.span_id for s in server}) >= 2  # the MCP request and the A2A request it made
    assert (await _audit(served, tool="delegate___fx___add")) and (await _audit(served, gateway="inner"))
