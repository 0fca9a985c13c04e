"""Two `switchboard serve` replicas sharing PostgreSQL: a change made through one (or by
`switchboard apply`) reaches the clients of the other, with list_changed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client

from tests.e2e.harness import ROOT, serve
from tests.e2e.postgres import fresh_database

pytestmark = pytest.mark.anyio

DATABASE = "switchboard_e2e"
CONFIG = """
gateways:
  - name: default
    targets:
      - {name: fx, kind: function, functions: ["tests.fixtures.functions:add"]}
"""


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A fresh database for this test on the test PostgreSQL server."""
    async with fresh_database(DATABASE) as url:
        yield url


async def test_replicas_share_configuration_and_notify(database: str, tmp_path: Path) -> None:
    config = tmp_path / "sw.yaml"
    config.write_text(CONFIG)
    env = {"SWITCHBOARD_DATABASE_URL": database, "SWITCHBOARD_CONFIG_POLL_SECONDS": "0.2"}
    saw_change = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            saw_change.set()

    with serve(tmp_path / "a", config, env=env) as a, serve(tmp_path / "b", env=env) as b:
        assert a.admin_key and b.admin_key is None  # one key per deployment, created once
        async with (
            Client(b.mcp, mode="legacy", message_handler=on_message) as on_b,
            Client(b.mcp, mode="2026-07-28") as modern_on_b,
            modern_on_b.listen(tools_list_changed=True) as subscription,
            httpx2.AsyncClient(base_url=a.base, headers=a.admin_headers) as admin_a,
        ):
            assert [t.name for t in (await on_b.list_tools()).tools] == ["fx___add"]
            target = {"name": "more", "kind": "function", "functions": ["tests.fixtures.functions:move"]}
            assert (await admin_a.post("/admin/v1/gateways/default/targets", json=target)).status_code == 201
            with anyio.fail_after(15):
                await saw_change.wait()
                await subscription.__anext__()
            assert sorted(t.name for t in (await on_b.list_tools()).tools) == ["fx___add", "more___move"]
            moved = await modern_on_b.call_tool("more___move", {"p": {"x": 1, "y": 1}})
            assert moved.structured_content == {"x": 1, "y": 1}

            # `switchboard apply -f` is one more writer: both replicas follow it.
            saw_change = anyio.Event()
            result = await anyio.to_thread.run_sync(
                lambda: subprocess.run(
                    [sys.executable, "-m", "gateway.cli", "apply", "-f", str(config)],
                    cwd=ROOT,
                    env={**os.environ, **env},
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            )
            assert result.returncode == 0, result.stderr
            assert "target default/more deleted" in result.stdout
            with anyio.fail_after(15):
                await saw_change.wait()
            assert [t.name for t in (await on_b.list_tools()).tools] == ["fx___add"]
