"""Prometheus /metrics from a real ``switchboard serve``: per-tool counts and durations,
pipeline decisions (cache, rate limit), upstream health, and who may scrape."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx2
import pytest
from mcp import Client

from tests.e2e.harness import Served, serve_config

pytestmark = pytest.mark.anyio
TOKEN = "scrape-me-0123456789"
CONFIG = """
gateways:
  - name: default
    targets:
      - name: fx
        kind: function
        functions: [tests.fixtures.functions:add, tests.fixtures.functions:tally]
        overrides: {tally: {annotations: {readOnlyHint: true}}}
      - name: dead
        kind: mcp
        url: http://127.0.0.1:9/mcp
    rate_limits: [{limit: 2/minute, per: caller_tool, tools: [fx___add]}]
    cache: [{tools: [fx___tally], ttl_seconds: 60}]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_config(
        tmp_path_factory.mktemp("metrics"), CONFIG, env={"SWITCHBOARD_METRICS_TOKEN": TOKEN}
    ) as s:
        yield s


def _value(text: str, name: str, **labels: str) -> float:
    """One series' value from the exposition (labels in any order)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} with {labels} in:\n{text}")


async def test_metrics_count_calls_decisions_and_health(served: Served) -> None:
    async with Client(served.mcp, mode="2026-07-28") as client:
        for _ in range(3):
            await client.call_tool("fx___add", {"a": 1, "b": 2})  # the third is over the limit
        for _ in range(2):
            await client.call_tool("fx___tally", {})  # the second is a cache hit
    async with httpx2.AsyncClient(base_url=served.base) as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 401
        assert "SWITCHBOARD_METRICS_TOKEN" in refused.json()["error"]
        assert (await http.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    text = scraped.text
    add = {"tenant": "default", "gateway": "default", "target": "fx", "tool": "fx___add"}
    assert _value(text, "switchboard_tool_calls_total", **add, outcome="ok") == 2
    assert _value(text, "switchboard_tool_calls_total", **add, outcome="limited") == 1
    assert _value(text, "switchboard_tool_call_duration_seconds_count", **add) == 3
    decisions = {"tenant": "default", "gateway": "default"}

    def decided(stage: str, decision: str) -> float:
        return _value(
            text, "switchboard_pipeline_decisions_total", **decisions, stage=stage, decision=decision
        )

    assert decided("rate_limit", "allow") == 2  # tally has no limit: no decision
    assert decided("rate_limit", "limited") == 1
    assert (decided("cache", "miss"), decided("cache", "hit")) == (1, 1)
    assert _value(text, "switchboard_mcp_requests_total", **decisions, method="tools/call", outcome="ok") == 5
    assert _value(text, "switchboard_upstream_up", **decisions, target="fx") == 1
    assert _value(text, "switchboard_upstream_up", **decisions, target="dead") == 0
