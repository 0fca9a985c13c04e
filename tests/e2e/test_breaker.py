"""A circuit breaker through a real `switchboard serve`: a dead upstream opens it (calls then
fail fast, saying why), and it closes again once the upstream is back."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.e2e.harness import serve
from tests.e2e.test_federation import free_port, start_upstream, stop

pytestmark = pytest.mark.anyio


async def test_a_dead_upstream_opens_the_breaker_and_it_recovers(tmp_path: Path) -> None:
    port = free_port()
    upstream = start_upstream(port)
    config = tmp_path / "sw.yaml"
    config.write_text(
        "gateways:\n  - name: default\n"
        "    resilience: {failures: 2, open_seconds: 1, retries: 0}\n"
        "    targets:\n"
        f"      - {{name: py, kind: mcp, url: 'http://127.0.0.1:{port}/mcp', timeout_seconds: 5}}\n"
    )
    try:
        with serve(tmp_path / "data", config) as served:
            async with Client(served.mcp, mode="legacy") as client:
                assert (await client.call_tool("py___add", {"a": 1, "b": 1})).structured_content == {
                    "result": 2
                }
                stop(upstream)
                failures = [await client.call_tool("py___add", {"a": 1, "b": 1}) for _ in range(2)]
                assert all(f.is_error for f in failures)
                fast = await client.call_tool("py___add", {"a": 1, "b": 1})
                assert fast.is_error
                assert "circuit open after 2 failures in a row" in fast.content[0].text  # type: ignore[union-attr]
                upstream = start_upstream(port)
                await anyio.sleep(1.1)  # the breaker's open time passes; the next call is the trial
                back = await client.call_tool("py___add", {"a": 2, "b": 2})
                assert back.structured_content == {"result": 4}, back
    finally:
        stop(upstream)
