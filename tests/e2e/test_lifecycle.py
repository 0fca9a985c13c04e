"""Cancellation reaches the provider; SIGTERM lets calls in flight finish."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client

from tests.e2e.harness import Served, serve

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_client_cancellation_cancels_the_provider(served: Served, mode: str) -> None:
    key = f"cancel-{mode}"
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with Client(served.mcp, mode=mode) as client, anyio.create_task_group() as tg:

        async def call() -> None:
            await client.call_tool("fx___slow", {"key": key, "seconds": 60}, progress_callback=on_progress)

        tg.start_soon(call)
        with anyio.fail_after(10):
            await started.wait()
        tg.cancel_scope.cancel()
    async with Client(served.mcp, mode="legacy") as checker:
        result = await checker.call_tool("fx___was_cancelled", {"key": key})
    assert result.structured_content == {"result": True}


async def test_sigterm_finishes_calls_in_flight(tmp_path: Path) -> None:
    config = tmp_path / "sw.yaml"
    config.write_text(
        "gateways:\n  - name: default\n    targets:\n"
        "      - {name: fx, kind: function, functions: ['tests.fixtures.functions:slow']}\n"
    )
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "progressToken": "p1",
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "fx___slow", "arguments": {"key": "term", "seconds": 1.0}, "_meta": meta},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "fx___slow",
    }
    with serve(tmp_path / "data", config) as live:
        frames: list[dict[str, object]] = []
        async with (
            httpx2.AsyncClient(timeout=30) as http,
            http.stream("POST", live.mcp, json=body, headers=headers) as r,
        ):
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                frames.append(json.loads(line[5:]))
                if frames[-1].get("method") == "notifications/progress":
                    live.proc.send_signal(signal.SIGTERM)  # the call is running now
        assert frames[0]["method"] == "notifications/progress"
        assert frames[-1]["result"]["content"][0]["text"] == "term done"  # type: ignore[index]
        # uvicorn re-raises SIGTERM once it has shut down gracefully, so the exit status says "terminated".
        assert await anyio.to_thread.run_sync(lambda: live.proc.wait(timeout=30)) == -signal.SIGTERM
        output = live.output
        assert any("Finished server process" in line for line in output)
        # The lifespan ended cleanly: the writers flushed the call's audit record and spans.
        assert any("Application shutdown complete" in line for line in output), output[-5:]
        assert not any("shutdown failed" in line for line in output)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_cancelling_a_plain_call_cancels_the_provider(served: Served, mode: str) -> None:
    """No progress token: the call takes the fast path, and cancellation still reaches the tool."""
    key = f"plain-cancel-{mode}"
    async with Client(served.mcp, mode=mode) as client, Client(served.mcp, mode="legacy") as observer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "fx___slow", {"key": key, "seconds": 60})
            started = await observer.call_tool("fx___was_started", {"key": key})
            assert started.structured_content == {"result": True}
            tg.cancel_scope.cancel()
        result = await observer.call_tool("fx___was_cancelled", {"key": key})
    assert result.structured_content == {"result": True}


async def test_sigterm_ends_open_listen_streams(tmp_path: Path) -> None:
    """A subscriptions/listen stream is ended on shutdown instead of holding it open."""
    config = tmp_path / "sw.yaml"
    config.write_text(
        "gateways:\n  - name: default\n    targets:\n"
        "      - {name: fx, kind: function, functions: ['tests.fixtures.functions:add']}\n"
    )
    # A grace period far beyond the test's deadline: only ending the stream lets the process exit.
    with serve(tmp_path / "data", config, env={"SWITCHBOARD_SHUTDOWN_GRACE_SECONDS": "3600"}) as live:
        async with (
            Client(live.mcp, mode="2026-07-28") as client,
            client.listen(tools_list_changed=True) as sub,
        ):
            live.proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                async for _ in sub:
                    pass  # a graceful close ends the loop
        assert await anyio.to_thread.run_sync(lambda: live.proc.wait(timeout=30)) == -signal.SIGTERM
