"""AgentCore Memory through a real ``switchboard serve``, driven by the bedrock-agentcore SDK
unchanged: ``MemoryClient`` (a memory with all four built-in strategies, conversation events,
records retrieved once extracted), ``MemorySessionManager``, and a Strands agent with the SDK's
session manager that remembers across two sessions. The model behind extraction (and behind the
agent) is a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest

from tests.e2e.harness import Served, serve
from tests.support.memory_model import MemoryModel
from tests.support.model_server import ScriptedModel, Text, serve_model

pytestmark = pytest.mark.anyio

REGION = "us-west-2"
STRANDS = ("strands-agents[openai]==1.62.0", "bedrock-agentcore==1.25.0")


def _chat(body: dict[str, Any]) -> Text:
    """The agent's model: it answers from what memory put in front of it, or says it does not know."""
    said = json.dumps(body.get("messages", []))
    if "drinks green tea" in said:
        return Text("You like green tea.")
    return Text("Noted.")


BRAIN = MemoryModel(
    facts={
        "Lisbon": ["The user lives in Lisbon."],
        "green tea": ["The user drinks green tea every morning."],
    },
    preferences={"aisle": ["The user prefers aisle seats."]},
    episodes={
        "rebook": [{"situation": "A cancelled flight", "outcome": "Rebooked on the 9:40", "succeeded": True}]
    },
    chat=_chat,
)


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with serve_model(BRAIN.script()) as scripted:
        yield scripted


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, model: ScriptedModel) -> Iterator[Served]:
    env = {
        "SWITCHBOARD_MEMORY_MODEL": "openai:scripted",
        "SWITCHBOARD_MEMORY_MODEL_URL": model.url + "/v1",
        "SWITCHBOARD_MEMORY_BATCH_SECONDS": "0.2",
    }
    with serve(tmp_path_factory.mktemp("memory") / "data", env=env) as served:
        yield served


@pytest.fixture(scope="module")
def aws_env(live: Served) -> dict[str, str]:
    made = httpx2.post(f"{live.base}/admin/v1/aws-keys", json={"subject": "ci"}, headers=live.admin_headers)
    assert made.status_code == 201, made.text
    body = made.json()
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": body["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": body["secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": f"{live.base}/aws/agentcore",
        "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL": f"{live.base}/aws/agentcore-control",
    }


