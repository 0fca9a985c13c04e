"""The code interpreter target's provider: refused when its sandbox cannot run here (never run
without it), and AgentCore's result blocks in MCP's shape."""

from __future__ import annotations

from pathlib import Path

import pytest

import sandbox._bwrap as bwrap
from gateway.config import CodeInterpreterTarget, McpTarget
from gateway.core.errors import ConfigError
from gateway.providers.code_interpreter import CodeInterpreterProvider, _mcp_block
from gateway.providers.mcp import McpProvider


def test_a_target_whose_sandbox_cannot_run_is_refused_when_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bwrap, "BWRAP", str(tmp_path / "no-bwrap"))
    with pytest.raises(ConfigError) as refused:
        CodeInterpreterProvider(CodeInterpreterTarget(name="py", kind="code_interpreter"))
    assert refused.value.issues[0].location == "backend"
    assert "apt-get install bubblewrap" in refused.value.issues[0].message
    stdio = McpTarget(name="s", kind="mcp", command=["server"], sandbox="bwrap")  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as also:
        McpProvider(stdio)
    assert also.value.issues[0].location == "sandbox.backend"


def test_embedded_resources_lose_agentcores_inner_type() -> None:
    block = {"type": "resource", "resource": {"type": "text", "uri": "file:///a.txt", "text": "hi"}}
    assert _mcp_block(block) == {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "hi"}}
    link = {"type": "resource_link", "uri": "file:///d", "name": "d", "description": "Directory"}
    assert _mcp_block(link) == link
