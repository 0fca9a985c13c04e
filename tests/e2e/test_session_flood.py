"""A flood of 2025-era sessions (issue 15, hole 7; SECURITY.md: auth and protocol, faults and load).

Initializes that never come back used to fill the SDK's session table until every new
2025-era client got HTTP 503 for the idle timeout. A real ``switchboard serve`` with
small limits (5 sessions per caller, 12 in all) is flooded from one principal or one
address; other callers still initialize and call tools, the flooder's oldest idle
sessions answer 404 (an ended session, per the spec), and nothing answers 503.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.harness import ACCEPT, INIT, Served, create_tenant, serve_config

pytestmark = pytest.mark.anyio

PER_CALLER = 5
MAX_SESSIONS = 12
LIMITS = {
    "SWITCHBOARD_SESSIONS_PER_CALLER": str(PER_CALLER),
    "SWITCHBOARD_MAX_SESSIONS": str(MAX_SESSIONS),
}
CONFIG = """
gateways:
  - name: default
    targets:
      - {name: fx, kind: function, functions: ["tests.fixtures.functions:add"]}
  - name: keyed
    auth: {kind: api_key}
    targets:
      - {name: fx, kind: function, functions: ["tests.fixtures.functions:add"]}
"""
LEGACY = "2025-11-25"
LISTING = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flood")


@pytest.fixture(scope="module")
def served(root: Path) -> Iterator[Served]:
    with serve_config(root, CONFIG, env=LIMITS) as s:
        yield s


@asynccontextmanager
async def http_from(address: str, **headers: str) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client whose connections come from ``address`` (a loopback address)."""
    transport = httpx2.AsyncHTTPTransport(local_address=address)
    async with httpx2.AsyncClient(transport=transport, headers=headers, timeout=30) as http:
        yield http


async def flood(http: httpx2.AsyncClient, url: str, count: int) -> list[str]:
    """``count`` initializes that never come back; the session ids, oldest first."""
    sessions = []
    for _ in range(count):
        r = await http.post(url, json=INIT, headers=ACCEPT)
        assert r.status_code == 200, (r.status_code, r.text)  # never a 503
        sessions.append(r.headers["mcp-session-id"])
    return sessions


async def status_of(http: httpx2.AsyncClient, url: str, session: str) -> int:
    headers = {**ACCEPT, "Mcp-Session-Id": session, "MCP-Protocol-Version": LEGACY}
    return (await http.post(url, json=LISTING, headers=headers)).status_code


