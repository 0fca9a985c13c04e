"""An upstream's own tool annotations never make its tool cacheable (or retryable): only the
configuration's word does (SECURITY.md: tool annotations never relax approval, policy or
retry rules). The upstream here says `readOnlyHint: true` of a tool that changes something."""

from __future__ import annotations

import sys
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client

from tests.e2e.harness import serve_config

pytestmark = pytest.mark.anyio


def config(overrides: str) -> str:
    return f"""
gateways:
  - name: default
    cache: [{{ttl_seconds: 60}}]
    targets:
      - name: up
        kind: mcp
        command: [{sys.executable}, -m, tests.fixtures.hinting_upstream]
        {overrides}
"""


async def bumps(url: str) -> list[str]:
    async with Client(url, mode="2026-07-28") as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert listed["up___bump"].annotations is not None and listed["up___bump"].annotations.read_only_hint
        out = []
        for _ in range(2):
            result = await client.call_tool("up___bump", {})
            assert isinstance(result.content[0], types.TextContent)
            out.append(result.content[0].text)
        return out


async def test_an_upstreams_read_only_hint_does_not_get_its_tool_cached(tmp_path: Path) -> None:
    with serve_config(tmp_path, config("")) as live:
        assert await bumps(live.mcp) == ["bumped to 1", "bumped to 2"]  # both calls reached it


async def test_the_configurations_read_only_declaration_does(tmp_path: Path) -> None:
    declared = "overrides: {bump: {annotations: {readOnlyHint: true}}}"
    with serve_config(tmp_path, config(declared)) as live:
        assert await bumps(live.mcp) == ["bumped to 1", "bumped to 1"]  # the second from the cache
