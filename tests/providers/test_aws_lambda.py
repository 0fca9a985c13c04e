from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway.config import LambdaTarget, ToolDef
from gateway.core.errors import UpstreamError
from gateway.core.types import CallContext, ToolCall
from gateway.providers.aws_lambda import LambdaProvider
from tests.support.lambda_api import LambdaApi
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio


def weather(event: Any, context: dict[str, Any]) -> Any:
    tool = context["custom"]["bedrockAgentCoreToolName"]
    if tool.endswith("___broken"):
        raise RuntimeError("sensor offline")
    return {"city": event["city"], "tempC": 21, "tool": tool}


@pytest.fixture
def lambda_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LambdaApi, str]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    api = LambdaApi({"weather": weather})
    with serve_app(api.app()) as url:
        yield api, url


def target(url: str, function: str = "weather", qualifier: str | None = None) -> LambdaTarget:
    return LambdaTarget(
        name="wx",
        kind="lambda",
        function_name=function,
        qualifier=qualifier,
        region="eu-west-1",
        endpoint_url=url,
        tools=[
            ToolDef(
                name="get_weather",
                input_schema={"type": "object", "properties": {"city": {"type": "string"}}},
            ),
            ToolDef(name="broken"),
        ],
    )


async def test_invokes_with_bare_arguments_and_agentcore_client_context(
    lambda_api: tuple[LambdaApi, str],
) -> None:
    api, url = lambda_api
    async with LambdaProvider(target(url, qualifier="live"), gateway="gw1") as p:
        result = await p.call_tool(
            ToolCall("get_weather", {"city": "Oslo"}, "wx___get_weather"), CallContext(request_id=7)
        )
    assert result.structured == {"city": "Oslo", "tempC": 21, "tool": "wx___get_weather"}
    (inv,) = api.invocations
    assert inv["event"] == {"city": "Oslo"}
    assert inv["qualifier"] == "live"
    assert inv["context"]["custom"] == {
        "bedrockAgentCoreToolName": "wx___get_weather",
        "bedrockAgentCoreGatewayId": "gw1",
        "bedrockAgentCoreTargetId": "wx",
        "bedrockAgentCoreMessageVersion": "1.0",
        "bedrockAgentCoreMcpMessageId": "7",
    }


async def test_function_error_becomes_is_error(lambda_api: tuple[LambdaApi, str]) -> None:
    _, url = lambda_api
    async with LambdaProvider(target(url)) as p:
        result = await p.call_tool(ToolCall("broken", {}, "wx___broken"), CallContext())
    assert result.is_error
    assert result.structured == {"errorMessage": "sensor offline", "errorType": "RuntimeError"}


async def test_missing_function_is_an_upstream_error(lambda_api: tuple[LambdaApi, str]) -> None:
    _, url = lambda_api
    async with LambdaProvider(target(url, function="nope")) as p:
        with pytest.raises(UpstreamError, match="ResourceNotFoundException"):
            await p.call_tool(ToolCall("get_weather", {"city": "x"}), CallContext())
