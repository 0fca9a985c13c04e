"""A stdio MCP server's environment (SECURITY.md, trust boundaries; issue 15, hole 2).

A real ``switchboard serve``, whose own environment holds secrets, starts a tiny stdio
server the test writes; the server's one tool reports the environment it was given.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
from mcp import Client

from tests.e2e.harness import serve_config

pytestmark = pytest.mark.anyio

SERVER = """
import os
from mcp.server.mcpserver import MCPServer

server = MCPServer("env")


@server.tool()
def environment() -> str:
    \"\"\"The names and values of this process's environment variables.\"\"\"
    return __import__("json").dumps(dict(os.environ))


server.run("stdio")
"""

# The gateway really uses the first three: its vault's master key comes from an environment
# variable, and /metrics asks for a token.
GATEWAY_SECRETS = {
    "SWITCHBOARD_VAULT_KEY_ENV": "SB_TEST_VAULT_MASTER_KEY",
    "SB_TEST_VAULT_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
    "SWITCHBOARD_METRICS_TOKEN": "metrics-token-that-must-not-leak",
    "DATABASE_URL": "postgresql://gw:secret@127.0.0.1/gw",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-that-must-not-leak",
}


async def _environment(url: str, tool: str) -> dict[str, str]:
    async with Client(url) as client:
        result = await client.call_tool(tool, {})
    assert not result.is_error, result
    text = result.content[0].text  # type: ignore[union-attr]
    env: dict[str, str] = json.loads(text)
    return env


async def test_stdio_server_never_sees_the_gateways_own_environment(tmp_path: Path) -> None:
    script = tmp_path / "env_server.py"
    script.write_text(SERVER)
    config = f"""
gateways:
  - name: default
    targets:
      - name: named
        kind: mcp
        command: [{json.dumps(sys.executable)}, {json.dumps(str(script))}]
        env: {{GREETING: hello, API_TOKEN: target-token}}
      - name: plain
        kind: mcp
        command: [{json.dumps(sys.executable)}, {json.dumps(str(script))}]
"""
    with serve_config(tmp_path, config, env=GATEWAY_SECRETS) as served:
        named = await _environment(served.mcp, "named___environment")
        plain = await _environment(served.mcp, "plain___environment")
    for env in (named, plain):
        leaked = sorted(set(GATEWAY_SECRETS) & set(env))
        assert not leaked, f"the gateway's variables reached the stdio server: {leaked}"
        assert not any(value in env.values() for value in GATEWAY_SECRETS.values())
        assert "PATH" in env  # the SDK's minimal default environment, so commands are found
    # What the target names is given, on top of the default; nothing else of the gateway's.
    assert named["GREETING"] == "hello" and named["API_TOKEN"] == "target-token"
    assert "GREETING" not in plain
