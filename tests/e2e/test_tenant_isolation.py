"""Tenant isolation through a real `switchboard serve`: two tenants, each with a gateway named
`default`; nothing of one can be listed, called or obtained with the other's credentials."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.e2e.harness import ACCEPT, INIT, ROOT, Served, create_tenant, serve

pytestmark = pytest.mark.anyio
WHOAMI = {"name": "fx", "kind": "function", "functions": ["tests.fixtures.functions:whoami"]}
ALPHA_ONLY = {"name": "alpha_only", "kind": "function", "functions": ["tests.fixtures.functions:add"]}


def gateway(secret_env: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "default",
        "auth": {"kind": "api_key"},
        "credential_providers": [{"name": "shared", "kind": "api_key", "secret": {"env": secret_env}}],
        "targets": targets,
        "a2a_agent": {"name": "tools"},
    }


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("tenants")
    env = {"ALPHA_SECRET": "alpha-upstream-key", "BETA_SECRET": "beta-upstream-key"}
    with serve(root / "data", env=env) as served:

        async def setup() -> dict[str, Any]:
            beta_headers = await create_tenant(root / "data", "beta")
            out: dict[str, Any] = {
                "served": served,
                "urls": {},
                "keys": {},
                "admins": {},
                "data": root / "data",
            }
            admins = {"alpha": served.admin_headers, "beta": beta_headers}
            out["admins"] = admins
            specs = {
                "alpha": gateway("ALPHA_SECRET", [WHOAMI, ALPHA_ONLY]),
                "beta": gateway("BETA_SECRET", [WHOAMI]),
            }
            # Function targets and env references are the operator's: beta's gateway is written by
            # the operator's file (`apply --tenant`), alpha's (the operator's own tenant) by its admin key.
            beta_file = root / "beta.yaml"
            beta_file.write_text(yaml.safe_dump({"gateways": [specs["beta"]]}))
            await anyio.run_process(
                [
                    *(sys.executable, "-m", "gateway.cli", "apply", "-f", str(beta_file)),
                    *("--tenant", "beta", "--data-dir", str(root / "data")),
                ],
                cwd=ROOT,
            )
            for tenant, headers in admins.items():
                async with httpx2.AsyncClient(base_url=served.base, headers=headers) as admin:
                    if tenant == "alpha":  # the default tenant has a gateway `default` already: replace it
                        response = await admin.put("/admin/v1/gateways/default", json=specs[tenant])
                        assert response.status_code in (200, 201), response.text
                    else:  # any admin change reloads every tenant from the store: the operator's too
                        assert (await admin.post("/admin/v1/gateways", json={"name": "nudge"})).is_success
                        assert (await admin.delete("/admin/v1/gateways/nudge")).status_code == 204
                        assert (await admin.get("/admin/v1/gateways/default/tools")).status_code == 200
                    key = await admin.post(
                        "/admin/v1/gateways/default/keys", json={"subject": f"{tenant}-user"}
                    )
                    out["keys"][tenant] = key.json()["key"]
                    out[f"{tenant}_key_id"] = key.json()["key_id"]
            out["urls"] = {"alpha": served.mcp, "beta": f"{served.base}/tenants/beta/gateways/default/mcp"}
            return out

        yield anyio.run(setup)


async def call(url: str, key: str, tool: str, arguments: dict[str, Any] | None = None) -> Any:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool(tool, arguments or {})
        return names, result


async def test_each_tenant_sees_and_calls_only_its_own(tenants: dict[str, Any]) -> None:
    urls, keys = tenants["urls"], tenants["keys"]
    names, result = await call(urls["alpha"], keys["alpha"], "fx___whoami")
    assert names == {"fx___whoami", "alpha_only___add"}
    assert (
        result.structured_content["tenant"] == "default"
        and result.structured_content["subject"] == "alpha-user"
    )
    names, result = await call(urls["beta"], keys["beta"], "fx___whoami")
    assert names == {"fx___whoami"}
    assert (
        result.structured_content["tenant"] == "beta" and result.structured_content["subject"] == "beta-user"
    )
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {keys['beta']}"}, timeout=30) as http,
        Client(streamable_http_client(urls["beta"], http_client=http), mode="legacy") as client,
    ):
        with pytest.raises(MCPError, match="Unknown tool 'alpha_only___add'"):  # a name from alpha
            await client.call_tool("alpha_only___add", {"a": 1})


CROSSINGS = [
    ("alpha key on beta's gateway", "alpha", "beta"),
    ("beta key on alpha's gateway", "beta", "alpha"),
]


@pytest.mark.parametrize(("case", "key_of", "url_of"), CROSSINGS, ids=[c[0] for c in CROSSINGS])
async def test_a_key_never_opens_another_tenants_gateway(
    tenants: dict[str, Any], case: str, key_of: str, url_of: str
) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            tenants["urls"][url_of],
            json=INIT,
            headers={**ACCEPT, "Authorization": f"Bearer {tenants['keys'][key_of]}"},
        )
    assert response.status_code == 401, (case, response.text)


async def test_admin_keys_see_only_their_tenant(tenants: dict[str, Any]) -> None:
    served: Served = tenants["served"]
    for tenant, other in (("alpha", "beta"), ("beta", "alpha")):
        async with httpx2.AsyncClient(base_url=served.base, headers=tenants["admins"][tenant]) as admin:
            tools = (await admin.get("/admin/v1/gateways/default/tools")).json()["tools"]
            expected = {"fx___whoami", "alpha_only___add"} if tenant == "alpha" else {"fx___whoami"}
            assert {t["name"] for t in tools} == expected
            keys = (await admin.get("/admin/v1/gateways/default/keys")).json()["keys"]
            assert [k["key_id"] for k in keys] == [tenants[f"{tenant}_key_id"]]
            # revoking the other tenant's key is a 404 (and the key still works)
            other_key = tenants[f"{other}_key_id"]
            assert (await admin.delete(f"/admin/v1/gateways/default/keys/{other_key}")).status_code == 404
    _, result = await call(tenants["urls"]["beta"], tenants["keys"]["beta"], "fx___whoami")
    assert not result.is_error


async def test_workload_tokens_obtain_only_their_tenants_credentials(tenants: dict[str, Any]) -> None:
    served: Served = tenants["served"]
    got: dict[str, str] = {}
    async with httpx2.AsyncClient(base_url=served.base) as http:
        for tenant in ("alpha", "beta"):
            made = await http.post(
                "/identity/v1/workload-token", json={"workload": "agent"}, headers=tenants["admins"][tenant]
            )
            token = made.json()["workload_token"]
            answer = await http.post(
                "/identity/v1/resource-token",
                json={"workload_token": token, "gateway": "default", "provider": "shared"},
            )
            got[tenant] = answer.json()["api_key"]
            missing = await http.post(
                "/identity/v1/resource-token",
                json={"workload_token": token, "gateway": "nope", "provider": "shared"},
            )
            assert missing.status_code == 404
    assert got == {"alpha": "alpha-upstream-key", "beta": "beta-upstream-key"}


async def test_a_key_kept_in_the_vault_wins_and_is_never_shown(tenants: dict[str, Any]) -> None:
    served: Served = tenants["served"]
    kept = "beta-key-KEPT-IN-THE-VAULT-5f1c"
    async with httpx2.AsyncClient(base_url=served.base) as http:
        url = "/admin/v1/gateways/default/credentials/shared"
        stored = await http.put(url, json={"secret": kept}, headers=tenants["admins"]["beta"])
        assert stored.status_code == 200 and kept not in stored.text
        assert (await http.put(url, json={}, headers=tenants["admins"]["beta"])).status_code == 422
        made = await http.post(
            "/identity/v1/workload-token", json={"workload": "agent"}, headers=tenants["admins"]["beta"]
        )
        ask = {"workload_token": made.json()["workload_token"], "gateway": "default", "provider": "shared"}
        assert (await http.post("/identity/v1/resource-token", json=ask)).json() == {"api_key": kept}
        gateway = await http.get("/admin/v1/gateways/default", headers=tenants["admins"]["beta"])
        assert kept not in gateway.text
        # alpha's admin cannot touch beta's key, and alpha's agents never see it
        alpha_made = await http.post(
            "/identity/v1/workload-token", json={"workload": "agent"}, headers=tenants["admins"]["alpha"]
        )
        alpha_ask = {**ask, "workload_token": alpha_made.json()["workload_token"]}
        assert (await http.post("/identity/v1/resource-token", json=alpha_ask)).json() == {
            "api_key": "alpha-upstream-key"
        }
        stored_bytes = b"".join(p.read_bytes() for p in tenants["data"].glob("switchboard.db*"))
        assert kept.encode() not in stored_bytes  # sealed at rest
        assert (await http.delete(url, headers=tenants["admins"]["beta"])).status_code == 204
        assert (await http.post("/identity/v1/resource-token", json=ask)).json() == {
            "api_key": "beta-upstream-key"
        }


async def test_traces_are_seen_only_by_their_tenant(tenants: dict[str, Any]) -> None:
    """The trace viewer shows each admin key its own tenant's sessions; another's are not there."""
    served: Served = tenants["served"]
    await call(tenants["urls"]["alpha"], tenants["keys"]["alpha"], "fx___whoami")
    await call(tenants["urls"]["beta"], tenants["keys"]["beta"], "fx___whoami")
    sessions: dict[str, set[str]] = {}
    async with httpx2.AsyncClient(base_url=served.base, timeout=30) as http:
        with anyio.fail_after(20):
            for tenant, admin in tenants["admins"].items():
                while True:  # spans reach the trace store a moment after the calls
                    page = await http.get("/ui/traces", headers=admin)
                    assert page.status_code == 200
                    found = set(re.findall(r'href="/ui/traces/sessions/([^"]+)"', page.text))
                    if found:
                        sessions[tenant] = found
                        break
                    await anyio.sleep(0.1)
        assert not sessions["alpha"] & sessions["beta"]
        for tenant, other in (("alpha", "beta"), ("beta", "alpha")):
            mine = next(iter(sessions[tenant]))
            assert (
                await http.get(f"/ui/traces/sessions/{mine}", headers=tenants["admins"][tenant])
            ).status_code == 200
            theirs = await http.get(f"/ui/traces/sessions/{mine}", headers=tenants["admins"][other])
            assert theirs.status_code == 404 and "fx___whoami" not in theirs.text
        assert (await http.get("/ui/traces")).status_code == 401  # no key: the sign-in page
        far = await http.get(
            "/ui/traces", params={"since": "9999-12-31T00:00"}, headers=tenants["admins"]["alpha"]
        )
        assert far.status_code == 400 and "is not a time this viewer knows" in far.text
        big = await http.post("/ui/login", content=b"key=" + b"x" * 10_000)
        assert big.status_code == 413  # the sign-in form is small; a large body is not read


async def test_each_tenants_a2a_agent_is_its_own(tenants: dict[str, Any]) -> None:
    served, keys = tenants["served"], tenants["keys"]
    urls = {
        "alpha": f"{served.base}/a2a/tools",
        "beta": f"{served.base}/tenants/beta/gateways/default/a2a/tools",
    }

    async def send(tenant: str, key: str) -> httpx2.Response:
        message = {"messageId": f"m-{tenant}", "role": "ROLE_USER", "parts": [{"text": "{}"}]}
        body = {"message": {**message, "metadata": {"skill": "fx___whoami"}}}
        headers = {"Authorization": f"Bearer {key}", "A2A-Version": "1.0"}
        async with httpx2.AsyncClient(timeout=30) as http:
            return await http.post(f"{urls[tenant]}/message:send", json=body, headers=headers)

    for tenant in ("alpha", "beta"):
        answered = await send(tenant, keys[tenant])
        assert answered.status_code == 200, answered.text
        data = answered.json()["task"]["artifacts"][0]["parts"][-1]["data"]
        assert data["tenant"] == ("default" if tenant == "alpha" else "beta")
        assert data["subject"] == f"{tenant}-user"
    assert (await send("beta", keys["alpha"])).status_code == 401  # a key of one tenant is no key of another
    assert (await send("alpha", keys["beta"])).status_code == 401
    task_id = (await send("beta", keys["beta"])).json()["task"]["id"]
    async with httpx2.AsyncClient(timeout=30) as http:
        theirs = await http.get(
            f"{urls['alpha']}/tasks/{task_id}",
            headers={"Authorization": f"Bearer {keys['alpha']}", "A2A-Version": "1.0"},
        )
    assert theirs.status_code == 404  # not found from another tenant, not forbidden