async def call_add(http: httpx2.AsyncClient, url: str) -> None:
    """A whole 2025-era client session: initialize, list, call."""
    async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
        assert "fx___add" in {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("fx___add", {"a": 40, "b": 2})
    assert result.structured_content == {"result": 42}


async def make_key(served: Served, subject: str) -> str:
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        made = await admin.post("/admin/v1/gateways/keyed/keys", json={"subject": subject})
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


async def test_initialize_flood_from_one_address_does_not_lock_out_another(served: Served) -> None:
    async with http_from("127.0.0.1") as flooder:
        sessions = await flood(flooder, served.mcp, 10 * PER_CALLER)
        # The flooder keeps only its newest sessions; its oldest ended and are not found.
        assert await status_of(flooder, served.mcp, sessions[0]) == 404
        assert await status_of(flooder, served.mcp, sessions[-1]) == 200
    async with http_from("127.0.0.2") as other:
        await call_add(other, served.mcp)


async def test_initialize_flood_from_one_principal_leaves_another_served(served: Served) -> None:
    url = served.gateway("keyed")
    mallory, alice = await make_key(served, "mallory"), await make_key(served, "alice")
    async with http_from("127.0.0.1", Authorization=f"Bearer {mallory}") as flooder:
        sessions = await flood(flooder, url, 10 * PER_CALLER)
        assert await status_of(flooder, url, sessions[0]) == 404
        assert await status_of(flooder, url, sessions[-1]) == 200
    # Same address, another principal: counted apart, and served.
    async with http_from("127.0.0.1", Authorization=f"Bearer {alice}") as other:
        await call_add(other, url)
        # A session belongs to its principal: another one's id does not exist for alice.
        assert await status_of(other, url, sessions[-1]) == 404


async def test_floods_from_many_addresses_evict_idle_sessions_instead_of_refusing(served: Served) -> None:
    opened: list[str] = []
    for host in ("127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"):
        async with http_from(host) as flooder:
            opened += await flood(flooder, served.mcp, PER_CALLER)
    assert len(opened) > MAX_SESSIONS  # past the whole table's size, and never a 503
    async with http_from("127.0.0.3") as first:
        # The least recently used sessions made room: the oldest are gone, the newest live.
        assert await status_of(first, served.mcp, opened[0]) == 404
    async with http_from("127.0.0.6") as last:
        assert await status_of(last, served.mcp, opened[-1]) == 200
    async with http_from("127.0.0.7") as other:
        await call_add(other, served.mcp)


async def test_a_caller_whose_sessions_are_all_busy_is_told_so_with_429(served: Served) -> None:
    async with http_from("127.0.0.8") as caller:
        sessions = await flood(caller, served.mcp, PER_CALLER)
        streams = []
        try:
            for session in sessions:  # an open GET stream keeps a session busy
                headers = {"Accept": "text/event-stream", "Mcp-Session-Id": session}
                headers["MCP-Protocol-Version"] = LEGACY
                request = caller.build_request("GET", served.mcp, headers=headers)
                stream = await caller.send(request, stream=True)
                assert stream.status_code == 200
                streams.append(stream)
            refused = await caller.post(served.mcp, json=INIT, headers=ACCEPT)
            assert refused.status_code == 429
            assert "all with requests in flight" in refused.json()["error"]["message"]
        finally:
            for stream in streams:
                await stream.aclose()
    async with http_from("127.0.0.9") as other:  # nobody else is refused meanwhile
        await call_add(other, served.mcp)


async def test_a_session_that_never_comes_back_after_initialize_ends_soon(tmp_path: Path) -> None:
    env = {"SWITCHBOARD_SESSION_HANDSHAKE_SECONDS": "2", "SWITCHBOARD_LOG_LEVEL": "debug"}
    with serve_config(tmp_path, CONFIG, env=env) as served:
        async with httpx2.AsyncClient(timeout=30) as http:
            used = (await http.post(served.mcp, json=INIT, headers=ACCEPT)).headers["mcp-session-id"]
            headers = {**ACCEPT, "Mcp-Session-Id": used, "MCP-Protocol-Version": LEGACY}
            assert (await http.post(served.mcp, json=INITIALIZED, headers=headers)).status_code == 202
            silent = (await http.post(served.mcp, json=INIT, headers=ACCEPT)).headers["mcp-session-id"]
            # Two seconds after its initialize the silent session ends; the used one lives on.
            ended = re.compile(rf"session {silent} ended: idle too long after its initialize")
            served.reader.until(ended, time.monotonic() + 30)
            assert await status_of(http, served.mcp, silent) == 404
            assert await status_of(http, served.mcp, used) == 200


async def test_one_tenants_flood_never_ends_another_tenants_sessions(served: Served, root: Path) -> None:
    """The session table is shared by every tenant; room is made in the tenant holding most."""
    quiet = await create_tenant(root / "data", "quiet")
    async with httpx2.AsyncClient(base_url=served.base, headers=quiet) as admin:
        assert (await admin.post("/admin/v1/gateways", json={"name": "g"})).status_code == 201
    url = f"{served.base}/tenants/quiet/gateways/g/mcp"
    async with http_from("127.0.0.9") as calm:
        (kept,) = await flood(calm, url, 1)  # one idle session of another tenant
    opened: list[str] = []
    for host in (
        "127.0.0.10",
        "127.0.0.11",
        "127.0.0.12",
        "127.0.0.13",
    ):  # the default tenant fills the table
        async with http_from(host) as flooder:
            opened += await flood(flooder, served.mcp, PER_CALLER)
    assert len(opened) > MAX_SESSIONS
    async with http_from("127.0.0.9") as calm:
        assert await status_of(calm, url, kept) == 200, "another tenant's flood ended this tenant's session"


async def test_a_tenant_keeping_its_sessions_busy_still_cannot_end_another_tenants(tmp_path: Path) -> None:
    """Busy sessions cannot be ended, so room is never taken from a tenant holding fewer: the
    busy tenant's own new session is refused (503) and the other tenant's idle one lives on."""
    with serve_config(tmp_path, CONFIG, env=LIMITS) as served:
        quiet = await create_tenant(tmp_path / "data", "quiet")
        async with httpx2.AsyncClient(base_url=served.base, headers=quiet) as admin:
            assert (await admin.post("/admin/v1/gateways", json={"name": "g"})).status_code == 201
        url = f"{served.base}/tenants/quiet/gateways/g/mcp"
        async with http_from("127.0.0.20") as calm:
            (kept,) = await flood(calm, url, 1)
        async with AsyncExitStack() as stack:
            counts = {21: PER_CALLER, 22: PER_CALLER, 23: MAX_SESSIONS - 1 - 2 * PER_CALLER}
            for n, count in counts.items():
                http = await stack.enter_async_context(http_from(f"127.0.0.{n}"))
                for session in await flood(http, served.mcp, count):  # each held busy by a GET stream
                    headers = {"Accept": "text/event-stream", "Mcp-Session-Id": session}
                    headers["MCP-Protocol-Version"] = LEGACY
                    request = http.build_request("GET", served.mcp, headers=headers)
                    stream = await http.send(request, stream=True)
                    stack.push_async_callback(stream.aclose)
                    assert stream.status_code == 200
            async with http_from("127.0.0.24") as more:
                refused = await more.post(served.mcp, json=INIT, headers=ACCEPT)
                assert refused.status_code == 503, refused.text
            async with http_from("127.0.0.20") as calm:
                assert await status_of(calm, url, kept) == 200
