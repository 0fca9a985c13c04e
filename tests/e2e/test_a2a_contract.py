"""The A2A front against the A2A 1.0 specification's MUST requirements, one test each, named by
its section; on the wire (raw JSON-RPC and HTTP+JSON), through a real ``switchboard serve``
fronting a real ``a2a-sdk`` agent. What each requirement says is in REQUIREMENTS below.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Served, serve
from tests.fixtures.a2a_agent import Seen

pytestmark = pytest.mark.anyio

REQUIREMENTS = {
    "8.1/14.3": "the Agent Card is served at the well-known path, with every REQUIRED field",
    "8.3.1/5.2": "each interface declares its binding and URL; every binding offered works there",
    "5.1": "both bindings give the same operations the same results and errors",
    "3.6.2": "an unsupported A2A-Version is VersionNotSupportedError; none means 0.3",
    "3.6.1/3.6": "the version may come as a query parameter; the patch version is not considered",
    "3.1.1": "SendMessage answers a Task or a Message; a message to an ended task is unsupported",
    "3.2.2": "blocking waits for an end or interruption; returnImmediately returns at once",
    "3.1.2": "a task stream starts with the Task and ends at its end; a message stream is one Message",
    "3.1.3/3.1.4": "ListTasks: the caller's, newest first, by cursor, nextPageToken always present",
    "3.2.4": "historyLength 0 gives no history, n at most n messages; includeArtifacts false none",
    "3.1.5": "CancelTask answers the canceled task; an ended one is not cancelable; unknown not found",
    "3.1.6": "SubscribeToTask starts with the Task; an ended task cannot be subscribed to",
    "3.1.7-3.1.10": "push configs are kept, listed, got (missing: an error) and deleted idempotently",
    "3.1.11/13.3": "GetExtendedAgentCard needs authentication",
    "3.4": "a contextId is made and returned; a taskId must exist; the task's context is inferred",
    "3.3.2/11.6": "errors carry code, message and details with @type; REST ErrorInfo has reason and domain",
    "5.5/5.6.1": "JSON in camelCase, enums by name, timestamps in UTC with Z",
    "7.4/13.1": "every request is authenticated; another caller's task is not found, not forbidden",
}
V1 = {"A2A-Version": "1.0"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, agent: tuple[str, Seen]) -> Iterator[Served]:
    root: Path = tmp_path_factory.mktemp("a2a-contract")
    (root / "switchboard.yaml").write_text(
        f"""
gateways:
  - name: default
    targets:
      - {{name: helper, kind: a2a, url: {agent[0]}/agent}}
  - name: keyed
    auth: {{kind: api_key}}
    a2a_agent: {{}}
    targets:
      - {{name: py, kind: function, functions: [tests.fixtures.functions:add]}}
