"""Hosted agents as gateway tools (``kind: runtime``), through a real `switchboard serve`: an MCP
server deployed to the runtime (FastMCP, as AgentCore's users write it) is called by MCP clients
through the gateway, each caller in a sandbox of their own; an HTTP agent is one tool,
``invoke_{runtime}``; a runtime the gateway names before it is deployed is a clear error, and its
tools appear (list_changed) once it is."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from sandbox import available
from tests.e2e.harness import ROOT, Served, create_tenant, serve
from tests.support.tools import need

pytestmark = pytest.mark.anyio

SERVER = ROOT / "tests" / "fixtures" / "runtime_mcp"
AGENT = ROOT / "tests" / "fixtures" / "runtime_agent"
CONFIG = """
gateways:
  - name: default
    auth: {kind: api_key}
    targets:
      - {name: notes, kind: runtime, runtime: notes}
      - {name: echo, kind: runtime, runtime: echo, description: "Echoes what it is sent."}
      - {name: later, kind: runtime, runtime: later}
"""


def _deploy(folder: Path, name: str, data: Path, *options: str) -> None:
    """``switchboard runtime deploy`` (the operator's command)."""
    command = [sys.executable, "-m", "gateway.cli", "runtime", "deploy", str(folder), "--name", name]
    deployed = subprocess.run(
        [*command, *options, "--data-dir", str(data)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert deployed.returncode == 0 and f"deployed {name}:1" in deployed.stdout, deployed.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, dict[str, str], Path]]:
    need(available() is None, f"bubblewrap sandboxes: {available()}")
    root = tmp_path_factory.mktemp("runtime-target")
    data = root / "data"
    _deploy(AGENT, "echo", data)
    _deploy(SERVER, "notes", data, "--protocol", "MCP")
    (root / "switchboard.yaml").write_text(CONFIG)
    with serve(data, root / "switchboard.yaml") as s:
        keys = {}
        for subject in ("ada", "bob"):
            made = httpx2.post(
                f"{s.base}/admin/v1/gateways/default/keys", json={"subject": subject}, headers=s.admin_headers
            )
            assert made.status_code == 201, made.text
            keys[subject] = made.json()["key"]
        yield s, keys, data


@contextlib.asynccontextmanager
async def _client(
    s: Served, key: str, mode: str = "legacy", url: str | None = None, **options: Any
) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120) as http,
        Client(streamable_http_client(url or s.mcp, http_client=http), mode=mode, **options) as client,
    ):
        yield client


