"""Targets added through the admin API at run time reach connected clients, in both eras."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client

from tests.e2e.harness import Served, serve

pytestmark = pytest.mark.anyio

CONFIG = """
gateways:
  - name: default
    targets:
      - {name: fx, kind: function, functions: ["tests.fixtures.functions:add"]}
"""
NEW_TARGET = {"name": "more", "kind": "function", "functions": ["tests.fixtures.functions:move"]}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Served]:
    config = tmp_path / "switchboard.yaml"
    config.write_text(CONFIG)
    with serve(tmp_path / "data", config) as s:
        yield s


async def test_target_added_through_admin_api_notifies_both_eras(live: Served) -> None:
    legacy_saw = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            legacy_saw.set()

    async with (
        Client(live.mcp, mode="legacy", message_handler=on_message) as legacy,
        Client(live.mcp, mode="2026-07-28") as modern,
        modern.listen(tools_list_changed=True) as subscription,
        httpx2.AsyncClient(base_url=live.base, headers=live.admin_headers) as admin,
    ):
        assert [t.name for t in (await legacy.list_tools()).tools] == ["fx___add"]
        response = await admin.post("/admin/v1/gateways/default/targets", json=NEW_TARGET)
        assert response.status_code == 201, response.text
        with anyio.fail_after(10):
            await legacy_saw.wait()
            event = await subscription.__anext__()
        assert "tools" in type(event).__name__.lower() or "Tools" in repr(event)
        for client in (legacy, modern):
            names = sorted(t.name for t in (await client.list_tools()).tools)
            assert names == ["fx___add", "more___move"]
            moved = await client.call_tool("more___move", {"p": {"x": 0, "y": 0}, "dx": 1})
            assert moved.structured_content == {"x": 1, "y": 0}


async def test_admin_api_refuses_a_broken_target_and_keeps_the_running_one(live: Served) -> None:
    async with httpx2.AsyncClient(base_url=live.base, headers=live.admin_headers) as admin:
        bad = {"name": "bad", "kind": "function", "functions": ["tests.fixtures.functions:does_not_exist"]}
        response = await admin.post("/admin/v1/gateways/default/targets", json=bad)
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "the change was refused; nothing was stored"
        assert "has no attribute 'does_not_exist'" in body["issues"][0]["message"]
        typo = await admin.post("/admin/v1/gateways/default/targets", json={**NEW_TARGET, "kind": "ftp"})
        assert typo.status_code == 422
        assert typo.json()["issues"][0]["location"] == "kind"
        listed = (await admin.get("/admin/v1/gateways/default/targets")).json()
        assert [t["name"] for t in listed["targets"]] == ["fx"]
    async with Client(live.mcp, mode="legacy") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["fx___add"]


async def test_admin_api_needs_the_admin_key(live: Served) -> None:
    async with httpx2.AsyncClient(base_url=live.base) as anon:
        for headers in (
            {},
            {"Authorization": "Bearer sb_admin_000000000000_wrong"},
            {"Authorization": "Basic x"},
        ):
            response = await anon.get("/admin/v1/gateways", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
        doc = (await anon.get("/admin/openapi.json")).json()
        assert doc["openapi"] == "3.1.0"
        assert "post" in doc["paths"]["/admin/v1/gateways/{gateway}/targets"]


async def test_admin_crud_round_trip(live: Served) -> None:
    gateway = {"name": "ops", "targets": [NEW_TARGET]}
    async with httpx2.AsyncClient(base_url=live.base, headers=live.admin_headers) as admin:
        created = await admin.post("/admin/v1/gateways", json=gateway)
        assert created.status_code == 201, created.text
        assert created.json()["gateway"]["url"].endswith("/gateways/ops/mcp")
        assert (await admin.post("/admin/v1/gateways", json=gateway)).status_code == 409
        got = (await admin.get("/admin/v1/gateways/ops")).json()
        assert [t["name"] for t in got["targets"]] == ["more"]
        tools = (await admin.get("/admin/v1/gateways/ops/tools")).json()["tools"]
        assert [t["name"] for t in tools] == ["more___move"]
        replaced = await admin.put("/admin/v1/gateways/ops", json={"description": "Ops", "targets": []})
        assert replaced.status_code == 200
        assert (await admin.get("/admin/v1/gateways/ops/targets")).json()["targets"] == []
        assert (await admin.delete("/admin/v1/gateways/ops")).status_code == 204
        assert (await admin.get("/admin/v1/gateways/ops")).status_code == 404
        assert (await admin.post("/admin/v1/gateways", content=b"{nope")).status_code == 422


async def test_an_admin_key_of_another_tenant_sees_nothing_of_this_one(live: Served, tmp_path: Path) -> None:
    from gateway.store import Store
    from gateway.system import new_admin_key
    from identity.inbound import hash_secret as hash_key

    store = await Store.open(f"sqlite:///{tmp_path / 'data' / 'switchboard.db'}")
    try:
        key_id, key, digest = new_admin_key()
        await store.add_api_key("acme", key_id, digest, "admin")
        assert hash_key(key) == digest
    finally:
        await store.close()
    async with httpx2.AsyncClient(base_url=live.base, headers={"Authorization": f"Bearer {key}"}) as acme:
        assert (await acme.get("/admin/v1/gateways")).json() == {"gateways": []}
        assert (await acme.get("/admin/v1/gateways/default")).status_code == 404
        assert (await acme.get("/admin/v1/gateways/default/tools")).status_code == 404
        assert (await acme.delete("/admin/v1/gateways/default")).status_code == 404
        assert (await acme.delete("/admin/v1/gateways/default/targets/fx")).status_code == 404
        assert (await acme.post("/admin/v1/gateways/default/targets", json=NEW_TARGET)).status_code == 404
    async with Client(live.mcp, mode="legacy") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["fx___add"]


async def test_admin_api_bad_bodies_are_4xx(live: Served) -> None:
    async with httpx2.AsyncClient(base_url=live.base, headers=live.admin_headers) as admin:
        big = b'{"name": "x", "description": "' + b"a" * (2 * 1024 * 1024) + b'"}'
        assert (await admin.post("/admin/v1/gateways", content=big)).status_code == 413
        for body in (b"[]", b'"text"', b"", b'{"name": "bad name!"}'):
            response = await admin.post("/admin/v1/gateways", content=body)
            assert response.status_code == 422, body
            assert "error" in response.json()
        mismatch = await admin.put("/admin/v1/gateways/default", json={"name": "other"})
        assert mismatch.status_code == 400


async def test_admin_api_reports_operations_an_openapi_target_skipped(live: Served) -> None:
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "http://127.0.0.1:9"}],
        "paths": {
            "/ok": {"get": {"operationId": "ok", "responses": {}}},
            "/bad": {
                "post": {
                    "operationId": "bad",
                    "requestBody": {"content": {"application/json": {"schema": {"type": "strin"}}}},
                    "responses": {},
                }
            },
        },
    }
    async with httpx2.AsyncClient(base_url=live.base, headers=live.admin_headers) as admin:
        target = {"name": "api", "kind": "openapi", "spec": spec}
        assert (await admin.post("/admin/v1/gateways/default/targets", json=target)).status_code == 201
        listing = (await admin.get("/admin/v1/gateways/default/tools")).json()
    assert "api___ok" in [t["name"] for t in listing["tools"]]
    (problem,) = listing["problems"]["api"]
    assert problem.startswith(
        "skipped POST /bad (#/paths/~1bad/post): the arguments' schema is not valid JSON Schema"
    )


async def test_a_target_whose_tools_a_policy_names_is_not_deleted(live: Served) -> None:
    policy = 'permit(principal, action == Switchboard::Action::"fx___add", resource);'
    async with httpx2.AsyncClient(base_url=live.base, headers=live.admin_headers) as admin:
        gateway = {"name": "governed", "policies": [policy], "targets": [{**NEW_TARGET, "name": "fx"}]}
        gateway["targets"][0]["functions"] = ["tests.fixtures.functions:add"]
        assert (await admin.post("/admin/v1/gateways", json=gateway)).status_code == 201
        refused = await admin.delete("/admin/v1/gateways/governed/targets/fx")
        assert refused.status_code == 422, refused.text
        assert "fx___add" in str(refused.json()["issues"])
        listed = (await admin.get("/admin/v1/gateways/governed/targets")).json()["targets"]
        assert [t["name"] for t in listed] == ["fx"]


async def test_a_policy_too_deep_for_cedar_is_refused_and_the_process_lives(live: Served) -> None:
    """Cedar's native parser overflows its stack on a statement nested a few hundred deep: the
    whole process would end. It is measured first and refused."""
    nested = "(" * 800 + "true" + ")" * 800
    gateway = {"name": "deep", "policies": [f"permit(principal, action, resource) when {{ {nested} }};"]}
    async with httpx2.AsyncClient(base_url=live.base, headers=live.admin_headers) as admin:
        refused = await admin.post("/admin/v1/gateways", json=gateway)
        assert refused.status_code == 422 and "nests brackets" in str(refused.json()["issues"])
        assert (await admin.get("/admin/v1/gateways")).status_code == 200
    assert live.proc.poll() is None
