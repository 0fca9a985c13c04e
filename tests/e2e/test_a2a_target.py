"""A remote A2A agent as a gateway target (``kind: a2a``), through a real ``switchboard serve``
and a real ``a2a-sdk`` agent on loopback: an MCP client (both protocol eras) calls its skills,
sees its updates as progress, answers its question by elicitation, cancels its task, and gets
clear errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext

from tests.e2e.harness import Served, serve_config
from tests.fixtures.a2a_agent import Seen

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, agent: tuple[str, Seen]) -> Iterator[Served]:
    base, _ = agent
    config = f"""
gateways:
  - name: default
    targets:
      - name: helper
        kind: a2a
        url: {base}/agent
        headers: {{Authorization: Bearer agent-key}}
      - name: whole
        kind: a2a
        url: {base}/agent/.well-known/agent-card.json
        tools: send_message
        binding: http_json
      - name: quiet
        kind: a2a
        url: {base}/agent
        streaming: false
        max_result_bytes: 1024
      - name: gone
        kind: a2a
        url: http://127.0.0.1:9/agent
      - name: keyed
        kind: a2a
        url: {base}/agent
        tools: send_message
        credential: {{provider: agent-key}}
    credential_providers:
      - name: agent-key
        kind: api_key
        secret: {{env: A2A_AGENT_KEY}}