"""
    )
    with serve(
        root / "data", root / "switchboard.yaml", env={"SWITCHBOARD_EGRESS_ALLOW": '["127.0.0.1/32"]'}
    ) as s:
        yield s


class Wire:
    """Raw requests to one agent in one binding."""

    def __init__(
        self, http: httpx.AsyncClient, url: str, binding: str, headers: dict[str, str] | None = None
    ) -> None:
        self.http, self.url, self.binding = http, url, binding
        self.headers = {**V1, **(headers or {})}

    async def call(
        self, method: str, params: dict[str, Any], **headers: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(result, error) of one operation."""
        sent = {**self.headers, **headers}
        if self.binding == "jsonrpc":
            body = {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params}
            answer = (await self.http.post(self.url, json=body, headers=sent)).json()
            return answer.get("result"), answer.get("error")
        verb, path, query, payload = _rest(method, params)
        response = await self.http.request(verb, self.url + path, params=query, json=payload, headers=sent)
        data = response.json() if response.content else {}
        return (
            (data, None) if response.status_code < 400 else (None, {"status": response.status_code, **data})
        )

    async def stream(self, method: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.binding == "jsonrpc":
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            request = self.http.stream("POST", self.url, json=body, headers=self.headers)
        else:
            verb, path, _, payload = _rest(method, params)
            request = self.http.stream(verb, self.url + path, json=payload, headers=self.headers)
        events = []
        async with request as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data = json.loads(line[5:])
                    events.append(data.get("result", data) if self.binding == "jsonrpc" else data)
        return events


def _rest(method: str, p: dict[str, Any]) -> tuple[str, str, dict[str, Any], dict[str, Any] | None]:
    if method == "SendMessage":
        return "POST", "/message:send", {}, p
    if method == "SendStreamingMessage":
        return "POST", "/message:stream", {}, p
    if method == "GetTask":
        return "GET", f"/tasks/{p['id']}", {k: v for k, v in p.items() if k != "id"}, None
    if method == "ListTasks":
        return "GET", "/tasks", p, None
    if method == "CancelTask":
        return "POST", f"/tasks/{p['id']}:cancel", {}, {}
    if method == "SubscribeToTask":
        return "POST", f"/tasks/{p['id']}:subscribe", {}, {}
    if method == "CreateTaskPushNotificationConfig":
        return "POST", f"/tasks/{p['taskId']}/pushNotificationConfigs", {}, p
    if method == "GetTaskPushNotificationConfig":
        return "GET", f"/tasks/{p['taskId']}/pushNotificationConfigs/{p['id']}", {}, None
    if method == "ListTaskPushNotificationConfigs":
        return "GET", f"/tasks/{p['taskId']}/pushNotificationConfigs", {}, None
    if method == "DeleteTaskPushNotificationConfig":
        return "DELETE", f"/tasks/{p['taskId']}/pushNotificationConfigs/{p['id']}", {}, None
    if method == "GetExtendedAgentCard":
        return "GET", "/extendedAgentCard", {}, None
    raise AssertionError(method)


def _message(text: str, **fields: Any) -> dict[str, Any]:
    return {
        "message": {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}], **fields}
    }


def _code(error: dict[str, Any] | None) -> str:
    """The error's name: a JSON-RPC code's, or a REST ErrorInfo reason."""
    assert error is not None, "no error"
    if "code" in error and isinstance(error["code"], int):
        return str(error["code"])
    details = error.get("error", {}).get("details", [])
    return str(next((d.get("reason") for d in details if d.get("reason")), error.get("status")))


NOT_FOUND = ("-32001", "TASK_NOT_FOUND")
NOT_CANCELABLE = ("-32002", "TASK_NOT_CANCELABLE")
UNSUPPORTED = ("-32004", "UNSUPPORTED_OPERATION")
BINDINGS = ["jsonrpc", "rest"]


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


def wire(http: httpx.AsyncClient, served: Served, binding: str) -> Wire:
    return Wire(http, f"{served.base}/a2a/helper", binding)


async def test_8_1_card_at_the_well_known_path(served: Served, http: httpx.AsyncClient) -> None:
    card = (await http.get(f"{served.base}/a2a/helper/.well-known/agent-card.json")).json()
    for field in ("name", "description", "version", "supportedInterfaces", "capabilities", "skills"):
        assert card.get(field), field
    assert card["defaultInputModes"] and card["defaultOutputModes"]