def _run(python: str, script: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    ran = subprocess.run(
        [python, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert ran.returncode == 0, ran.stderr[-4000:]
    line = next(line for line in ran.stdout.splitlines() if line.startswith("SEEN="))
    found: dict[str, Any] = json.loads(line[len("SEEN=") :])
    return found


CLIENT_SCRIPT = textwrap.dedent(
    r"""
    import json, time
    from bedrock_agentcore.memory import MemoryClient
    from bedrock_agentcore.memory.session import MemorySessionManager
    from bedrock_agentcore.memory.constants import ConversationalMessage, MessageRole

    client = MemoryClient(region_name="us-west-2")
    memory = client.create_memory_and_wait(
        name="TravelMemory",
        strategies=[
            {"semanticMemoryStrategy": {"name": "Facts", "namespaces": ["/facts/{actorId}/"]}},
            {"summaryMemoryStrategy": {
                "name": "Summaries", "namespaces": ["/summaries/{actorId}/{sessionId}/"]}},
            {"userPreferenceMemoryStrategy": {
                "name": "Preferences", "namespaces": ["/preferences/{actorId}/"]}},
            {"episodicMemoryStrategy": {
                "name": "Episodes", "namespaces": ["/episodes/{actorId}/{sessionId}/"],
                "reflectionConfiguration": {"namespaces": ["/episodes/{actorId}/"]}}},
        ],
        event_expiry_days=30, max_wait=60, poll_interval=1,
    )
    seen = {"status": memory["status"], "strategies": sorted(s["type"] for s in memory["strategies"])}
    mid = memory["id"]
    started = time.monotonic()
    client.create_event(
        memory_id=mid, actor_id="traveller-1", session_id="trip-1",
        messages=[
            ("I live in Lisbon and always book an aisle seat.", "USER"), ("Noted.", "ASSISTANT"),
            ("My flight was cancelled, please rebook me.", "USER"), ("Rebooked on the 9:40.", "ASSISTANT"),
        ],
    )
    seen["waited"] = client.wait_for_memories(
        mid, "/facts/traveller-1/", test_query="home city", max_wait=30, poll_interval=1)
    seen["seconds"] = time.monotonic() - started

    def texts(namespace, query, **more):
        return [m["content"]["text"] for m in client.retrieve_memories(mid, namespace, query, **more)]

    seen["facts"] = texts("/facts/traveller-1/", "Where does the traveller live?")
    seen["preferences"] = texts("/preferences/traveller-1/", "seat choice")
    seen["summaries"] = texts("/summaries/traveller-1/trip-1/", "the trip")
    seen["episodes"] = texts("/episodes/traveller-1/", "flight problems", top_k=10)
    turns = client.get_last_k_turns(mid, "traveller-1", "trip-1", k=2)
    seen["turns"] = [[m["content"]["text"] for m in turn] for turn in turns]

    manager = MemorySessionManager(memory_id=mid, region_name="us-west-2")
    session = manager.create_memory_session(actor_id="traveller-2", session_id="s-1")
    session.add_turns(messages=[ConversationalMessage("I drink green tea every morning.", MessageRole.USER)])
    for _ in range(60):
        found = session.search_long_term_memories(
            query="morning drink", namespace_prefix="/facts/traveller-2/", top_k=3)
        if found:
            break
        time.sleep(0.5)
    seen["session_search"] = [r["content"]["text"] for r in found]
    listed = session.list_long_term_memory_records(namespace_prefix="/facts/traveller-2/")
    seen["session_records"] = len(listed)
    seen["memory_id"] = mid
    print("SEEN=" + json.dumps(seen))
    """
)


async def test_the_sdk_memory_client_flows_run_unchanged(live: Served, aws_env: dict[str, str]) -> None:
    seen = await anyio.to_thread.run_sync(lambda: _run(sys.executable, CLIENT_SCRIPT, aws_env))
    assert seen["status"] == "ACTIVE"
    assert seen["strategies"] == ["EPISODIC", "SEMANTIC", "SUMMARIZATION", "USER_PREFERENCE"]
    assert seen["waited"] is True
    assert seen["facts"] == ["The user lives in Lisbon."]
    assert seen["preferences"] == ["The user prefers aisle seats."]
    assert "cancelled" in seen["summaries"][0]
    assert any(t.startswith("Situation: A cancelled flight.") for t in seen["episodes"])
    assert seen["turns"][0][0] == "I live in Lisbon and always book an aisle seat."
    assert seen["session_search"] == ["The user drinks green tea every morning."]
    assert seen["session_records"] == 1
    # What the inspection view shows: the record with the events it came from.
    records = httpx2.get(
        f"{live.base}/admin/v1/memories/{seen['memory_id']}/records", headers=live.admin_headers
    )
    assert records.status_code == 200, records.text


STRANDS_SCRIPT = textwrap.dedent(
    r"""
    import json, sys
    from strands import Agent
    from strands.models.openai import OpenAIModel
    from bedrock_agentcore.memory.integrations.strands.config import AgentCoreMemoryConfig, RetrievalConfig
    from bedrock_agentcore.memory.integrations.strands.session_manager import AgentCoreMemorySessionManager

    memory_id, session_id, prompt, model_url = sys.argv[1:5]
    config = AgentCoreMemoryConfig(
        memory_id=memory_id, session_id=session_id, actor_id="ada",
        retrieval_config={"/facts/{actorId}/": RetrievalConfig(top_k=3, relevance_score=0.1)},
    )
    with AgentCoreMemorySessionManager(config, region_name="us-west-2") as manager:
        model = OpenAIModel(client_args={"base_url": model_url, "api_key": "scripted"}, model_id="scripted")
        agent = Agent(model=model, session_manager=manager, callback_handler=None)
        answer = str(agent(prompt)).strip()
    print("SEEN=" + json.dumps({"answer": answer}))
    """
)


ADA_SCRIPT = textwrap.dedent(
    """
    import json
    from bedrock_agentcore.memory import MemoryClient
    facts = {"semanticMemoryStrategy": {"name": "Facts", "namespaces": ["/facts/{actorId}/"]}}
    m = MemoryClient(region_name="us-west-2").create_memory_and_wait(
        name="AdaMemory", strategies=[facts], max_wait=30, poll_interval=1)
    print("SEEN=" + json.dumps({"id": m["id"]}))
    """
)


@pytest.fixture(scope="module")
def strands_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A virtual environment of its own for Strands (it brings its own mcp, before 2.0)."""
    root = tmp_path_factory.mktemp("strands-venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    python = str(root / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *STRANDS],
        check=True,
        timeout=600,
        capture_output=True,
    )
    return python


async def test_a_strands_agent_remembers_across_two_sessions(
    live: Served, aws_env: dict[str, str], model: ScriptedModel, strands_python: str
) -> None:
    made = await anyio.to_thread.run_sync(lambda: _run(sys.executable, ADA_SCRIPT, aws_env))
    memory_id = made["id"]
    first = await anyio.to_thread.run_sync(
        lambda: _run(
            strands_python,
            STRANDS_SCRIPT,
            aws_env,
            memory_id,
            "first",
            "I drink green tea, every day.",
            model.url + "/v1",
        )
    )
    assert first["answer"] == "Noted."
    # Extraction runs in the background: wait until the fact is retrievable, as a new session would.
    with anyio.fail_after(30):
        while True:
            found = httpx2.get(
                f"{live.base}/admin/v1/memories/{memory_id}/records", headers=live.admin_headers
            )
            if found.status_code == 200 and "green tea" in found.text:
                break
            await anyio.sleep(0.2)
    second = await anyio.to_thread.run_sync(
        lambda: _run(
            strands_python,
            STRANDS_SCRIPT,
            aws_env,
            memory_id,
            "second",
            "What do I like to drink?",
            model.url + "/v1",
        )
    )
    assert (
        second["answer"] == "You like green tea."
    )  # only said when memory put the fact in front of the model
