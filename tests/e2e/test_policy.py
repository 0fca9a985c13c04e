"""Policy and rate limits through a real `switchboard serve`: per-user tools/list, refusals of
guessed names and of forbidden arguments, a policy that names a missing tool refused on save,
and a rate limit that refuses, says when to retry, then lets the caller through again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.harness import Served, serve

pytestmark = pytest.mark.anyio
GATEWAY: dict[str, Any] = {
    "name": "default",
    "auth": {"kind": "api_key"},
    "targets": [
        {
            "name": "fx",
            "kind": "function",
            "functions": [
                "tests.fixtures.functions:whoami",
                "tests.fixtures.functions:add",
                "tests.fixtures.functions:tally",
            ],
            "overrides": {"tally": {"annotations": {"readOnlyHint": True}}},
        }
    ],
    "rate_limits": [{"limit": "3/second", "per": "caller_tool", "tools": ["fx___whoami"]}],
    "cache": [{"tools": ["fx___tally"], "ttl_seconds": 60}],
    "policies": [
        'permit(principal, action == Switchboard::Action::"fx___whoami", resource);',
        'permit(principal, action == Switchboard::Action::"fx___tally", resource);',
        'permit(principal, action == Switchboard::Action::"fx___add", resource)'
        ' when { principal.scopes.contains("math") };',
        'forbid(principal, action == Switchboard::Action::"fx___add", resource)'
        " when { context has a && context.a > 100 };",
    ],
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, dict[str, str]]]:
    root: Path = tmp_path_factory.mktemp("policy")
    with serve(root / "data") as s:

        async def setup() -> dict[str, str]:
            async with httpx2.AsyncClient(base_url=s.base, headers=s.admin_headers) as admin:
                put = await admin.put("/admin/v1/gateways/default", json=GATEWAY)
                assert put.status_code in (200, 201), put.text
                keys = {}
                for user, scopes in (("plain", []), ("mathematician", ["math"])):
                    made = await admin.post(
                        "/admin/v1/gateways/default/keys", json={"subject": user, "scopes": scopes}
                    )
                    keys[user] = made.json()["key"]
                return keys

        yield s, anyio.run(setup)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_each_user_sees_and_calls_what_policy_allows(
    served: tuple[Served, dict[str, str]], mode: str
) -> None:
    s, keys = served
    for user, visible in (
        ("plain", {"fx___whoami", "fx___tally"}),
        ("mathematician", {"fx___whoami", "fx___add", "fx___tally"}),
    ):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {keys[user]}"}, timeout=30) as http,
            Client(streamable_http_client(s.mcp, http_client=http), mode=mode) as client,
        ):
            assert {t.name for t in (await client.list_tools()).tools} == visible
            small = await client.call_tool("fx___add", {"a": 2, "b": 3})
            big = await client.call_tool("fx___add", {"a": 1000, "b": 1})
        if user == "plain":  # guessing the hidden name gets the same refusal
            assert small.is_error and "does not allow fx___add" in small.content[0].text  # type: ignore[union-attr]
        else:
            assert small.structured_content == {"result": 5}
            assert big.is_error and "does not allow fx___add" in big.content[0].text  # type: ignore[union-attr]


async def test_a_policy_naming_a_missing_tool_is_refused_and_nothing_changes(
    served: tuple[Served, dict[str, str]],
) -> None:
    s, _ = served
    bad = {
        **GATEWAY,
        "policies": ['permit(principal, action == Switchboard::Action::"fx___delete_all", resource);'],
    }
    async with httpx2.AsyncClient(base_url=s.base, headers=s.admin_headers) as admin:
        refused = await admin.put("/admin/v1/gateways/default", json=bad)
        assert refused.status_code == 422, refused.text
        assert "fx___delete_all" in refused.text
        kept = (await admin.get("/admin/v1/gateways/default")).json()
    assert kept["policies"] == GATEWAY["policies"]


async def test_a_rate_limit_refuses_then_allows_again(served: tuple[Served, dict[str, str]]) -> None:
    s, keys = served
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {keys['plain']}"}, timeout=30) as http,
        Client(streamable_http_client(s.mcp, http_client=http), mode="legacy") as client,
    ):
        results = [await client.call_tool("fx___whoami", {}) for _ in range(4)]
        assert [r.is_error for r in results] == [False, False, False, True]
        text = results[-1].content[0].text  # type: ignore[union-attr]
        assert text == "Rate limit reached for fx___whoami (3/second per caller and tool); try again in 1 s."
        await anyio.sleep(1.2)  # the window moves on
        assert not (await client.call_tool("fx___whoami", {})).is_error
    async with (  # another caller was never limited by plain's calls
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {keys['mathematician']}"}, timeout=30) as http,
        Client(streamable_http_client(s.mcp, http_client=http), mode="legacy") as client,
    ):
        assert not (await client.call_tool("fx___whoami", {})).is_error


async def test_cached_results_never_cross_users(served: tuple[Served, dict[str, str]]) -> None:
    s, keys = served

    async def tally(user: str) -> str:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {keys[user]}"}, timeout=30) as http,
            Client(streamable_http_client(s.mcp, http_client=http), mode="legacy") as client,
        ):
            return str((await client.call_tool("fx___tally", {})).content[0].text)  # type: ignore[union-attr]

    first = await tally("plain")
    assert first.endswith("for plain")
    assert await tally("plain") == first  # served from the cache
    other = await tally("mathematician")
    assert other.endswith("for mathematician") and other != first  # never plain's answer
    assert await tally("plain") == first


async def test_every_call_is_in_the_audit_with_its_decision(served: tuple[Served, dict[str, str]]) -> None:
    s, keys = served
    secret_argument = 424242
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {keys['plain']}"}, timeout=30) as http,
        Client(streamable_http_client(s.mcp, http_client=http), mode="legacy") as client,
    ):
        refused = await client.call_tool("fx___add", {"a": secret_argument, "b": 1})
        assert refused.is_error
    async with httpx2.AsyncClient(base_url=s.base, headers=s.admin_headers) as admin:
        for _ in range(50):  # records are written in batches, just after the call
            body = (
                await admin.get("/admin/v1/audit", params={"subject": "plain", "decision": "denied"})
            ).text
            if "fx___add" in body:
                break
            await anyio.sleep(0.1)
        denied = (
            await admin.get("/admin/v1/audit", params={"subject": "plain", "decision": "denied"})
        ).json()
        record = denied["records"][0]
        assert (record["tool"], record["decision"], record["outcome"]) == ("fx___add", "denied", "refused")
        assert len(record["arguments_digest"]) == 64 and str(secret_argument) not in str(denied)
        limited = (await admin.get("/admin/v1/audit", params={"decision": "limited"})).json()["records"]
        assert limited and all(r["tool"] == "fx___whoami" for r in limited)
        allowed = (await admin.get("/admin/v1/audit", params={"tool": "fx___tally", "limit": 2})).json()[
            "records"
        ]
        assert len(allowed) == 2 and all(r["decision"] == "allowed" and r["outcome"] == "ok" for r in allowed)
