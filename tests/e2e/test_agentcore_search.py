"""AgentCore's semantic search (``protocolConfiguration.mcp.searchType: SEMANTIC``), made with
unchanged boto3 through `switchboard serve`: the gateway serves ``x_amz_bedrock_agentcore_search``
and it finds the target's tools; an update without it turns it off (ADR 0047)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.routing import Route

from tests.e2e.harness import Served, serve
from tests.e2e.test_agentcore import ROLE, _access_key, _clients, _document, _pet, _run
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio
SEMANTIC = {"mcp": {"searchType": "SEMANTIC"}}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    root: Path = tmp_path_factory.mktemp("agentcore-search")
    with serve_app(Starlette(routes=[Route("/pets/{pet_id}", _pet)])) as pets, serve(root / "data") as served:
        yield served, pets


async def test_a_semantic_gateway_serves_agentcores_search_tool(live: tuple[Served, str]) -> None:
    served, pets = live
    control, _ = _clients(served, _access_key(served))
    made = await _run(
        lambda: control.create_gateway(
            name="found", roleArn=ROLE, authorizerType="NONE", protocolConfiguration=SEMANTIC
        )
    )
    gid = made["gatewayId"]
    got = await _run(lambda: control.get_gateway(gatewayIdentifier=gid))
    assert got["protocolConfiguration"] == SEMANTIC
    doc = json.dumps(_document(pets))
    await _run(
        lambda: control.create_gateway_target(
            gatewayIdentifier=gid,
            name="store",
            targetConfiguration={"mcp": {"openApiSchema": {"inlinePayload": doc}}},
        )
    )
    async with Client(made["gatewayUrl"], mode="legacy") as client:
        listed = sorted(t.name for t in (await client.list_tools()).tools)
        assert listed == ["store___getPet", "x_amz_bedrock_agentcore_search"]
        found = await client.call_tool("x_amz_bedrock_agentcore_search", {"query": "look up a pet by its id"})
        assert found.structured_content is not None
        assert [t["name"] for t in found.structured_content["tools"]] == ["store___getPet"]
    await _run(
        lambda: control.update_gateway(
            gatewayIdentifier=gid,
            name="found",
            roleArn=ROLE,
            authorizerType="NONE",
            protocolConfiguration={"mcp": {}},
        )
    )
    async with Client(made["gatewayUrl"], mode="legacy") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["store___getPet"]
