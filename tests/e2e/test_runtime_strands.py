"""A Strands agent hosted unchanged (ADR 0039, 0040): `switchboard runtime deploy` installs
strands-agents from its requirements.txt; invoked through a real `switchboard serve`, the agent
talks to a scripted OpenAI-compatible model on the host's loopback (a runtime service the operator
links in) and calls a tool of the tenant's gateway over MCP, at the gateway URL it is given."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from sandbox import available
from tests.e2e.harness import ROOT, Served, serve
from tests.support.model_server import ScriptedModel, Step, Text, ToolCall, serve_model, tool_results
from tests.support.tools import need

# The deploy installs strands-agents and its dependencies from the package index.
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]

AGENT = ROOT / "tests" / "fixtures" / "strands_agent"
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
MODEL_INSIDE = 11434  # the model's port in the sandbox (the host's free port could be one it refuses)
CONFIG = """
gateways:
  - name: default
    auth: {kind: api_key}
    targets:
      - name: calc
        kind: function
        functions: [tests.fixtures.functions:add]
"""


def _answer_from_the_tool(request: dict[str, Any]) -> Text:
    """The model's second turn: it says what the tool answered (so the test sees it went round)."""
    results = tool_results(request)
    if len(results) != 1:
        return Text(f"expected one tool result, got {len(results)}")
    return Text(f"1234 + 4321 = {results[0]['content']}")


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str, ScriptedModel]]:
    need(available() is None, f"bubblewrap sandboxes: {available()}")
    root = tmp_path_factory.mktemp("strands")
    command = [sys.executable, "-m", "gateway.cli", "runtime", "deploy", str(AGENT), "--name", "strands"]
    deployed = subprocess.run(
        [*command, "--data-dir", str(root / "data")], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "deployed strands:1" in deployed.stdout
    (root / "switchboard.yaml").write_text(CONFIG)
    script: list[Step] = [ToolCall("calc___add", {"a": 1234, "b": 4321}), _answer_from_the_tool]
    with serve_model(script) as model:
        services = {"model": f"127.0.0.1:{model.port}@{MODEL_INSIDE}"}
        env = {"SWITCHBOARD_RUNTIME_SERVICES": json.dumps(services)}
        with serve(root / "data", root / "switchboard.yaml", env=env) as s:
            made = httpx2.post(
                f"{s.base}/admin/v1/gateways/default/keys", json={"subject": "ada"}, headers=s.admin_headers
            )
            assert made.status_code == 201, made.text
            yield s, made.json()["key"], model


async def test_a_strands_agent_calls_the_gateways_tool_and_answers_with_its_result(
    hosted: tuple[Served, str, ScriptedModel],
) -> None:
    s, key, model = hosted
    headers = {"Authorization": f"Bearer {key}", SESSION: "strands-" + "s" * 40}
    payload = {"prompt": "What is 1234 + 4321?", "gateway_key": key}
    async with httpx2.AsyncClient(timeout=300, base_url=s.base) as http:
        answered = await http.post("/runtimes/strands/invocations", json=payload, headers=headers)
        assert answered.status_code == 200, answered.text
        assert answered.json()["result"]["content"] == [{"text": "1234 + 4321 = 5555"}]

        # The model was offered the gateway's tool, and got its result back with the call's id.
        assert len(model.requests) == 2 and model.remaining == 0
        first, second = model.requests
        assert first["stream"] is True  # (Strands' OpenAI provider streams: the chunks were read)
        assert "calc___add" in [t["function"]["name"] for t in first["tools"]]
        asked = next(m for m in second["messages"] if m.get("tool_calls"))["tool_calls"][0]
        assert asked["function"]["name"] == "calc___add"
        assert json.loads(asked["function"]["arguments"]) == {"a": 1234, "b": 4321}
        [result] = tool_results(second)
        assert result["tool_call_id"] == asked["id"] and result["content"] == "5555"

        # The gateway saw the call: it came over MCP with the caller's key, and was audited.
        audit = await http.get(
            "/admin/v1/audit", params={"gateway": "default", "tool": "calc___add"}, headers=s.admin_headers
        )
        assert audit.status_code == 200, audit.text
        calls = audit.json()["records"]
        assert [(c["subject"], c["outcome"]) for c in calls] == [("ada", "ok")]
