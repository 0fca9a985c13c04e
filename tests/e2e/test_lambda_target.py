"""A `kind: lambda` target through a real `switchboard serve`, against a Lambda Invoke API peer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.e2e.harness import Served, serve
from tests.support.lambda_api import LambdaApi
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio


def inventory(event: Any, context: dict[str, Any]) -> Any:
    tool = context["custom"]["bedrockAgentCoreToolName"]
    if tool == "stock___count":
        return {"sku": event["sku"], "count": 7}
    raise ValueError(f"unknown tool {tool}")


@pytest.fixture(scope="module")
def lambda_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, LambdaApi]]:
    root: Path = tmp_path_factory.mktemp("lambda")
    api = LambdaApi({"inventory": inventory})
    with serve_app(api.app()) as url:
        config = root / "switchboard.yaml"
        config.write_text(
            f"""
gateways:
  - name: default
    targets:
      - name: stock
        kind: lambda
        function_name: arn:aws:lambda:eu-west-1:123456789012:function:inventory
        qualifier: prod
        region: eu-west-1
        endpoint_url: {url}
        tools:
          - name: count
            description: Units in stock for a SKU.
            input_schema: {{type: object, properties: {{sku: {{type: string}}}}, required: [sku]}}
          - name: reorder
            description: Not implemented by the function.
"""
        )
        env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        with serve(root / "data", config, env=env) as served:
            yield served, api


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_lambda_tools_through_the_gateway(lambda_gateway: tuple[Served, LambdaApi], mode: str) -> None:
    served, api = lambda_gateway
    async with Client(served.mcp, mode=mode) as client:
        count = await client.call_tool("stock___count", {"sku": "A-1"})
        assert count.structured_content == {"sku": "A-1", "count": 7}
        failed = await client.call_tool("stock___reorder", {})
        assert failed.is_error
        assert "unknown tool stock___reorder" in failed.content[0].text  # type: ignore[union-attr]
    last = api.invocations[-2]
    assert last["name"].endswith("function:inventory") and last["qualifier"] == "prod"
    assert last["context"]["custom"]["bedrockAgentCoreTargetId"] == "stock"
