"""The MCP tasks extension (2026-07-28, ``io.modelcontextprotocol/tasks``) through a real
`switchboard serve`, spoken as raw JSON-RPC: a task-capable tools/call answered with a task,
polled with tasks/get, answered with tasks/update, cancelled with tasks/cancel; the errors of
the extension; tasks bound to their caller; and 2025-era clients as before (ADR 0038)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson
import pytest

from tests.e2e.harness import ACCEPT, INIT, Served, serve, serve_config

pytestmark = pytest.mark.anyio

EXTENSION = "io.modelcontextprotocol/tasks"
TASKS: dict[str, Any] = {"extensions": {EXTENSION: {}}}
FIXTURE = "{name: fx, kind: plugin, provider: examples.conformance.fixture:ConformanceFixture}"
CONFIG = f"""
gateways:
  - name: default
    prefix_tools: false
    targets: [{FIXTURE}]
  - name: keyed
    prefix_tools: false
    auth: {{kind: api_key}}
    targets: [{FIXTURE}]
"""
_ids = itertools.count(1)
_UNSET: Any = object()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_config(tmp_path_factory.mktemp("tasks"), CONFIG) as s:
        yield s


def _messages(response: httpx2.Response) -> list[dict[str, Any]]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [orjson.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    return [response.json()]


class Wire:
    """A 2026-07-28 client speaking raw JSON-RPC, declaring ``caps`` on every request."""

    def __init__(self, http: httpx2.AsyncClient, url: str, caps: dict[str, Any]) -> None:
        self.http, self.url, self.caps = http, url, caps

    async def send(
        self, method: str, params: dict[str, Any], *, caps: Any = _UNSET, name: Any = _UNSET
    ) -> dict[str, Any]:
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "tasks-test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": self.caps if caps is _UNSET else caps,
        }
        rid = next(_ids)
        headers = {**ACCEPT, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
        routed = params.get("name", params.get("taskId")) if name is _UNSET else name
        if routed is not None:
            headers["Mcp-Name"] = routed
        body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": {**params, "_meta": meta}}
        response = await self.http.post(self.url, json=body, headers=headers)
        assert response.status_code < 500, response.text
        answer = [m for m in _messages(response) if m.get("id") == rid]
        assert len(answer) == 1, response.text
        return answer[0]

    async def result(self, method: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        answer = await self.send(method, params, **kw)
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def error(self, method: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        answer = await self.send(method, params, **kw)
        assert "error" in answer, answer
        error: dict[str, Any] = answer["error"]
        return error

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self.result("tasks/get", {"taskId": task_id})

    async def until(self, task_id: str, *statuses: str, seconds: float = 15) -> dict[str, Any]:
        """Poll tasks/get until the task is in one of ``statuses`` (a deadline, not a sleep)."""
        with anyio.fail_after(seconds):
            while True:
                task = await self.get(task_id)
                if task["status"] in statuses:
                    return task
                await anyio.sleep(0.05)

    async def create(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        created = await self.result("tools/call", {"name": tool, "arguments": arguments})
        assert created["resultType"] == "task", created
        return created


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30) as client:
        yield client


def ack(result: dict[str, Any]) -> bool:
    """An empty result: what tasks/update and tasks/cancel answer."""
    return result.get("resultType") == "complete" and set(result) <= {"resultType", "_meta"}


async def test_a_task_capable_call_answers_with_a_task_that_completes(
    served: Served, http: httpx2.AsyncClient
) -> None:
    wire = Wire(http, served.mcp, TASKS)
    created = await wire.create("slow_compute", {"seconds": 0.3, "label": "t1"})
    assert len(created["taskId"]) >= 32  # random, unguessable
    assert created["status"] == "working"
    assert created["ttlMs"] > 0 and created["pollIntervalMs"] > 0
    assert created["createdAt"].endswith("Z") and created["lastUpdatedAt"] >= created["createdAt"]
    assert not {"task", "ttl", "pollInterval", "result", "content", "requestState"} & set(created)
    seen = await wire.get(created["taskId"])  # resolves as soon as the handle is out
    assert seen["taskId"] == created["taskId"] and seen["resultType"] == "complete"
    done = await wire.until(created["taskId"], "completed", "failed", "cancelled")
    assert done["status"] == "completed"
    assert done["result"]["content"] == [{"type": "text", "text": "t1: done after 0.3 s"}]
    assert "inputRequests" not in done and "error" not in done
    # A tool that is never a task answers as always, also to a client with the extension.
    greeted = await wire.result("tools/call", {"name": "greet", "arguments": {"name": "Ada"}})
    assert greeted["content"][0]["text"] == "Hello, Ada!" and greeted["resultType"] == "complete"


async def test_a_tool_error_completes_and_a_protocol_error_fails(
    served: Served, http: httpx2.AsyncClient
) -> None:
    wire = Wire(http, served.mcp, TASKS)
    tool_error = await wire.create("failing_job", {})
    protocol_error = await wire.create("protocol_error_job", {})
    ended = await wire.until(tool_error["taskId"], "completed", "failed", "cancelled")
    assert ended["status"] == "completed" and ended["result"]["isError"] is True
    assert "on purpose" in ended["result"]["content"][0]["text"]
    failed = await wire.until(protocol_error["taskId"], "completed", "failed", "cancelled")
    assert failed["status"] == "failed" and "result" not in failed
    assert failed["error"]["code"] == -32602 and "protocol error" in failed["error"]["message"]
    # Arguments that do not fit the tool: an ordinary tool error at once, no task.
    bad = await wire.result("tools/call", {"name": "slow_compute", "arguments": {"seconds": "soon"}})
    assert bad["isError"] is True and "taskId" not in bad


async def test_cancel_ends_a_running_task_and_is_acknowledged_again_once_ended(
    served: Served, http: httpx2.AsyncClient
) -> None:
    wire = Wire(http, served.mcp, TASKS)
    created = await wire.create("slow_compute", {"seconds": 60})
    assert ack(await wire.result("tasks/cancel", {"taskId": created["taskId"]}))
    ended = await wire.until(created["taskId"], "completed", "failed", "cancelled", seconds=5)
    assert ended["status"] == "cancelled" and "result" not in ended
    assert ack(await wire.result("tasks/cancel", {"taskId": created["taskId"]}))
    assert (await wire.get(created["taskId"]))["status"] == "cancelled"


async def test_a_question_inside_a_task_waits_for_tasks_update(
    served: Served, http: httpx2.AsyncClient
) -> None:
    wire = Wire(http, served.mcp, {"elicitation": {}, **TASKS})
    created = await wire.create("confirm_delete", {"filename": "notes.txt"})
    waiting = await wire.until(created["taskId"], "input_required", "completed", "failed")
    assert waiting["status"] == "input_required"
    assert list(waiting["inputRequests"]) == ["confirm"]
    assert waiting["inputRequests"]["confirm"]["method"] == "elicitation/create"
    answer = {"confirm": {"action": "accept", "content": {"confirm": True}}, "unknown": {"ignored": True}}
    assert ack(await wire.result("tasks/update", {"taskId": created["taskId"], "inputResponses": answer}))
    done = await wire.until(created["taskId"], "completed", "failed", "cancelled")
    assert done["result"]["content"][0]["text"] == "Deleted notes.txt"
    # Answers to a task that has ended are ignored, not an error.
    assert ack(await wire.result("tasks/update", {"taskId": created["taskId"], "inputResponses": answer}))


async def test_partial_answers_keep_the_task_waiting_on_the_rest(
    served: Served, http: httpx2.AsyncClient
) -> None:
    wire = Wire(http, served.mcp, {"elicitation": {}, **TASKS})
    task_id = (await wire.create("multi_input", {}))["taskId"]
    waiting = await wire.until(task_id, "input_required", "completed", "failed")
    assert sorted(waiting["inputRequests"]) == ["first", "second"]
    first = {"first": {"action": "accept", "content": {"name": "Ada"}}}
    assert ack(await wire.result("tasks/update", {"taskId": task_id, "inputResponses": first}))
    still = await wire.get(task_id)
    assert still["status"] == "input_required" and list(still["inputRequests"]) == ["second"]
    # An answer that is not an answer to its question is refused, and the question stays open.
    wrong = await wire.error("tasks/update", {"taskId": task_id, "inputResponses": {"second": {"nope": 1}}})
    assert wrong["code"] == -32602 and "second" in wrong["message"]
    assert list((await wire.get(task_id))["inputRequests"]) == ["second"]
    second = {"second": {"action": "accept", "content": {"name": "Bo"}}, "first": {"action": "decline"}}
    assert ack(await wire.result("tasks/update", {"taskId": task_id, "inputResponses": second}))
    done = await wire.until(task_id, "completed", "failed", "cancelled")
    assert done["result"]["content"][0]["text"] == "answered: first=Ada, second=Bo"


async def test_a_tool_that_asks_first_becomes_a_task_once_answered(
    served: Served, http: httpx2.AsyncClient
) -> None:
    wire = Wire(http, served.mcp, {"elicitation": {}, **TASKS})
    first = await wire.result("tools/call", {"name": "test_tool_with_task", "arguments": {}})
    assert first["resultType"] == "input_required" and "taskId" not in first
    assert list(first["inputRequests"]) == ["user_name"]
    retry = {
        "name": "test_tool_with_task",
        "arguments": {},
        "inputResponses": {"user_name": {"action": "accept", "content": {"name": "Alice"}}},
        "requestState": first["requestState"],
    }
    created = await wire.result("tools/call", retry)
    assert created["resultType"] == "task" and not {"requestState", "inputRequests"} & set(created)
    done = await wire.until(created["taskId"], "completed", "failed", "cancelled")
    assert done["result"]["content"][0]["text"] == "Hello, Alice! (finished as a task)"


async def test_a_question_the_client_cannot_answer_fails_the_task(
    served: Served, http: httpx2.AsyncClient
) -> None:
    wire = Wire(http, served.mcp, TASKS)  # the extension, but no elicitation
    created = await wire.create("confirm_delete", {"filename": "x"})
    failed = await wire.until(created["taskId"], "completed", "failed", "cancelled")
    assert failed["status"] == "failed" and failed["error"]["code"] == -32021
    assert failed["error"]["data"] == {"requiredCapabilities": {"elicitation": {}}}


async def test_the_extensions_errors(served: Served, http: httpx2.AsyncClient) -> None:
    wire = Wire(http, served.mcp, TASKS)
    plain = Wire(http, served.mcp, {})
    missing = {"requiredCapabilities": {"extensions": {EXTENSION: {}}}}
    created = await wire.create("slow_compute", {"seconds": 60})
    task_id = created["taskId"]
    # Without the extension: -32021 first, even for a task that exists.
    for method, params in (
        ("tasks/get", {"taskId": task_id}),
        ("tasks/update", {"taskId": task_id, "inputResponses": {}}),
        ("tasks/cancel", {"taskId": task_id}),
        ("tasks/get", {"taskId": "gate-test"}),
    ):
        refused = await plain.error(method, params)
        assert (refused["code"], refused["data"]) == (-32021, missing), (method, refused)
    required = await plain.error("tools/call", {"name": "failing_job", "arguments": {}})
    assert (required["code"], required["data"]) == (-32021, missing)
    assert "failing_job" in required["message"]
    # A tool that may be a task runs as an ordinary call for a client without the extension.
    sync = await plain.result("tools/call", {"name": "slow_compute", "arguments": {"seconds": 0}})
    assert sync["resultType"] == "complete" and sync["content"] and "taskId" not in sync
    # ... and is a task when one request declares the extension in its own _meta.
    opted = await plain.result(
        "tools/call", {"name": "slow_compute", "arguments": {"seconds": 60}}, caps=TASKS
    )
    assert opted["resultType"] == "task"
    # Mcp-Name must name the task.
    mismatched = await wire.error("tasks/get", {"taskId": task_id}, name="another")
    assert mismatched["code"] == -32020
    unnamed = await wire.error("tasks/get", {"taskId": task_id}, name=None)
    assert unnamed["code"] == -32020
    # Unknown ids; and the methods the extension removed.
    unknown = await wire.error("tasks/get", {"taskId": "tasks-nonexistent-12345"})
    assert unknown["code"] == -32602 and "Unknown task" in unknown["message"]
    assert (await wire.error("tasks/cancel", {"taskId": "nope"}))["code"] == -32602
    assert (await wire.error("tasks/get", {}, name=None))["code"] == -32602
    assert (await wire.error("tasks/result", {"taskId": task_id}))["code"] == -32601
    assert (await wire.error("tasks/list", {}, name=None))["code"] == -32601
    # A legacy `task` param asks for nothing.
    legacy = {"name": "greet", "arguments": {"name": "x"}, "task": {"ttl": 60000}}
    assert "taskId" not in await wire.result("tools/call", legacy)
    for stop in (task_id, opted["taskId"]):
        assert ack(await wire.result("tasks/cancel", {"taskId": stop}))


async def test_another_callers_task_does_not_exist_for_them(served: Served, http: httpx2.AsyncClient) -> None:
    url = served.gateway("keyed")
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        keys = [
            (await admin.post("/admin/v1/gateways/keyed/keys", json={"subject": who})).json()["key"]
            for who in ("alice", "bob")
        ]
    async with (
        httpx2.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {keys[0]}"}) as as_alice,
        httpx2.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {keys[1]}"}) as as_bob,
    ):
        alice, bob = Wire(as_alice, url, TASKS), Wire(as_bob, url, TASKS)
        task_id = (await alice.create("slow_compute", {"seconds": 60}))["taskId"]
        never = await bob.error("tasks/get", {"taskId": "never-issued"})
        for method, params in (
            ("tasks/get", {"taskId": task_id}),
            ("tasks/update", {"taskId": task_id, "inputResponses": {}}),
            ("tasks/cancel", {"taskId": task_id}),
        ):
            refused = await bob.error(method, params)
            assert refused["code"] == -32602 == never["code"]
            assert refused["message"] == never["message"].replace("never-issued", task_id)
        assert (await alice.get(task_id))["status"] == "working"  # bob's cancel did nothing
        # The same task id on another gateway is not found either.
        other = await Wire(http, served.mcp, TASKS).error("tasks/get", {"taskId": task_id})
        assert other["code"] == -32602
        assert ack(await alice.result("tasks/cancel", {"taskId": task_id}))
        assert (await alice.until(task_id, "cancelled", "completed", "failed"))["status"] == "cancelled"


async def test_2025_clients_see_what_they_saw_before(served: Served, http: httpx2.AsyncClient) -> None:
    opened = await http.post(served.mcp, json=INIT, headers=ACCEPT)
    capabilities = _messages(opened)[0]["result"]["capabilities"]
    assert "tasks" not in capabilities and EXTENSION not in (capabilities.get("extensions") or {})
    session = {
        **ACCEPT,
        "Mcp-Session-Id": opened.headers["mcp-session-id"],
        "MCP-Protocol-Version": "2025-11-25",
    }
    await http.post(
        served.mcp, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
    )

    async def call(rid: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        answered = await http.post(
            served.mcp,
            json={"jsonrpc": "2.0", "id": rid, "method": method, "params": params},
            headers=session,
        )
        return next(m for m in _messages(answered) if m.get("id") == rid)

    tools = {t["name"]: t for t in (await call(2, "tools/list", {}))["result"]["tools"]}
    assert tools["slow_compute"]["execution"] == {"taskSupport": "optional"}
    assert tools["failing_job"]["execution"] == {"taskSupport": "required"}
    assert "execution" not in tools["greet"]
    # Calls run as they always did: to the end, in the request (the 2025 core tasks are not served).
    ran = (await call(3, "tools/call", {"name": "failing_job", "arguments": {}}))["result"]
    assert ran["isError"] is True and "taskId" not in ran and "task" not in ran
    assert (await call(4, "tasks/get", {"taskId": "x"}))["error"]["code"] == -32601


async def test_a_task_of_another_worker_is_not_found_there(tmp_path: Path) -> None:
    """Tasks live in the memory of the worker that runs them (ADR 0038): asked of another
    worker, a task is unknown (-32602), never a server error."""
    (tmp_path / "switchboard.yaml").write_text(CONFIG)
    with serve(tmp_path / "data", tmp_path / "switchboard.yaml", args=["--workers", "2"]) as s:
        with anyio.fail_after(30):
            while True:
                sockets = sorted((tmp_path / "data" / "run").glob("w*.sock"))
                if len(sockets) == 2:
                    break
                await anyio.sleep(0.1)
        url = f"http://127.0.0.1:{s.base.rsplit(':', 1)[1]}/mcp"
        # The private sockets trust this header for the client's address (see test_workers).
        # A worker's socket is bound before it imports the app, so its first answer waits for
        # the worker's start-up: on a loaded 2-core runner that took longer than httpx's 5 s.
        forwarded = {"x-switchboard-forwarded-client": "127.0.0.1:40000"}
        async with (
            httpx2.AsyncClient(
                transport=httpx2.AsyncHTTPTransport(uds=str(sockets[0])), headers=forwarded, timeout=30
            ) as one,
            httpx2.AsyncClient(
                transport=httpx2.AsyncHTTPTransport(uds=str(sockets[1])), headers=forwarded, timeout=30
            ) as two,
        ):
            here, there = Wire(one, url, TASKS), Wire(two, url, TASKS)
            task_id = (await here.create("slow_compute", {"seconds": 60}))["taskId"]
            assert (await here.get(task_id))["status"] == "working"
            elsewhere = await there.error("tasks/get", {"taskId": task_id})
            assert elsewhere["code"] == -32602 and "another server process" in elsewhere["message"]
            assert ack(await here.result("tasks/cancel", {"taskId": task_id}))
