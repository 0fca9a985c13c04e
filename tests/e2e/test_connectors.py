"""Every connector of the catalog, end to end: Prism serves the connector's API document,
`switchboard connectors enable` wires it to the test authorization server (the preset's
OAuth flow, endpoints overridden), a user's first call answers the consent link, the user
consents, and every curated tool is called through a real `switchboard serve`. Prism must
see only valid requests, each signed with the user's token.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from gateway.connectors import BUILTIN, catalog
from tests.e2e.harness import ROOT, Served, serve
from tests.fixtures.oidc_server import Browser, Issuer, running
from tests.support.prism import Prism, prism, prism_binary
from tests.support.samples import sample
from tests.support.tools import need

pytestmark = pytest.mark.anyio

BUILT_IN = sorted(name for name, e in catalog().entries.items() if e.origin == "built-in")
CONSENT = re.compile(r"open (\S+)")


@dataclass
class World:
    served: Served
    issuer: Issuer
    data: Path


def enable(data: Path, name: str, issuer: Issuer, base_url: str, *extra: str) -> str:
    """`switchboard connectors enable` against the stored configuration; returns what it printed."""
    argv = [sys.executable, "-m", "gateway.cli", "connectors", "enable", name, "--data-dir", str(data)]
    argv += ["--client-id", "agent", "--client-secret-env", "IDP_CLIENT_SECRET"]
    argv += ["--authorize-url", f"{issuer.url}/authorize", "--token-url", f"{issuer.url}/token"]
    argv += ["--base-url", base_url, *extra]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def gateway_world(root: Path, extra: str = "") -> Iterator[World]:
    """A serve with one gateway behind API keys (plus ``extra`` YAML under it), and the issuer."""
    need(prism_binary() is not None, "prism (npm @stoplight/prism-cli)")
    config = root / "switchboard.yaml"
    config.write_text("gateways:\n  - name: default\n    auth: {kind: api_key}\n" + extra)
    with (
        running() as issuer,
        serve(root / "data", config, env={"IDP_CLIENT_SECRET": "agent-secret"}) as served,
    ):
        yield World(served, issuer, root / "data")


async def key_for(served: Served, subject: str) -> str:
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        made = await admin.post("/admin/v1/gateways/default/keys", json={"subject": subject})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


@asynccontextmanager
async def client_for(served: Served, key: str, mode: str = "2026-07-28") -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        Client(streamable_http_client(served.mcp, http_client=http), mode=mode) as client,
    ):
        yield client


async def picked_up(served: Served, target: str, deadline: float = 30.0) -> None:
    """Wait for the running gateway to serve the target the CLI stored (it polls the store)."""
    end = time.monotonic() + deadline
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        while time.monotonic() < end:
            listed = (await admin.get("/admin/v1/gateways/default/tools")).json()["tools"]
            if any(t["name"].startswith(f"{target}___") for t in listed):
                return
            await anyio.sleep(0.2)
    raise AssertionError(f"the gateway did not pick up target {target!r} within {deadline}s")


async def consent(issuer: Issuer, link: str, user: str, key: str) -> str:
    """Play the user: open the gateway's link, sign in there with the key their client uses,
    approve at the authorization server, come back. Returns the authorization URL they saw."""
    assert "/identity/oauth/start?" in link, link
    async with Browser(issuer, user) as browser:
        page = await browser.consent(link, key)
    assert page.status_code == 200 and "Authorized" in page.text, page.text
    seen = [str(r.url) for r in page.history if str(r.url).startswith(f"{issuer.url}/authorize?")]
    assert seen, [str(r.url) for r in page.history]
    return seen[0]


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with gateway_world(tmp_path_factory.mktemp("connectors")) as w:
        yield w


@pytest.mark.parametrize("name", BUILT_IN)
async def test_every_curated_operation_through_serve_against_prism(world: World, name: str) -> None:
    entry = catalog().entries[name]
    with prism(entry.spec_path) as upstream:
        await every_operation(world, name, upstream)


async def every_operation(world: World, name: str, upstream: Prism) -> None:
    entry = catalog().entries[name]
    printed = enable(world.data, name, world.issuer, upstream.url)
    assert f"enabled {name} on gateway default" in printed
    user = f"user-{name}"
    await picked_up(world.served, name)
    key = await key_for(world.served, user)
    async with client_for(world.served, key) as client:
        tools = [t for t in (await client.list_tools()).tools if t.name.startswith(f"{name}___")]
        assert sorted(t.name for t in tools) == sorted(
            f"{name}___{op.name}" for op in entry.connector.operations
        )
        by_name = {t.name: t for t in tools}

        first_tool = tools[0]
        first_args = sample(first_tool.input_schema)
        first_args.pop("cursor", None)
        first = await client.call_tool(first_tool.name, first_args)
        assert first.is_error, "a user without consent must get the consent link first"
        link = CONSENT.search(text(first))
        assert link is not None, text(first)
        asked = dict(httpx2.URL(await consent(world.issuer, link.group(1), user, key)).params)
        scope = asked.get(
            "user_scope" if entry.connector.credentials.oauth.preset == "slack" else "scope", ""
        )
        for s in entry.connector.scopes():
            assert s in re.split(r"[ ,]", scope), (s, scope)

        failures = []
        pages = 0
        for op in entry.connector.operations:
            tool = by_name[f"{name}___{op.name}"]
            args: dict[str, Any] = sample(tool.input_schema)
            args.pop("cursor", None)  # the first page
            result = await client.call_tool(tool.name, args)
            if result.is_error:
                failures.append(f"{tool.name}({args}): {text(result)[:300]}")
                continue
            if op.paging is not None:
                assert "limit" in tool.input_schema["properties"] or op.paging.limit is None
                structured = result.structured_content or {}
                assert isinstance(structured.get("items"), list), structured
                following = structured.get("next_cursor")
                if following:
                    more = await client.call_tool(tool.name, {**args, "cursor": following})
                    if more.is_error:
                        failures.append(f"{tool.name} next page: {text(more)[:300]}")
                    pages += 1
        assert failures == [], "".join(upstream.lines[-20:]) + "\n".join(failures)
    assert upstream.violations() == []
    # Every request Prism saw carried the user's token (Prism answers 401 without one).
    assert not [line for line in upstream.lines if "401" in line and "Unauthorized" in line]


async def test_the_admin_api_lists_shows_and_enables(world: World) -> None:
    async with httpx2.AsyncClient(base_url=world.served.base, headers=world.served.admin_headers) as admin:
        listed = (await admin.get("/admin/v1/connectors")).json()
        assert set(BUILT_IN) <= {c["name"] for c in listed["connectors"]} and listed["problems"] == []
        assert all("file" not in c and "spec" not in c for c in listed["connectors"])  # no server paths
        shown = (await admin.get("/admin/v1/connectors/jira")).json()
        assert shown["problems"] == [] and "search_issues" in {t["name"] for t in shown["tools"]}
        assert (await admin.get("/admin/v1/connectors/nope")).status_code == 404
        refused = await admin.post("/admin/v1/gateways/default/connectors/slack", json={"client_id": 7})
        assert refused.status_code == 422 and refused.json()["issues"][0]["location"] == "client_id"
        async with httpx2.AsyncClient(base_url=world.served.base) as anonymous:
            unauthenticated = await anonymous.post(
                "/admin/v1/gateways/default/connectors/slack", json={"client_id": "a"}
            )
        assert unauthenticated.status_code == 401
        made = await admin.post(
            "/admin/v1/gateways/default/connectors/slack",
            json={
                "target": "team-chat",
                "client_id": "agent",
                "client_secret": {"env": "IDP_CLIENT_SECRET"},
                "authorize_url": f"{world.issuer.url}/authorize",
                "token_url": f"{world.issuer.url}/token",
                "base_url": "http://127.0.0.1:9",
                "tools": ["post_message", "list_channels"],
            },
        )
        assert made.status_code == 201, made.text
        assert made.json()["target"] == {
            "name": "team-chat",
            "kind": "connector",
            "connector": "slack",
            "credential": "team-chat",
            "base_url": "http://127.0.0.1:9",
            "include": ["post_message", "list_channels"],
        }
        tools = (await admin.get("/admin/v1/gateways/default/tools")).json()["tools"]
        assert sorted(t["name"] for t in tools if t["name"].startswith("team-chat___")) == [
            "team-chat___list_channels",
            "team-chat___post_message",
        ]
        gateway = (await admin.get("/admin/v1/gateways/default")).json()
        provider = next(p for p in gateway["credential_providers"] if p["name"] == "team-chat")
        assert provider["preset"] == "slack" and set(provider["scopes"]) == {
            "chat:write",
            "channels:read",
            "groups:read",
        }


def test_a_users_connectors_folder(tmp_path: Path) -> None:
    ours = yaml.safe_load((BUILTIN / "slack.yaml").read_text())
    ours["title"] = "Slack (our fork)"
    ours["spec"] = str(BUILTIN.parent / "specs" / "slack.yaml")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "slack.yaml").write_text(yaml.safe_dump(ours))
    (mine / "broken.yaml").write_text("name: broken\ntitle: [\n")
    config = tmp_path / "switchboard.yaml"
    config.write_text("gateways:\n  - name: default\n")
    with serve(tmp_path / "data", config, env={"SWITCHBOARD_CONNECTORS_DIR": str(mine)}) as served:
        warned = [line for line in served.output if "a connector was not loaded" in line]
        assert warned and "broken.yaml:3" in warned[0] and "not valid YAML" in warned[0]
        with httpx2.Client(base_url=served.base, headers=served.admin_headers) as admin:
            listed = {c["name"]: c for c in admin.get("/admin/v1/connectors").json()["connectors"]}
        assert listed["slack"]["origin"] == "user" and listed["slack"]["title"] == "Slack (our fork)"
        assert listed["github"]["origin"] == "built-in"
    missing = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "d2")],
        cwd=ROOT,
        env={**os.environ, "SWITCHBOARD_CONNECTORS_DIR": str(tmp_path / "nowhere")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "connectors folder" in missing.stderr and "nowhere" in missing.stderr
    assert "Traceback" not in missing.stderr
