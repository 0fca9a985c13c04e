"""A2A servers hosted by the runtime (ADR 0041): an agent written with bedrock-agentcore's
serve_a2a (a2a-sdk 1.x, port 9000) deployed with `switchboard runtime deploy --protocol A2A`;
an a2a-sdk client finds its card at the runtime's invocation URL and sends it messages through
the gateway (JSON-RPC relayed to the app's `POST /`), and boto3's GetAgentCard and
InvokeAgentRuntime reach it too."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import new_text_message
from a2a.types import Role, SendMessageRequest
from a2a.utils import TransportProtocol

from sandbox import available
from tests.e2e.harness import ROOT, Served, serve
from tests.e2e.test_runtime import _data_client
from tests.support.tools import need

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]

AGENT = ROOT / "tests" / "fixtures" / "runtime_a2a"
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    need(available() is None, f"bubblewrap sandboxes: {available()}")
    root = tmp_path_factory.mktemp("runtime-a2a")
    command = [sys.executable, "-m", "gateway.cli", "runtime", "deploy", str(AGENT), "--name", "helper"]
    command += ["--protocol", "A2A", "--data-dir", str(root / "data")]
    deployed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert deployed.returncode == 0 and "helper:1 (A2A" in deployed.stdout, deployed.stderr
    (root / "switchboard.yaml").write_text("gateways:\n  - name: default\n    auth: {kind: api_key}\n")
    with serve(root / "data", root / "switchboard.yaml") as s:
        key = httpx2.post(
            f"{s.base}/admin/v1/gateways/default/keys", json={"subject": "ada"}, headers=s.admin_headers
        )
        yield s, key.json()["key"]


async def test_an_a2a_client_reaches_the_hosted_agent_through_the_gateway(served: tuple[Served, str]) -> None:
    s, key = served
    url = f"{s.base}/runtimes/helper/invocations/"
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=120, headers={**auth, SESSION: "a2a-" + "x" * 36}) as http:
        card = await A2ACardResolver(http, url).get_agent_card()
        assert card.supported_interfaces[0].url == url  # (the runtime told the app where it is reached)
        config = ClientConfig(httpx_client=http, supported_protocol_bindings=[TransportProtocol.JSONRPC])
        client = ClientFactory(config).create(card)
        message = new_text_message("echo hello there", role=Role.ROLE_USER)
        events = [e async for e in client.send_message(SendMessageRequest(message=message))]
    texts = [
        part.text
        for event in events
        for artifact in (event.task.artifacts if event.HasField("task") else [])
        for part in artifact.parts
    ]
    texts += [
        part.text
        for e in events
        if e.HasField("artifact_update")
        for part in e.artifact_update.artifact.parts
    ]
    assert any(t == f"echo: hello there (session a2a-{'x' * 36})" for t in texts), events
    async with httpx.AsyncClient(timeout=60) as http:
        refused = await http.get(f"{url}.well-known/agent-card.json")
        assert refused.status_code == 401


async def test_boto3_gets_the_card_and_invokes_over_a2a(served: tuple[Served, str]) -> None:
    s, _ = served
    data = _data_client(s)
    arn = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/helper"
    card = await anyio.to_thread.run_sync(lambda: data.get_agent_card(agentRuntimeArn=arn))
    assert card["agentCard"]["name"] and card["agentCard"]["supportedInterfaces"][0]["url"].endswith(
        "/runtimes/helper/invocations/"
    )
    # As AgentCore's own examples send it: boto3 sends no A2A-Version header, so 0.3's JSON-RPC.
    message = {"role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "echo via boto3"}]}
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": message}}

    def invoke() -> Any:
        answer = data.invoke_agent_runtime(
            agentRuntimeArn=arn, runtimeSessionId="boto-" + "y" * 35, payload=json.dumps(rpc)
        )
        return json.loads(answer["response"].read())

    found = await anyio.to_thread.run_sync(invoke)
    assert f"echo: via boto3 (session boto-{'y' * 35})" in json.dumps(found), found
