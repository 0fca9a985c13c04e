"""Every operation of the documents in specs/, called through a real `switchboard serve`,
against Prism serving the same document: Prism must see only valid requests."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.e2e.harness import ROOT, serve
from tests.support.prism import prism, prism_binary
from tests.support.samples import sample
from tests.support.tools import need

pytestmark = pytest.mark.anyio

DOCUMENTS = {
    "styles.yaml": ("apiKey", "key-123"),
    "petstore-3.0.yaml": ("bearer", "token-abc"),
    "legacy-swagger2.yaml": ("basic", "ada:secret"),
}


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
async def test_every_operation_passes_prism_validation(document: str, tmp_path: Path) -> None:
    need(prism_binary() is not None, "prism (npm @stoplight/prism-cli)")
    scheme, secret = DOCUMENTS[document]
    spec = ROOT / "specs" / document
    with prism(spec) as upstream:
        config = tmp_path / "switchboard.yaml"
        config.write_text(
            f"""
gateways:
  - name: default
    targets:
      - name: api
        kind: openapi
        spec: {spec}
        base_url: {upstream.url}
        credentials:
          {scheme}: {{env: TEST_API_SECRET}}
"""
        )
        with serve(tmp_path / "data", config, env={"TEST_API_SECRET": secret}) as served:
            failures = []
            async with Client(served.mcp, mode="legacy") as client:
                tools = (await client.list_tools()).tools
                assert tools
                for tool in tools:
                    args = sample(tool.input_schema)
                    result = await client.call_tool(tool.name, args)
                    if result.is_error:
                        failures.append(f"{tool.name}({args}): {result.content[0].text}")  # type: ignore[union-attr]
        assert failures == [], "".join(upstream.lines[-30:]) + "".join(served.output[-30:])
        assert upstream.violations() == []
