"""The HTTP and JSON-RPC edge under bad input (SECURITY.md: auth and protocol)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from tests.e2e.harness import ACCEPT, INIT, Served

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def messages(response: httpx2.Response) -> list[dict[str, Any]]:
    if response.headers.get("content-type", "").startswith("application/json"):
        return [response.json()]
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


async def test_foreign_origin_is_refused_with_403(served: Served) -> None:
    async with httpx2.AsyncClient() as http:
        r = await http.post(served.mcp, json=INIT, headers={**ACCEPT, "Origin": "https://evil.example"})
    assert r.status_code == 403


async def test_unexpected_host_is_refused(served: Served) -> None:
    async with httpx2.AsyncClient() as http:
        r = await http.post(served.mcp, json=INIT, headers={**ACCEPT, "Host": "attacker.example"})
    assert r.status_code == 421


async def test_oversized_body_is_413(served: Served) -> None:
    big = {**INIT, "params": {**INIT["params"], "pad": "x" * (5 * 1024 * 1024)}}  # type: ignore[dict-item]
    async with httpx2.AsyncClient() as http:
        r = await http.post(served.mcp, content=json.dumps(big), headers=ACCEPT)
    assert r.status_code == 413


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b"null", b'{"jsonrpc":"2.0"}', b'{"jsonrpc":"2.0","id":1,"method":7}', b"\xff\xfe"],
)
async def test_malformed_json_rpc_gets_a_json_rpc_error_never_a_5xx(served: Served, body: bytes) -> None:
    async with httpx2.AsyncClient() as http:
        for headers in (ACCEPT, {**ACCEPT, "MCP-Protocol-Version": MODERN}):
            r = await http.post(served.mcp, content=body, headers=headers)
            assert r.status_code < 500
            assert "Traceback" not in r.text
            if r.status_code == 200 or r.headers.get("content-type", "").startswith("application/json"):
                assert all("error" in m for m in messages(r))


async def test_session_of_one_gateway_is_unknown_on_another(served: Served) -> None:
    async with httpx2.AsyncClient() as http:
        r = await http.post(served.mcp, json=INIT, headers=ACCEPT)
        session = r.headers["mcp-session-id"]
        headers = {**ACCEPT, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        other = await http.post(served.gateway("second"), json=listing, headers=headers)
        assert other.status_code == 404
        own = await http.post(served.mcp, json=listing, headers=headers)
        assert own.status_code == 200
        assert messages(own)[0]["result"]["tools"]


async def test_unknown_session_id_is_404(served: Served) -> None:
    async with httpx2.AsyncClient() as http:
        headers = {**ACCEPT, "Mcp-Session-Id": "not-a-session", "MCP-Protocol-Version": "2025-11-25"}
        r = await http.post(
            served.mcp, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers
        )
    assert r.status_code == 404


async def test_mcp_method_header_disagreeing_with_body_is_400(served: Served) -> None:
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": MODERN_META}}
    async with httpx2.AsyncClient() as http:
        headers = {**ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call"}
        r = await http.post(served.mcp, json=call, headers=headers)
    assert r.status_code == 400
    assert "error" in messages(r)[0]


async def test_unsupported_protocol_version_gets_the_spec_error(served: Served) -> None:
    call = {"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {"_meta": MODERN_META}}
    async with httpx2.AsyncClient() as http:
        headers = {**ACCEPT, "MCP-Protocol-Version": "1999-01-01", "Mcp-Method": "tools/list"}
        r = await http.post(served.mcp, json=call, headers=headers)
    assert r.status_code == 400
    error = messages(r)[0]["error"]
    assert "version" in error["message"].lower()


async def test_unknown_gateway_is_404_with_a_hint(served: Served) -> None:
    async with httpx2.AsyncClient() as http:
        r = await http.post(served.gateway("nope"), json=INIT, headers=ACCEPT)
    assert r.status_code == 404
    assert "No gateway named 'nope'" in r.json()["error"]


async def test_bad_cursor_is_invalid_params(served: Served) -> None:
    async with httpx2.AsyncClient() as http:
        r = await http.post(served.mcp, json=INIT, headers=ACCEPT)
        headers = {
            **ACCEPT,
            "Mcp-Session-Id": r.headers["mcp-session-id"],
            "MCP-Protocol-Version": "2025-11-25",
        }
        bad = {"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {"cursor": "%%%"}}
        listing = await http.post(served.mcp, json=bad, headers=headers)
    error = messages(listing)[0]["error"]
    assert error["code"] == -32602 and "Invalid cursor" in error["message"]
