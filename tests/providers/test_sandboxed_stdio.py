"""The transport of a sandboxed MCP server: its standard error is not the gateway's (nor is its
pid 1's), and a line past the cap stops it instead of growing the gateway's memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp.shared.message import SessionMessage

from gateway.providers._sandboxed_stdio import sandboxed_stdio
from sandbox import BwrapBackend, Sandbox

pytestmark = pytest.mark.anyio

TELL = (
    'printf \'{"jsonrpc":"2.0","method":"fds","params":{"mine":"%s","init":"%s"}}\\n\' '
    '"$(readlink /proc/self/fd/2)" "$(readlink /proc/1/fd/2 2>&1)"; sleep 5'
)


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Sandbox]:
    made: Sandbox = await BwrapBackend(tmp_path / "sandboxes").start()
    yield made
    await made.stop()


async def test_the_servers_standard_error_is_not_the_gateways(box: Sandbox) -> None:
    async with sandboxed_stdio(box.command_line(["sh", "-c", TELL]), 65536, "t") as (read, _):
        with anyio.fail_after(20):
            message = await read.receive()
    assert isinstance(message, SessionMessage)
    params = message.message.params  # type: ignore[union-attr]
    assert params is not None and params["mine"] == "/dev/null"
    assert "/dev/null" in params["init"] or "denied" in params["init"]  # (bwrap's init: the same)


async def test_a_line_past_the_cap_stops_the_server(box: Sandbox) -> None:
    flood = "head -c 50000000 /dev/zero | tr '\\0' a; sleep 30"
    async with sandboxed_stdio(box.command_line(["sh", "-c", flood]), 1024 * 1024, "t") as (read, _):
        with anyio.fail_after(20), pytest.raises(anyio.EndOfStream):
            await read.receive()  # the session ends: the server was stopped at the cap