def _text(result: types.CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def _sessions(s: Served) -> dict[str, str]:
    async with httpx2.AsyncClient(base_url=s.base, headers=s.admin_headers) as admin:
        listed = (await admin.get("/admin/v1/runtime-sessions")).json()["sessions"]
    return {x["id"]: x["runtime_version"] for x in listed}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_an_mcp_client_calls_the_servers_tools_through_the_gateway(
    served: tuple[Served, dict[str, str], Path], mode: str
) -> None:
    s, keys, _ = served
    async with _client(s, keys["ada"], mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"notes___add", "notes___remember", "notes___recall", "notes___fail"} <= set(tools)
        assert tools["notes___add"].description == "Add two numbers."
        assert tools["notes___add"].input_schema["required"] == ["a", "b"]
        added = await client.call_tool("notes___add", {"a": 2, "b": 3})
        assert not added.is_error and _text(added) == "5" and added.structured_content == {"result": 5}
        failed = await client.call_tool("notes___fail", {"reason": "asked to"})
        assert failed.is_error and "asked to" in _text(failed)


async def test_each_caller_has_a_sandbox_of_their_own(served: tuple[Served, dict[str, str], Path]) -> None:
    s, keys, _ = served
    async with _client(s, keys["ada"]) as ada, _client(s, keys["bob"]) as bob:
        await ada.call_tool("notes___remember", {"text": "ada's first"})
        await bob.call_tool("notes___remember", {"text": "bob's"})
        await ada.call_tool("notes___remember", {"text": "ada's second"})
        mine = await ada.call_tool("notes___recall", {})
        assert mine.structured_content == {"notes": ["ada's first", "ada's second"]}
        theirs = await bob.call_tool("notes___recall", {})
        assert theirs.structured_content == {"notes": ["bob's"]}
        async with _client(s, keys["ada"]) as again:  # another MCP session: another sandbox
            assert (await again.call_tool("notes___recall", {})).structured_content == {"notes": []}
    sessions = await _sessions(s)
    assert sum(1 for version in sessions.values() if version == "notes:1") >= 3


async def test_a_session_the_runtime_ended_starts_afresh_on_the_next_call(
    served: tuple[Served, dict[str, str], Path],
) -> None:
    s, keys, _ = served
    before = await _sessions(s)
    async with _client(s, keys["bob"]) as client:
        await client.call_tool("notes___remember", {"text": "kept until the session ends"})
        (mine,) = [i for i, v in (await _sessions(s)).items() if v == "notes:1" and i not in before]
        async with httpx2.AsyncClient(base_url=s.base, headers=s.admin_headers) as admin:
            assert (await admin.delete(f"/admin/v1/runtime-sessions/{mine}")).status_code == 204
        fresh = await client.call_tool("notes___recall", {})
        assert not fresh.is_error and fresh.structured_content == {"notes": []}
        assert (await _sessions(s)).get(mine) == "notes:1"  # the same id, a new sandbox


async def test_an_http_agent_is_a_tool_other_agents_call(served: tuple[Served, dict[str, str], Path]) -> None:
    s, keys, _ = served
    async with _client(s, keys["ada"]) as ada, _client(s, keys["bob"]) as bob:
        tools = {t.name: t for t in (await ada.list_tools()).tools}
        assert tools["echo___invoke_echo"].description == "Echoes what it is sent."
        first = await ada.call_tool("echo___invoke_echo", {"payload": {"write": "note"}})
        assert not first.is_error, _text(first)
        answer = first.structured_content or {}
        assert answer["echo"] == {"write": "note"} and answer["calls"] == 1
        again = (await ada.call_tool("echo___invoke_echo", {"prompt": "hello"})).structured_content or {}
        assert again["echo"] == {"prompt": "hello"} and again["calls"] == 2  # the same session
        assert again["session"] == answer["session"] and "note.txt" in again["files"]
        other = (await bob.call_tool("echo___invoke_echo", {"prompt": "hi"})).structured_content or {}
        assert other["calls"] == 1 and other["session"] != answer["session"]
        streamed = await ada.call_tool("echo___invoke_echo", {"payload": {"stream": True}})
        assert streamed.structured_content == {"events": [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]}
        neither = await ada.call_tool("echo___invoke_echo", {})
        assert neither.is_error and "give a `prompt`, or the `payload`" in _text(neither)


async def test_a_runtime_not_yet_deployed_is_a_clear_error_until_it_is(
    served: tuple[Served, dict[str, str], Path],
) -> None:
    s, keys, data = served
    async with httpx2.AsyncClient(base_url=s.base, headers=s.admin_headers) as admin:
        listed = (await admin.get("/admin/v1/gateways/default/tools")).json()
    assert "no runtime 'later': deploy it first" in listed["failed_targets"]["later"]
    assert any("no runtime 'later'" in line for line in s.output)  # the operator hears it at start
    changed = anyio.Event()

    async def heard(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with _client(s, keys["ada"], message_handler=heard) as client:
        assert not any(t.name.startswith("later___") for t in (await client.list_tools()).tools)
        await anyio.to_thread.run_sync(_deploy, SERVER, "later", data, "--protocol", "MCP")
        with anyio.fail_after(60):
            await changed.wait()
        names = {t.name for t in (await client.list_tools()).tools}
        assert "later___add" in names
        assert _text(await client.call_tool("later___add", {"a": 1, "b": 1})) == "2"


async def test_a_tenants_gateway_serves_its_own_runtimes_only(
    served: tuple[Served, dict[str, str], Path],
) -> None:
    s, _, data = served
    acme = await create_tenant(data, "acme")
    spec = {
        "name": "tools",
        "auth": {"kind": "api_key"},
        "targets": [{"name": "notes", "kind": "runtime", "runtime": "notes"}],
    }
    async with httpx2.AsyncClient(base_url=s.base, headers=acme, timeout=120) as admin:
        made = await admin.post("/admin/v1/gateways", json=spec)  # (a tenant admin may add one)
        assert made.status_code == 201, made.text
        listed = (await admin.get("/admin/v1/gateways/tools/tools")).json()
        assert (
            "(tenant 'acme'): no runtime 'notes'" in listed["failed_targets"]["notes"]
        )  # not the operator's
        key = (await admin.post("/admin/v1/gateways/tools/keys", json={"subject": "ada"})).json()["key"]
    changed = anyio.Event()

    async def heard(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    url = f"{s.base}/tenants/acme/gateways/tools/mcp"
    async with _client(s, key, url=url, message_handler=heard) as client:
        assert (await client.list_tools()).tools == []
        await anyio.to_thread.run_sync(
            _deploy, SERVER, "notes", data, "--protocol", "MCP", "--tenant", "acme"
        )
        with anyio.fail_after(60):
            await changed.wait()
        await client.call_tool("notes___remember", {"text": "acme's ada"})
        recalled = await client.call_tool("notes___recall", {})
        assert recalled.structured_content == {"notes": ["acme's ada"]}  # its own sandbox's notes
