"""A tenant admin adds a local MCP server, npm's server-everything, run in a sandbox (the only way
a tenant may); an MCP client calls its tools through the gateway; the server sees nothing of the
host and has no network; the same target without a sandbox is refused for the tenant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.harness import ROOT, Served, create_tenant, serve

pytestmark = pytest.mark.anyio
MODULES = ROOT / ".tools" / "node_modules"


class Tenant:
    def __init__(self, served: Served, admin: dict[str, str]) -> None:
        self.served, self.admin = served, admin
        self.url = f"{served.base}/tenants/acme/gateways/tools/mcp"
        self.key = ""


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    root = tmp_path_factory.mktemp("sandboxed-stdio")
    env = {"SWITCHBOARD_SANDBOX_NODE_MODULES": str(MODULES), "SWITCHBOARD_LEAK_ME": "gateway-secret"}
    with serve(root / "data", env=env) as served:

        async def made() -> Tenant:
            t = Tenant(served, await create_tenant(root / "data", "acme"))
            async with httpx2.AsyncClient(base_url=served.base, headers=t.admin, timeout=60) as admin:
                assert (await admin.post("/admin/v1/gateways", json={"name": "tools"})).status_code == 201
                key = await admin.post("/admin/v1/gateways/tools/keys", json={"subject": "acme-user"})
                t.key = key.json()["key"]
            return t

        yield anyio.run(made)


async def _admin(t: Tenant, method: str, path: str, body: Any = None) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=t.served.base, headers=t.admin, timeout=60) as admin:
        return await admin.request(method, path, json=body)


async def test_a_tenant_runs_server_everything_in_a_sandbox(tenant: Tenant) -> None:
    bare = {
        "name": "every",
        "kind": "mcp",
        "command": ["npx", "-y", "@modelcontextprotocol/server-everything"],
    }
    refused = await _admin(tenant, "POST", "/admin/v1/gateways/tools/targets", bare)
    assert refused.status_code == 422 and "sandbox: bwrap" in refused.text
    sandboxed = {**bare, "sandbox": "bwrap", "env": {"GREETING": "hello"}}
    added = await _admin(tenant, "POST", "/admin/v1/gateways/tools/targets", sandboxed)
    assert added.status_code == 201, added.text
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {tenant.key}"}, timeout=60) as http,
        Client(streamable_http_client(tenant.url, http_client=http), mode="legacy") as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"every___echo", "every___get-sum"} <= names
        echoed = await client.call_tool("every___echo", {"message": "through the sandbox"})
        assert isinstance(echoed.content[0], types.TextContent)
        assert "through the sandbox" in echoed.content[0].text
        summed = await client.call_tool("every___get-sum", {"a": 2, "b": 3})
        assert "5" in "".join(b.text for b in summed.content if isinstance(b, types.TextContent))
        env = await client.call_tool("every___get-env", {})
        seen = "".join(b.text for b in env.content if isinstance(b, types.TextContent))
        assert "GREETING" in seen and "hello" in seen  # its own variables reach it
        assert "/work/node_modules/.bin" in seen  # (its PATH: it runs in the sandbox)
        assert "gateway-secret" not in seen and "SWITCHBOARD" not in seen  # the gateway's never do
    removed = await _admin(tenant, "DELETE", "/admin/v1/gateways/tools/targets/every")
    assert removed.status_code == 204


async def test_a_public_sandboxed_server_starts_behind_the_egress_forwarder(tenant: Tenant) -> None:
    target = {
        "name": "net",
        "kind": "mcp",
        "command": ["npx", "-y", "@modelcontextprotocol/server-everything"],
        "sandbox": {"backend": "bwrap", "network": "PUBLIC"},
    }
    added = await _admin(tenant, "POST", "/admin/v1/gateways/tools/targets", target)
    assert added.status_code == 201, added.text
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {tenant.key}"}, timeout=60) as http,
        Client(streamable_http_client(tenant.url, http_client=http), mode="legacy") as client,
    ):
        env = await client.call_tool("net___get-env", {})
        seen = "".join(b.text for b in env.content if isinstance(b, types.TextContent))
        assert "http://127.0.0.1:3128" in seen  # HTTPS_PROXY: the forwarder to its own proxy
    assert (await _admin(tenant, "DELETE", "/admin/v1/gateways/tools/targets/net")).status_code == 204


async def test_a_sandboxed_target_refuses_a_working_directory(tenant: Tenant) -> None:
    target = {"name": "cwd", "kind": "mcp", "command": ["true"], "sandbox": "bwrap", "cwd": str(Path.home())}
    refused = await _admin(tenant, "POST", "/admin/v1/gateways/tools/targets", target)
    assert refused.status_code == 422 and "runs in its own work directory" in refused.text
