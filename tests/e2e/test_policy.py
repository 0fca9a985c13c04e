"""Policy and rate limits through a real `switchboard serve`: per-user tools/list, refusals of
guessed names and of forbidden arguments, a policy that names a missing tool refused on save,
a rate limit that refuses, says when to retry, then lets the caller through again, and every
JSON type, written on the wire as a client may write it, meeting a forbid rule exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.harness import ACCEPT, INIT, Served, serve, serve_config

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


PAY = 'Switchboard::Action::"p___pay"'


def forbid(condition: str) -> str:
    return f"forbid(principal, action == {PAY}, resource) when {{ {condition} }};"


PAYMENTS = {
    "gateways": [
        {
            "name": "default",
            "policies": [
                f"permit(principal, action == {PAY}, resource);",
                forbid("context has amount && context.amount > 100"),
                forbid("context has price && context.price > 100"),
                forbid("context has urgent && context.urgent"),
                forbid('context has memo && context.memo == "wire"'),
                forbid('context has tags && context.tags.contains("x")'),
                forbid(
                    "context has meta && context.meta has inner && context.meta.inner has depth"
                    " && context.meta.inner.depth > 1"
                ),
            ],
            "targets": [
                {
                    "name": "p",
                    "kind": "function",
                    "functions": [
                        {
                            "function": "tests.fixtures.functions:pay",
                            "input_schema": {
                                "type": "object",
                                "properties": {
                                    "amount": {"type": "integer"},
                                    "price": {"type": "number"},
                                    "urgent": {"type": "boolean"},
                                    "memo": {"type": "string"},
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                    "meta": {
                                        "type": "object",
                                        "properties": {
                                            "inner": {
                                                "type": "object",
                                                "properties": {"depth": {"type": "integer"}},
                                            }
                                        },
                                    },
                                },
                                "additionalProperties": False,
                            },
                        }
                    ],
                }
            ],
        }
    ]
}
FORBIDDEN = "The gateway's policy does not allow p___pay"
NOT_COMPARABLE = "The gateway's policy reads the argument"


@pytest.fixture(scope="module")
def payments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # Argument capture in traces is off here: its JSON encoder refuses integers past 64 bits
    # before policy runs (the call fails unrun, but not with the policy's words).
    off = {"SWITCHBOARD_TRACE_CONTENT": "false"}
    with serve_config(tmp_path_factory.mktemp("payments"), json.dumps(PAYMENTS), env=off) as s:
        yield s


async def call_raw(served: Served, arguments: bytes) -> dict[str, Any]:
    """A tools/call whose arguments are sent as these exact bytes (``1e6`` stays ``1e6`` on the wire)."""
    async with httpx2.AsyncClient(timeout=30) as http:
        started = await http.post(served.mcp, json=INIT, headers=ACCEPT)
        headers = {
            **ACCEPT,
            "Mcp-Session-Id": started.headers["mcp-session-id"],
            "MCP-Protocol-Version": "2025-11-25",
        }
        await http.post(
            served.mcp, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )
        body = (
            b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"p___pay","arguments":'
            + arguments
            + b"}}"
        )
        answer = await http.post(served.mcp, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    if answer.headers.get("content-type", "").startswith("application/json"):
        found: list[dict[str, Any]] = [answer.json()]
    else:
        found = [json.loads(line[5:]) for line in answer.text.splitlines() if line.startswith("data:")]
    result: dict[str, Any] = found[-1]["result"]
    return result


@pytest.mark.parametrize(
    ("arguments", "outcome"),
    [
        (b'{"amount": 1000000}', FORBIDDEN),  # int
        (b'{"amount": 1000000.0}', FORBIDDEN),  # whole float: it was allowed before
        (b'{"amount": 1e6}', FORBIDDEN),
        (b'{"amount": 1E+6}', FORBIDDEN),
        (b'{"amount": 5.0}', "paid 5"),
        (b'{"price": 1000000.0}', FORBIDDEN),
        (b'{"price": 2.5}', NOT_COMPARABLE),  # fractional float: refused, never dropped
        (b'{"price": 1e400}', NOT_COMPARABLE),  # infinity once parsed
        (b'{"amount": 9223372036854775808}', NOT_COMPARABLE),  # beyond Cedar's 64-bit integers
        (b'{"amount": -9223372036854775809}', NOT_COMPARABLE),
        (b'{"amount": 18446744073709551616}', NOT_COMPARABLE),
        (b'{"price": 1e19}', NOT_COMPARABLE),
        (b'{"urgent": true}', FORBIDDEN),  # bool
        (b'{"urgent": false}', "paid 0"),
        (b'{"memo": "wire"}', FORBIDDEN),  # string
        (b'{"memo": "cash"}', "paid 0"),
        (b'{"tags": ["a", "x"]}', FORBIDDEN),  # array
        (b'{"tags": ["a"]}', "paid 0"),
        (b'{"meta": {"inner": {"depth": 2.0}}}', FORBIDDEN),  # object, nested
        (b'{"meta": {"inner": {"depth": 1}}}', "paid 0"),
        (b'{"meta": {"inner": {"depth": 1.5}}}', "depth"),  # refused by the schema (not an integer)
        (b'{"amount": null}', "amount"),  # null: refused by the schema, not dropped
    ],
)
async def test_every_json_type_meets_a_forbid_rule_on_the_wire(
    payments: Served, arguments: bytes, outcome: str
) -> None:
    result = await call_raw(payments, arguments)
    text = result["content"][0]["text"]
    assert outcome in text, text
    assert result.get("isError", False) is (not text.startswith("paid"))
