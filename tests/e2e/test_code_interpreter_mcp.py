"""A code interpreter as a gateway target, through a real ``switchboard serve``: an MCP client (both
protocol eras) keeps Python state across calls, gets a matplotlib chart as image content, files
up and down, its own session per MCP session, a session it names by id, and clear errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client

from tests.e2e.harness import Served, serve_config

pytestmark = pytest.mark.anyio

CONFIG = """
gateways:
  - name: default
    targets:
      - name: py
        kind: code_interpreter
        wall_seconds: 5
        warm: 1
      - name: net
        kind: code_interpreter
        network: PUBLIC
        wall_seconds: 10
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_config(tmp_path_factory.mktemp("interpreter-mcp"), CONFIG) as s:
        yield s


def _text(result: types.CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def _call(client: Client, tool: str, **arguments: Any) -> types.CallToolResult:
    return await client.call_tool(f"py___{tool}", arguments)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_state_charts_and_files_through_mcp(served: Served, mode: str) -> None:
    async with Client(served.mcp, mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"py___executeCode", "py___readFiles", "py___stopSession"} <= names
        first = await _call(client, "executeCode", code="total = sum(range(10))\ntotal", clearContext=True)
        assert _text(first) == "45\n" and not first.is_error
        session = (first.structured_content or {})["sessionId"]
        kept = await _call(client, "executeCode", code="print(total * 2)")
        assert _text(kept) == "90\n"
        assert (kept.structured_content or {})["sessionId"] == session
        chart = await _call(
            client,
            "executeCode",
            code="import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [1, 2])\nplt.show()",
        )
        images = [b for b in chart.content if isinstance(b, types.ImageContent)]
        assert len(images) == 1 and images[0].mime_type == "image/png"
        assert base64.b64decode(images[0].data).startswith(b"\x89PNG")
        await _call(client, "writeFiles", content=[{"path": "d/note.txt", "text": "hello"}])
        read = await _call(client, "readFiles", paths=["d/note.txt"])
        resources = [b for b in read.content if isinstance(b, types.EmbeddedResource)]
        assert len(resources) == 1 and getattr(resources[0].resource, "text", None) == "hello"
        listed = await _call(client, "listFiles", directoryPath="d")
        assert [b.name for b in listed.content if isinstance(b, types.ResourceLink)] == ["note.txt"]
        outside = await _call(client, "readFiles", paths=["../../etc/passwd"])
        assert outside.is_error and "inside the work directory" in _text(outside)
        stopped = await _call(client, "stopSession")
        assert session in _text(stopped)
        fresh = await _call(client, "executeCode", code="print('total' in globals())")
        assert _text(fresh) == "False\n"  # a new session: nothing of the last one
        assert (fresh.structured_content or {})["sessionId"] != session


async def test_each_mcp_session_has_its_own_and_a_named_one_is_shared_only_by_id(served: Served) -> None:
    async with Client(served.mcp, mode="legacy") as one, Client(served.mcp, mode="legacy") as two:
        made = await _call(one, "executeCode", code="secret = 'mine'")
        session = (made.structured_content or {})["sessionId"]
        other = await _call(two, "executeCode", code="print('secret' in globals())")
        assert _text(other) == "False\n"
        assert (other.structured_content or {})["sessionId"] != session
        named = await _call(two, "executeCode", code="print(secret)", sessionId=session)
        assert _text(named) == "mine\n"  # the same caller (anonymous here) may name it
        unknown = await _call(two, "executeCode", code="1", sessionId="NOSUCH")
        assert unknown.is_error and "NOSUCH" in _text(unknown)
        slow = await _call(one, "executeCode", code="import time\ntime.sleep(60)")
        assert slow.is_error and "wall time" in _text(slow)
        alive = await _call(one, "executeCode", code="print(secret)")
        assert _text(alive) == "mine\n"  # interrupted in time: the state is kept


async def test_the_admin_api_lists_and_stops_sessions(served: Served) -> None:
    async with Client(served.mcp, mode="legacy") as client:
        made = await _call(client, "executeCode", code="x = bytearray(20 * 1024 * 1024)")
        session = (made.structured_content or {})["sessionId"]
        async with httpx2.AsyncClient(headers=served.admin_headers) as admin:
            listed = (
                await admin.get(f"{served.base}/admin/v1/code-interpreter-sessions?status=READY")
            ).json()
            mine = next(s for s in listed["sessions"] if s["session_id"] == session)
            assert mine["status"] == "READY" and mine["calls"] == 1
            assert mine["memory_bytes"] > 20 * 1024 * 1024 and mine["cpu_seconds"] >= 0
            assert mine["interpreter"].startswith("target:default/py:")
            stopped = await admin.delete(f"{served.base}/admin/v1/code-interpreter-sessions/{session}")
            assert stopped.status_code == 200 and stopped.json()["status"] == "TERMINATED"
            again = await admin.delete(f"{served.base}/admin/v1/code-interpreter-sessions/{session}")
            assert again.status_code == 200  # (stopping an ended session changes nothing)
            missing = await admin.delete(f"{served.base}/admin/v1/code-interpreter-sessions/NOSUCH")
            assert missing.status_code == 404 and "NOSUCH" in missing.json()["error"]
            bad = await admin.get(f"{served.base}/admin/v1/code-interpreter-sessions?status=SLEEPING")
            assert bad.status_code == 400
        after = await _call(client, "executeCode", code="print('x' in globals())")
        assert _text(after) == "False\n"  # its caller goes on in a new session


async def test_public_mode_goes_through_the_proxy_which_refuses_the_gateway_itself(served: Served) -> None:
    port = served.base.rsplit(":", 1)[1]
    probe = (
        "import os, urllib.request, urllib.error\n"
        "print(os.environ['HTTPS_PROXY'])\n"
        "try:\n"
        f"    urllib.request.urlopen('http://[::ffff:127.0.0.1]:{port}/mcp', timeout=10)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.read().decode())\n"
    )
    async with Client(served.mcp, mode="legacy") as client:
        result = await client.call_tool("net___executeCode", {"code": probe})
        out = _text(result)
        assert out.startswith("http://127.0.0.1:3128\n403 "), out
        assert "loopback" in out  # refused by the proxy before it connected
        closed = await _call(client, "executeCode", code="import os\nprint(os.environ.get('HTTPS_PROXY'))")
        assert _text(closed) == "None\n"  # the SANDBOX target has no way out at all