@pytest.mark.parametrize("binding", BINDINGS)
async def test_8_3_1_each_interface_works_at_its_url(
    served: Served, http: httpx.AsyncClient, binding: str
) -> None:
    card = (await http.get(f"{served.base}/a2a/helper/.well-known/agent-card.json")).json()
    wanted = "JSONRPC" if binding == "jsonrpc" else "HTTP+JSON"
    interface = next(i for i in card["supportedInterfaces"] if i["protocolBinding"] == wanted)
    assert interface["protocolVersion"] == "1.0"
    result, error = await Wire(http, interface["url"], binding).call("SendMessage", _message("echo x"))
    assert (
        error is None and result is not None and result["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    )


async def test_5_1_both_bindings_answer_alike(served: Served, http: httpx.AsyncClient) -> None:
    rpc, rest = wire(http, served, "jsonrpc"), wire(http, served, "rest")
    made, _ = await rpc.call("SendMessage", _message("echo same"))
    assert made is not None
    task_id = made["task"]["id"]
    one, _ = await rpc.call("GetTask", {"id": task_id})
    two, _ = await rest.call("GetTask", {"id": task_id})
    assert one == two
    _, e1 = await rpc.call("GetTask", {"id": "nope"})
    _, e2 = await rest.call("GetTask", {"id": "nope"})
    assert (_code(e1), _code(e2)) == NOT_FOUND


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_6_2_unsupported_versions_and_none(
    served: Served, http: httpx.AsyncClient, binding: str
) -> None:
    w = wire(http, served, binding)
    _, error = await w.call("GetTask", {"id": "x"}, **{"A2A-Version": "2.0"})
    assert _code(error) in ("-32009", "VERSION_NOT_SUPPORTED")
    _, error = await w.call("GetTask", {"id": "x"}, **{"A2A-Version": "1.3"})
    assert _code(error) in ("-32009", "VERSION_NOT_SUPPORTED")
    if binding == "jsonrpc":  # no version: 0.3, whose method names are served, and 1.0's are not
        body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}
        assert (await http.post(w.url, json=body)).json()["error"]["code"] == -32009
        old = {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": "x"}}
        assert (await http.post(w.url, json=old)).json()["error"]["code"] == -32001


async def test_3_6_1_version_as_a_query_parameter_and_patch_ignored(
    served: Served, http: httpx.AsyncClient
) -> None:
    url = f"{served.base}/a2a/helper"
    body = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}
    assert (await http.post(url, json=body, params={"A2A-Version": "1.0"})).json()["error"]["code"] == -32001
    patched = await http.post(url, json=body, headers={"A2A-Version": "1.0.7"})
    assert patched.json()["error"]["code"] == -32001


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_1_1_task_or_message_and_ended_tasks(
    served: Served, http: httpx.AsyncClient, binding: str
) -> None:
    w = wire(http, served, binding)
    task, _ = await w.call("SendMessage", _message("echo a"))
    message, _ = await w.call("SendMessage", _message("hi"))
    assert task is not None and "task" in task and message is not None and "message" in message
    _, error = await w.call("SendMessage", _message("echo again", taskId=task["task"]["id"]))
    assert _code(error) in UNSUPPORTED


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_2_2_blocking_and_return_immediately(
    served: Served, http: httpx.AsyncClient, binding: str
) -> None:
    w = wire(http, served, binding)
    waited, _ = await w.call("SendMessage", _message("steps 2"))
    assert waited is not None and waited["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    asked, _ = await w.call("SendMessage", _message("ask"))
    assert asked is not None and asked["task"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    quick, _ = await w.call("SendMessage", {**_message("slow"), "configuration": {"returnImmediately": True}})
    assert quick is not None and quick["task"]["status"]["state"] in (
        "TASK_STATE_SUBMITTED",
        "TASK_STATE_WORKING",
    )
    await w.call("CancelTask", {"id": quick["task"]["id"]})


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_1_2_streams(served: Served, http: httpx.AsyncClient, binding: str) -> None:
    w = wire(http, served, binding)
    events = await w.stream("SendStreamingMessage", _message("steps 2"))
    assert "task" in events[0]
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    single = await w.stream("SendStreamingMessage", _message("hi"))
    assert len(single) == 1 and "message" in single[0]


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_1_3_list_tasks(served: Served, http: httpx.AsyncClient, binding: str) -> None:
    w = wire(http, served, binding)
    for i in range(3):
        await w.call("SendMessage", _message(f"echo {i}"))
    first, _ = await w.call("ListTasks", {"pageSize": 2})
    assert first is not None and len(first["tasks"]) == 2 and first["nextPageToken"]
    stamps = [t["status"]["timestamp"] for t in first["tasks"]]
    assert stamps == sorted(stamps, reverse=True)
    seen: list[str] = [t["id"] for t in first["tasks"]]
    token = first["nextPageToken"]
    while token:
        page, _ = await w.call("ListTasks", {"pageSize": 2, "pageToken": token})
        assert page is not None and "nextPageToken" in page
        seen += [t["id"] for t in page["tasks"]]
        token = page["nextPageToken"]
    assert len(seen) == len(set(seen)) == first["totalSize"]


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_2_4_history_length_and_artifacts(
    served: Served, http: httpx.AsyncClient, binding: str
) -> None:
    w = wire(http, served, binding)
    made, _ = await w.call("SendMessage", _message("steps 2"))
    assert made is not None
    task_id = made["task"]["id"]
    none, _ = await w.call("GetTask", {"id": task_id, "historyLength": 0})
    one, _ = await w.call("GetTask", {"id": task_id, "historyLength": 1})
    assert none is not None and one is not None
    assert not none.get("history") and len(one.get("history", [])) <= 1
    listed, _ = await w.call("ListTasks", {"includeArtifacts": False, "pageSize": 5})
    assert listed is not None and all(not t.get("artifacts") for t in listed["tasks"])


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_1_5_cancel(served: Served, http: httpx.AsyncClient, binding: str) -> None:
    w = wire(http, served, binding)
    running, _ = await w.call(
        "SendMessage", {**_message("slow"), "configuration": {"returnImmediately": True}}
    )
    assert running is not None
    cancelled, _ = await w.call("CancelTask", {"id": running["task"]["id"]})
    assert cancelled is not None and cancelled["status"]["state"] == "TASK_STATE_CANCELED"
    _, again = await w.call("CancelTask", {"id": running["task"]["id"]})
    assert _code(again) in NOT_CANCELABLE
    _, unknown = await w.call("CancelTask", {"id": "nope"})
    assert _code(unknown) in NOT_FOUND


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_1_6_subscribe(served: Served, http: httpx.AsyncClient, binding: str) -> None:
    w = wire(http, served, binding)
    made, _ = await w.call(
        "SendMessage", {**_message("steps 3"), "configuration": {"returnImmediately": True}}
    )
    assert made is not None
    events = await w.stream("SubscribeToTask", {"id": made["task"]["id"]})
    assert "task" in events[0]
    states = [e.get("statusUpdate", {}).get("status", {}).get("state") for e in events[1:]]
    assert (
        events[0]["task"]["status"]["state"] == "TASK_STATE_COMPLETED" or states[-1] == "TASK_STATE_COMPLETED"
    )
    _, error = await w.call("SubscribeToTask", {"id": made["task"]["id"]})  # (ended: one JSON error)
    assert _code(error) in UNSUPPORTED


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_1_7_push_configs(served: Served, http: httpx.AsyncClient, binding: str) -> None:
    w = wire(http, served, binding)
    made, _ = await w.call("SendMessage", _message("ask"))
    assert made is not None
    task_id = made["task"]["id"]
    config = {"taskId": task_id, "id": "c1", "url": "http://127.0.0.1:9/hook", "token": "t"}
    created, error = await w.call("CreateTaskPushNotificationConfig", config)
    assert error is None and created is not None and created["id"] == "c1"
    got, _ = await w.call("GetTaskPushNotificationConfig", {"taskId": task_id, "id": "c1"})
    assert got is not None and got["url"] == config["url"]
    listed, _ = await w.call("ListTaskPushNotificationConfigs", {"taskId": task_id})
    assert listed is not None and [c["id"] for c in listed["configs"]] == ["c1"]
    for _ in range(2):  # idempotent
        _, error = await w.call("DeleteTaskPushNotificationConfig", {"taskId": task_id, "id": "c1"})
        assert error is None
    _, missing = await w.call("GetTaskPushNotificationConfig", {"taskId": task_id, "id": "c1"})
    assert _code(missing) in ("-32001", "TASK_NOT_FOUND", "-32602", "INVALID_PARAMS", "404")


async def test_3_1_11_extended_card_needs_authentication(served: Served, http: httpx.AsyncClient) -> None:
    url = f"{served.base}/gateways/keyed/a2a/tools"
    rpc = await http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "GetExtendedAgentCard", "params": {}}, headers=V1
    )
    rest = await http.get(f"{url}/extendedAgentCard", headers=V1)
    assert rpc.status_code == rest.status_code == 401


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_4_contexts_and_task_ids(served: Served, http: httpx.AsyncClient, binding: str) -> None:
    w = wire(http, served, binding)
    asked, _ = await w.call("SendMessage", _message("ask"))
    assert asked is not None
    task = asked["task"]
    assert task["contextId"]
    answered, _ = await w.call("SendMessage", _message("Ada", taskId=task["id"]))
    assert answered is not None and answered["task"]["contextId"] == task["contextId"]
    _, unknown = await w.call("SendMessage", _message("x", taskId="no-such-task"))
    assert _code(unknown) in NOT_FOUND
    other, _ = await w.call("SendMessage", _message("ask"))
    assert other is not None
    _, mismatch = await w.call("SendMessage", _message("y", taskId=other["task"]["id"], contextId="another"))
    assert _code(mismatch) in ("-32602", "INVALID_PARAMS")


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_3_2_error_shapes(served: Served, http: httpx.AsyncClient, binding: str) -> None:
    _, error = await wire(http, served, binding).call("GetTask", {"id": "nope"})
    assert error is not None
    if binding == "jsonrpc":
        assert isinstance(error["code"], int) and error["message"]
        assert any(d.get("@type", "").endswith("google.rpc.ErrorInfo") for d in error.get("data", []))
    else:
        detail = next(d for d in error["error"]["details"] if d.get("@type", "").endswith("ErrorInfo"))
        assert detail["reason"] == "TASK_NOT_FOUND" and detail["domain"] == "a2a-protocol.org"


async def test_5_5_json_names_enums_and_timestamps(served: Served, http: httpx.AsyncClient) -> None:
    made, _ = await wire(http, served, "jsonrpc").call("SendMessage", _message("echo z"))
    assert made is not None
    task = made["task"]
    assert "contextId" in task and "context_id" not in task
    assert task["status"]["state"].startswith("TASK_STATE_")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", task["status"]["timestamp"])


async def test_7_4_every_request_is_authenticated_and_others_tasks_are_not_found(
    served: Served, http: httpx.AsyncClient
) -> None:
    url = f"{served.base}/gateways/keyed/a2a/tools"
    for binding in BINDINGS:
        _, error = await Wire(http, url, binding).call("ListTasks", {})
        assert error is not None
    async with httpx.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        ada = (await admin.post("/admin/v1/gateways/keyed/keys", json={"subject": "ada"})).json()["key"]
        bob = (await admin.post("/admin/v1/gateways/keyed/keys", json={"subject": "bob"})).json()["key"]
    mine = Wire(http, url, "rest", {"Authorization": f"Bearer {ada}"})
    theirs = Wire(http, url, "rest", {"Authorization": f"Bearer {bob}"})
    made, _ = await mine.call("SendMessage", {**_message('{"a": 1}'), "metadata": {"skill": "py___add"}})
    assert made is not None
    _, error = await theirs.call("GetTask", {"id": made["task"]["id"]})
    assert _code(error) in NOT_FOUND
    _, error = await theirs.call("CancelTask", {"id": made["task"]["id"]})
    assert _code(error) in NOT_FOUND


def test_every_requirement_has_its_test() -> None:
    tests = {name for name in globals() if name.startswith("test_")}
    for section in REQUIREMENTS:
        first = section.split("/")[0].split("-")[0].replace(".", "_")
        assert any(t.startswith(f"test_{first}") for t in tests), section


@pytest.mark.parametrize("binding", BINDINGS)
async def test_3_3_2_overlong_ids_are_invalid_params(
    served: Served, http: httpx.AsyncClient, binding: str
) -> None:
    _, error = await wire(http, served, binding).call("SendMessage", _message("echo x", contextId="c" * 5000))
    assert _code(error) in ("-32602", "400") and "longer than 128" in json.dumps(error)
    # The SDK's parser also takes the proto's own field names: they are held to the same limit.
    _, error = await wire(http, served, binding).call("SendMessage", _message("echo x", context_id="c" * 300))
    assert _code(error) in ("-32602", "400") and "longer than 128" in json.dumps(error)
