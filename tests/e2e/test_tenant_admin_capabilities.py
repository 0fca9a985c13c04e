"""A tenant admin cannot reach the gateway's host (SECURITY.md, trust boundaries; issue 15 hole 1).

Each attack is made through a real ``serve`` with a tenant's admin key (``switchboard tenants
create``) and is refused with the field and the reason, before anything of it runs; the
operator (the default tenant's admin key) keeps every capability.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.harness import ROOT, Served, create_tenant, serve
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio


class Setup:
    def __init__(self, served: Served, tenant_admin: dict[str, str], root: Path) -> None:
        self.served = served
        self.tenant_admin = tenant_admin
        self.root = root

    async def as_tenant(self, method: str, path: str, body: Any) -> httpx2.Response:
        async with httpx2.AsyncClient(
            base_url=self.served.base, headers=self.tenant_admin, timeout=60
        ) as http:
            return await http.request(method, path, json=body)

    async def as_operator(self, method: str, path: str, body: Any) -> httpx2.Response:
        async with httpx2.AsyncClient(
            base_url=self.served.base, headers=self.served.admin_headers, timeout=60
        ) as http:
            return await http.request(method, path, json=body)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("capabilities")
    env = {"SWITCHBOARD_LEAK_ME": "the-gateway's-own-secret"}
    with serve(root / "data", env=env) as served:

        async def made() -> Setup:
            s = Setup(served, await create_tenant(root / "data", "acme"), root)
            created = await s.as_tenant("POST", "/admin/v1/gateways", {"name": "tools"})
            assert created.status_code == 201, created.text
            return s

        yield anyio.run(made)


def refused(response: httpx2.Response, field: str, words: str) -> None:
    assert response.status_code == 422, response.text
    issues = response.json()["issues"]
    assert any(i["location"] == field and words in i["message"] for i in issues), issues


def marker_command(path: Path) -> list[str]:
    return [sys.executable, "-c", f"open({str(path)!r}, 'w').write('ran')"]


async def test_a_tenant_admin_cannot_start_a_stdio_command(setup: Setup) -> None:
    ran = setup.root / "stdio-ran"
    target = {"name": "shell", "kind": "mcp", "command": marker_command(ran), "env": {"A": "1"}}
    response = await setup.as_tenant("POST", "/admin/v1/gateways/tools/targets", target)
    refused(response, "command", "stdio commands start programs on the gateway's host")
    refused(response, "env", "is for the operator")
    assert not ran.exists(), "the command ran before the change was refused"
    # The same target inside a whole gateway: refused with the gateway's field path.
    whole = await setup.as_tenant("PUT", "/admin/v1/gateways/tools", {"name": "tools", "targets": [target]})
    refused(whole, "targets[0].command", "is for the operator")
    assert not ran.exists()
    listed = await setup.as_tenant("GET", "/admin/v1/gateways/tools/targets", None)
    assert listed.json()["targets"] == [], "nothing is stored by a refused change"


async def test_a_tenant_admin_cannot_name_python_code(setup: Setup) -> None:
    function = {"name": "fx", "kind": "function", "functions": ["os:getcwd"]}
    refused(
        await setup.as_tenant("POST", "/admin/v1/gateways/tools/targets", function),
        "functions",
        "run Python code in the gateway's own process",
    )
    plugin = {"name": "pl", "kind": "plugin", "provider": "tests.fixtures.functions:Point"}
    refused(await setup.as_tenant("POST", "/admin/v1/gateways/tools/targets", plugin), "provider", "operator")
    interceptor = {
        "name": "tools",
        "interceptors": [{"kind": "python", "phase": "request", "function": "os:getcwd"}],
    }
    refused(
        await setup.as_tenant("PUT", "/admin/v1/gateways/tools", interceptor),
        "interceptors[0].function",
        "python interceptors run code",
    )


async def test_a_tenant_admin_cannot_use_the_gateways_aws_identity(setup: Setup) -> None:
    target = {
        "name": "fn",
        "kind": "lambda",
        "function_name": "anything",
        "tools": [{"name": "t"}],
    }
    refused(
        await setup.as_tenant("POST", "/admin/v1/gateways/tools/targets", target),
        "function_name",
        "the gateway's own AWS credentials",
    )


@pytest.mark.parametrize("ref", [{"env": "SWITCHBOARD_LEAK_ME"}, {"file": "/etc/hostname"}])
async def test_a_tenant_admin_cannot_read_host_secrets(setup: Setup, ref: dict[str, str]) -> None:
    kind = next(iter(ref))
    gateway = {
        "name": "tools",
        "credential_providers": [
            {"name": "k", "kind": "api_key", "secret": ref},
            {
                "name": "cc",
                "kind": "oauth2_client_credentials",
                "token_url": "https://auth.example.com/token",
                "client_id": "x",
                "client_secret": ref,
            },
        ],
    }
    response = await setup.as_tenant("PUT", "/admin/v1/gateways/tools", gateway)
    refused(response, f"credential_providers[0].secret.{kind}", "keep the secret in the vault")
    refused(response, f"credential_providers[1].client_secret.{kind}", "of the gateway's host")
    target = {
        "name": "api",
        "kind": "openapi",
        "spec": {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}},
        "base_url": "https://api.example.com",
        "credentials": {"key": ref},
    }
    refused(
        await setup.as_tenant("POST", "/admin/v1/gateways/tools/targets", target),
        f"credentials.key.{kind}",
        "of the gateway's host",
    )


async def test_a_tenant_admin_cannot_read_a_local_document(setup: Setup) -> None:
    target = {"name": "api", "kind": "openapi", "spec": str(ROOT / "specs" / "github.yaml")}
    refused(
        await setup.as_tenant("POST", "/admin/v1/gateways/tools/targets", target),
        "spec",
        "a local file path reads the gateway host's disk",
    )


async def test_a_tenants_document_cannot_refer_to_local_files(setup: Setup) -> None:
    secret = setup.root / "host-secret.json"
    secret.write_text('{"type": "string", "description": "HOST-FILE-CONTENT-7d1e"}')
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://api.example.com"}],
        "paths": {
            "/x": {
                "get": {
                    "operationId": "leak",
                    "parameters": [{"name": "q", "in": "query", "schema": {"$ref": secret.as_uri()}}],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    target = {"name": "refs", "kind": "openapi", "spec": document}
    response = await setup.as_tenant("POST", "/admin/v1/gateways/tools/targets", target)
    assert "HOST-FILE-CONTENT-7d1e" not in response.text
    tools = await setup.as_tenant("GET", "/admin/v1/gateways/tools/tools", None)
    assert "HOST-FILE-CONTENT-7d1e" not in tools.text
    await setup.as_tenant("DELETE", "/admin/v1/gateways/tools/targets/refs", None)


async def test_a_tenant_admin_cannot_point_upstreams_at_the_host(setup: Setup) -> None:
    # The gateway's own loopback-only gateway, and other local services: never a tenant's upstream.
    own = setup.served.mcp
    for target in (
        {"name": "loop", "kind": "mcp", "url": own},
        {"name": "loop", "kind": "http", "url": "http://localhost:6379/", "tools": [{"name": "t"}]},
        {"name": "loop", "kind": "openapi", "spec": "http://127.0.0.1:5432/openapi.json"},
        {"name": "loop", "kind": "mcp", "url": "http://169.254.169.254/latest/meta-data/"},
    ):
        field = "spec" if target["kind"] == "openapi" else "url"
        refused(
            await setup.as_tenant("POST", "/admin/v1/gateways/tools/targets", target),
            field,
            "a tenant's upstreams are reached only at public addresses",
        )
    provider = {
        "name": "tools",
        "credential_providers": [
            {
                "name": "cc",
                "kind": "oauth2_client_credentials",
                "token_url": "http://[::1]:9/token",
                "client_id": "x",
                "client_secret": {"provider": "k"},
            }
        ],
    }
    response = await setup.as_tenant("PUT", "/admin/v1/gateways/tools", provider)
    refused(response, "credential_providers[0].token_url", "public addresses")
    jwt = {"name": "tools", "auth": {"kind": "jwt", "discovery_url": "http://127.0.0.1:9/.well-known/x"}}
    refused(await setup.as_tenant("PUT", "/admin/v1/gateways/tools", jwt), "auth.discovery_url", "public")


async def test_a_tenant_admin_keeps_connector_secrets_in_the_vault(setup: Setup) -> None:
    by_env = await setup.as_tenant(
        "POST", "/admin/v1/gateways/tools/connectors/slack", {"api_key": {"env": "SWITCHBOARD_LEAK_ME"}}
    )
    refused(by_env, "credential_providers[0].secret.env", "keep the secret in the vault")
    given = await setup.as_tenant(
        "POST", "/admin/v1/gateways/tools/connectors/slack", {"api_key": "xoxb-tenants-own-token"}
    )
    assert given.status_code == 201, given.text
    shown = (await setup.as_tenant("GET", "/admin/v1/gateways/tools", None)).text
    assert "xoxb-tenants-own-token" not in shown, "a secret is kept in the vault, never in the configuration"
    await setup.as_tenant("DELETE", "/admin/v1/gateways/tools/targets/slack", None)
    oauth = await setup.as_tenant(
        "POST",
        "/admin/v1/gateways/tools/connectors/slack",
        {"target": "chat", "client_id": "app", "client_secret": "tenant-client-SECRET-41"},
    )
    assert oauth.status_code == 201, oauth.text
    assert (
        "tenant-client-SECRET-41" not in (await setup.as_tenant("GET", "/admin/v1/gateways/tools", None)).text
    )
    # A new client secret goes the same way: into the vault, never shown.
    kept = await setup.as_tenant("PUT", "/admin/v1/gateways/tools/credentials/chat", {"secret": "rotated-42"})
    assert kept.status_code == 200 and "rotated-42" not in kept.text
    await setup.as_tenant("DELETE", "/admin/v1/gateways/tools/targets/chat", None)


async def test_a_tenants_new_gateway_is_answered_with_its_own_url(setup: Setup) -> None:
    made = await setup.as_tenant("POST", "/admin/v1/gateways", {"name": "second"})
    assert made.status_code == 201, made.text
    url = made.json()["gateway"]["url"]
    assert url == f"{setup.served.base}/tenants/acme/gateways/second/mcp"
    listed = await setup.as_tenant("GET", "/admin/v1/gateways", None)
    assert {g["url"] for g in listed.json()["gateways"]} >= {url}
    async with httpx2.AsyncClient() as http:  # the URL answered is where the gateway is served
        probe = await http.post(url, json={}, headers={"Accept": "application/json, text/event-stream"})
        assert probe.status_code != 404


async def test_the_operator_keeps_every_capability(setup: Setup) -> None:
    ran = setup.root / "operator-ran"
    target = {"name": "local", "kind": "mcp", "command": marker_command(ran)}
    gateway = {
        "name": "ops",
        "targets": [
            {"name": "fx", "kind": "function", "functions": ["tests.fixtures.functions:add"]},
        ],
        "credential_providers": [{"name": "k", "kind": "api_key", "secret": {"env": "SWITCHBOARD_LEAK_ME"}}],
    }
    made = await setup.as_operator("POST", "/admin/v1/gateways", gateway)
    assert made.status_code == 201, made.text
    assert made.json()["gateway"]["url"] == f"{setup.served.base}/gateways/ops/mcp"
    # A stdio command is started by the operator's change (it is not an MCP server, so the
    # target reports a problem, but it ran: the operator's capability is intact).
    await setup.as_operator("POST", "/admin/v1/gateways/ops/targets", target)
    assert ran.exists()


async def test_a_tenants_document_servers_cannot_reach_the_host(setup: Setup) -> None:
    """The address is checked when connecting: an inline document naming a loopback server (or a
    name that resolves there later) is accepted as configuration, but no call ever reaches it."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    hits: list[str] = []

    async def internal(request: Any) -> JSONResponse:
        hits.append(request.url.path)
        return JSONResponse({"secret": "internal-only"})

    with serve_app(Starlette(routes=[Route("/internal", internal)])) as base:
        document = {
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "servers": [{"url": base}],
            "paths": {
                "/internal": {"get": {"operationId": "peek", "responses": {"200": {"description": "ok"}}}}
            },
        }
        target = {"name": "peek", "kind": "openapi", "spec": document}
        made = await setup.as_tenant("POST", "/admin/v1/gateways/tools/targets", target)
        assert made.status_code == 201, made.text
        try:
            url = f"{setup.served.base}/tenants/acme/gateways/tools/mcp"
            async with Client(streamable_http_client(url)) as client:
                result = await client.call_tool("peek___peek", {})
            assert result.is_error
            assert "private or reserved address" in str(result.content)
            assert hits == [], "the tenant's call reached the host's loopback"
        finally:
            await setup.as_tenant("DELETE", "/admin/v1/gateways/tools/targets/peek", None)