"""
    env = {"A2A_AGENT_KEY": "s3cret-agent-key"}
    with serve_config(tmp_path_factory.mktemp("a2a-target"), config, env=env) as s:
        yield s


def _text(result: types.CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, types.TextContent))


@pytest.mark.parametrize("mode", ERAS)
async def test_skills_are_tools_and_updates_are_progress(
    served: Served, agent: tuple[str, Seen], mode: str
) -> None:
    _, seen = agent
    notes: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append((progress, message))

    async with Client(served.mcp, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"helper___echo", "helper___greet", "whole___send_message"} <= set(tools)
        assert "Repeats what it is told" in (tools["helper___echo"].description or "")
        assert tools["helper___echo"].input_schema["required"] == ["message"]
        echoed = await client.call_tool("helper___echo", {"message": "echo hello there", "data": {"n": 2}})
        assert not echoed.is_error
        assert _text(echoed).startswith("echo: hello there")
        structured = echoed.structured_content or {}
        assert structured["state"] == "completed" and structured["taskId"] and structured["contextId"]
        assert json.loads(echoed.content[1].text) == {"n": 2}  # type: ignore[union-attr]
        steps = await client.call_tool("helper___echo", {"message": "steps 3"}, progress_callback=on_progress)
        assert _text(steps) == "part 1;part 2;part 3;"
    said = [m for _, m in notes if m]
    assert "working: step 1 of 3" in said and "working: step 3 of 3" in said
    assert [p for p, _ in notes] == sorted(p for p, _ in notes)  # progress only grows
    assert any(r["authorization"] == "Bearer agent-key" for r in seen.requests)
    assert "1.0" in {r["a2a-version"] for r in seen.requests if r["authorization"]}


@pytest.mark.parametrize("tool", ["whole___send_message", "quiet___echo"])
async def test_one_tool_per_agent_the_rest_binding_and_no_streaming(served: Served, tool: str) -> None:
    async with Client(served.mcp, mode="legacy") as client:
        result = await client.call_tool(tool, {"message": "echo plain"})
        assert _text(result) == "echo: plain" and not result.is_error
        greeting = await client.call_tool(tool, {"message": "hi"})
        assert _text(greeting) == "hi there"
        assert "message" in (greeting.structured_content or {})


@pytest.mark.parametrize("mode", ERAS)
async def test_a_question_goes_to_the_user_and_the_answer_continues_the_task(
    served: Served, agent: tuple[str, Seen], mode: str
) -> None:
    asked: list[str] = []

    async def answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams)
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": "Ada"})

    async with Client(served.mcp, mode=mode, elicitation_callback=answer) as client:
        result = await client.call_tool("helper___greet", {"message": "ask"})
    assert asked[-1] == "What is your name?"
    assert _text(result) == "hello Ada" and not result.is_error


async def test_without_elicitation_the_question_is_the_result_and_a_call_answers_it(served: Served) -> None:
    async with Client(served.mcp, mode="legacy") as client:
        first = await client.call_tool("helper___greet", {"message": "ask"})
        structured = first.structured_content or {}
        assert not first.is_error and structured["state"] == "input-required"
        assert structured["question"] == "What is your name?" and structured["taskId"] in _text(first)
        second = await client.call_tool(
            "helper___greet", {"message": "Grace", "taskId": structured["taskId"]}
        )
        assert _text(second) == "hello Grace"
        assert (second.structured_content or {})["contextId"] == structured["contextId"]


async def test_failures_and_rejections_are_tool_errors(served: Served) -> None:
    async with Client(served.mcp, mode="legacy") as client:
        failed = await client.call_tool("helper___echo", {"message": "fail"})
        assert failed.is_error and "ended failed: the agent could not do that" in _text(failed)
        rejected = await client.call_tool("helper___echo", {"message": "what"})
        assert rejected.is_error and "ended rejected: unknown request 'what'" in _text(rejected)
        unknown = await client.call_tool("helper___echo", {"message": "x", "taskId": "no-such-task"})
        assert unknown.is_error and "refused" in _text(unknown)
        names = {t.name for t in (await client.list_tools()).tools}
    assert not any(
        n.startswith("gone___") for n in names
    )  # an agent not reachable is skipped, said in the log
    assert any("agent card of target 'gone' could not be read" in line for line in served.output)


async def test_a_cancelled_call_cancels_the_agents_task(served: Served, agent: tuple[str, Seen]) -> None:
    _, seen = agent
    before = len(seen.cancelled)
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with Client(served.mcp, mode="legacy") as client, anyio.create_task_group() as tg:

        async def slow() -> None:
            await client.call_tool("helper___echo", {"message": "slow"}, progress_callback=on_progress)

        tg.start_soon(slow)
        with anyio.fail_after(30):
            await started.wait()
        tg.cancel_scope.cancel()  # the client cancels its request (notifications/cancelled)
    with anyio.fail_after(30):
        while len(seen.cancelled) == before:  # noqa: ASYNC110 - the agent runs on another thread
            await anyio.sleep(0.05)


async def test_the_call_carries_the_gateways_trace_context(served: Served, agent: tuple[str, Seen]) -> None:
    _, seen = agent
    async with Client(served.mcp, mode="legacy") as client:
        await client.call_tool("helper___echo", {"message": "echo traced"})
    assert any(r["traceparent"] for r in seen.requests)


async def test_a_credential_providers_secret_goes_to_the_agent(
    served: Served, agent: tuple[str, Seen]
) -> None:
    _, seen = agent
    async with Client(served.mcp, mode="legacy") as client:
        result = await client.call_tool("keyed___send_message", {"message": "echo with a key"})
    assert _text(result) == "echo: with a key"
    assert any(r["authorization"] == "Bearer s3cret-agent-key" for r in seen.requests)


async def test_a_tasks_client_gets_an_mcp_task_whose_question_and_cancel_reach_the_agent(
    served: Served, agent: tuple[str, Seen]
) -> None:
    import httpx2

    from tests.e2e.test_mcp_tasks import TASKS, Wire

    _, seen = agent
    async with httpx2.AsyncClient(timeout=30) as http:
        wire = Wire(http, served.mcp, {**TASKS, "elicitation": {}})
        done = await wire.create("helper___echo", {"message": "steps 2"})
        finished = await wire.until(done["taskId"], "completed", "failed", "cancelled")
        assert finished["status"] == "completed"
        assert "".join(b["text"] for b in finished["result"]["content"]) == "part 1;part 2;"
        start = len(seen.texts)
        asked = await wire.create("helper___greet", {"message": "ask"})
        waiting = await wire.until(asked["taskId"], "input_required")
        (key, question), *_ = waiting["inputRequests"].items()
        assert question["method"] == "elicitation/create"
        assert question["params"]["message"] == "What is your name?"
        answer = {key: {"action": "accept", "content": {"answer": "Ada"}}}
        await wire.result("tasks/update", {"taskId": asked["taskId"], "inputResponses": answer})
        greeted = await wire.until(asked["taskId"], "completed", "failed", "cancelled")
        assert greeted["result"]["content"][0]["text"] == "hello Ada"
        assert seen.texts[start:] == ["ask", "Ada"]  # the agent's task went on: not started again
        before = len(seen.cancelled)
        slow = await wire.create("helper___echo", {"message": "slow"})
        await anyio.sleep(0.5)
        await wire.result("tasks/cancel", {"taskId": slow["taskId"]})
        assert (await wire.until(slow["taskId"], "cancelled", "completed", "failed"))["status"] == "cancelled"
    with anyio.fail_after(30):
        while len(seen.cancelled) == before:  # noqa: ASYNC110 - the agent runs on another thread
            await anyio.sleep(0.05)


async def test_an_oversized_answer_is_cut_and_an_overflowing_one_refused(served: Served) -> None:
    async with Client(served.mcp, mode="legacy") as client:
        cut = await client.call_tool("quiet___echo", {"message": "big 2000"})
        assert "[the agent's answer was" in _text(cut) and len(_text(cut)) < 1100
        flooded = await client.call_tool("quiet___echo", {"message": "big 9000"})
    assert flooded.is_error and "sent more than 4096 bytes of artifacts" in _text(flooded)
