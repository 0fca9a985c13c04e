"""Interceptors through a real `switchboard serve`: an HTTP endpoint that refuses, a Python
callable that rewrites arguments, an AWS Lambda (on a loopback Lambda API) that annotates the
result, and the built-in redaction that masks what the upstream leaked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.harness import Served, serve
from tests.support.lambda_api import LambdaApi
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"tag": request.headers.get("x-request-tag", "none")})


async def guard(request: Request) -> JSONResponse:
    envelope = await request.json()
    if envelope["arguments"].get("user") == "eve":
        return JSONResponse({"action": "refuse", "message": "eve is blocked by the guard"})
    return JSONResponse({"action": "continue"})


def stamp(event: Any, context: dict[str, Any]) -> dict[str, Any]:
    result = event["result"]
    note = {"type": "text", "text": f"(checked by lambda for {event['principal']['subject']})"}
    return {"action": "continue", "result": {**result, "content": [*result["content"], note]}}


@pytest.fixture(scope="module")
def intercepted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root: Path = tmp_path_factory.mktemp("interceptors")
    api = LambdaApi({"stamp": stamp})
    routes = [Route("/guard", guard, methods=["POST"]), Route("/echo", echo, methods=["POST"])]
    with (
        serve_app(Starlette(routes=routes)) as guard_url,
        serve_app(api.app()) as lambda_url,
    ):
        config = root / "switchboard.yaml"
        config.write_text(
            f"""
gateways:
  - name: default
    interceptors:
      - {{kind: http, phase: request, url: "{guard_url}/guard"}}
      - {{kind: python, phase: request, function: "tests.fixtures.functions:uppercase_user"}}
      - {{kind: lambda, phase: response, function_name: stamp, region: eu-west-1,
          endpoint_url: "{lambda_url}"}}
      - {{kind: redact}}
      - {{kind: python, phase: request, function: "tests.fixtures.functions:tag_request",
          tools: ["echo___*"]}}
    targets:
      - {{name: fx, kind: function, functions: ["tests.fixtures.functions:leak"]}}
      - name: echo
        kind: http
        url: "{guard_url}/echo"
        tools: [{{name: tag, description: "Echo the request tag", input_schema: {{type: object}}}}]
"""
        )
        with serve(
            root / "data", config, env={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        ) as served:
            yield served


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_chain(intercepted: Served, mode: str) -> None:
    async with Client(intercepted.mcp, mode=mode) as client:
        result = await client.call_tool("fx___leak", {"user": "ann"})
        texts = [c.text for c in result.content]  # type: ignore[union-attr]
        assert texts[0].startswith("user ANN:")  # rewritten by the Python interceptor
        assert "[REDACTED:email]" in texts[0] and "ANN@example.com" not in texts[0]
        assert "[REDACTED:github_token]" in texts[0] and "[REDACTED:card]" in texts[0]
        assert texts[1] == "(checked by lambda for anonymous)"
        blocked = await client.call_tool("fx___leak", {"user": "eve"})
        assert blocked.is_error and blocked.content[0].text == "eve is blocked by the guard"  # type: ignore[union-attr]


async def test_a_request_interceptor_adds_an_upstream_header(intercepted: Served) -> None:
    async with Client(intercepted.mcp, mode="legacy") as client:
        result = await client.call_tool("echo___tag", {})
    assert result.structured_content == {"tag": "for-anonymous"}, result
