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


# -- wire hygiene (issue 15): each class of bad input, in every shape, on every path ----------


async def _paths(http: httpx2.AsyncClient, served: Served) -> dict[str, dict[str, str]]:
    """Headers for each way in: a 2025-era session, 2025-era without one, and 2026-07-28."""
    r = await http.post(served.mcp, json=INIT, headers=ACCEPT)
    session = r.headers["mcp-session-id"]
    legacy = {**ACCEPT, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(served.mcp, json=initialized, headers=legacy)).status_code == 202
    modern = {**ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}
    return {"session": legacy, "no session": ACCEPT, "2026-07-28": modern}


LIST = {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}
MODERN_LIST = {**LIST, "params": {"_meta": MODERN_META}}


def _error(r: httpx2.Response) -> dict[str, Any]:
    assert r.status_code == 400, (r.status_code, r.text)
    error: dict[str, Any] = r.json()["error"]
    assert "validation error" not in error["message"].lower()  # our words, not pydantic's
    return error


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"1.0","id":1,"method":"tools/list"}',
        b'{"id":1,"method":"tools/list"}',
        b'{"jsonrpc":"2.0","id":1}',
        b'{"jsonrpc":"2.0","id":1,"method":7}',
        b'{"jsonrpc":"2.0","id":1,"method":["tools/list"]}',
        b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]',
        b"[]",
        b"7",
        b'"tools/list"',
        b"null",
        b"true",
        b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":"x"}',
    ],
)
async def test_a_message_that_is_not_a_json_rpc_request_is_invalid_request(
    served: Served, body: bytes
) -> None:
    async with httpx2.AsyncClient() as http:
        for path, headers in (await _paths(http, served)).items():
            error = _error(await http.post(served.mcp, content=body, headers=headers))
            assert error["code"] == -32600, (path, error)
            assert error["message"].startswith("Invalid Request: "), (path, error)


@pytest.mark.parametrize("rid", [b'{"a":1}', b"[1]", b"true", b"false", b"null", b"NaN", b"1.5"])
async def test_a_request_with_a_bad_id_is_refused_never_accepted_as_a_notification(
    served: Served, rid: bytes
) -> None:
    async with httpx2.AsyncClient() as http:
        for path, headers in (await _paths(http, served)).items():
            for method in (b"tools/list", b"tools/call", b"notifications/initialized"):
                body = b'{"jsonrpc":"2.0","id":%s,"method":"%s","params":{}}' % (rid, method)
                r = await http.post(served.mcp, content=body, headers=headers)
                assert r.status_code != 202, (path, method)
                error = _error(r)
                assert error["code"] == -32600 and '"id" must be a string or an integer' in error["message"]


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:1@evil.example",
        "http://127.0.0.1:80@evil.example:80",
        "http://attacker:pw@127.0.0.1:8080",
        "http://127.0.0.1:8080.evil.example",
        "http://127.0.0.1:8080/evil",
    ],
)
async def test_an_origin_carrying_userinfo_or_a_path_fails_the_origin_check(
    served: Served, origin: str
) -> None:
    async with httpx2.AsyncClient() as http:
        for path, headers in (await _paths(http, served)).items():
            body = {"session": LIST, "no session": INIT, "2026-07-28": MODERN_LIST}[path]
            r = await http.post(served.mcp, json=body, headers={**headers, "Origin": origin})
            assert r.status_code == 403, (path, origin, r.status_code)
            # A plain loopback origin still passes (the allow-list's own rule).
            ok = await http.post(served.mcp, json=body, headers={**headers, "Origin": "http://127.0.0.1:1"})
            assert ok.status_code == 200, (path, ok.text)


@pytest.mark.parametrize("request_id", [b'{"a":1}', b"[7]", b"true", b"null", b"2.5"])
async def test_a_cancellation_naming_a_bad_request_id_is_a_json_rpc_error_never_a_500(
    served: Served, request_id: bytes
) -> None:
    body = b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%s}}' % request_id
    async with httpx2.AsyncClient() as http:
        for path, headers in (await _paths(http, served)).items():
            error = _error(await http.post(served.mcp, content=body, headers=headers))
            assert error["code"] == -32602 and "params.requestId" in error["message"], path
        # The session is still fine afterwards.
        legacy = (await _paths(http, served))["session"]
        listing = await http.post(served.mcp, json=LIST, headers=legacy)
        assert listing.status_code == 200 and messages(listing)[0]["result"]["tools"]
