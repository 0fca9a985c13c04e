"""The A2A front, driven by ``a2a-sdk``'s own client in both bindings through a real
``switchboard serve`` that fronts a real ``a2a-sdk`` agent on loopback (an ``a2a`` target) and
publishes a gateway's tools as an agent: every method, streaming, cancel, subscribe, push
notifications to a local webhook, auth refusals, tasks that outlive a restart."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from a2a.client import A2ACardResolver, ClientCallContext, ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.helpers import new_text_message
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils import TransportProtocol
from a2a.utils.errors import A2AError, InvalidParamsError, TaskNotFoundError
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.e2e.harness import Served, serve
from tests.fixtures.a2a_agent import Seen
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio

BINDINGS = [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON]


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        raw = await request.body()
        received.append({"headers": dict(request.headers), "body": json.loads(raw), "raw": raw})
        return Response(status_code=204)

    with serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        yield f"{base}/hook", received


def _config(agent_base: str) -> str:
    return f"""
gateways:
  - name: default
    a2a_agent: {{}}
    targets:
      - name: helper
        kind: a2a
        url: {agent_base}/agent
      - name: py
        kind: function
        functions: [tests.fixtures.functions:add]
  - name: keyed
    auth: {{kind: api_key}}
    a2a_agent: {{name: tools}}
    targets:
      - name: py
        kind: function
        functions: [tests.fixtures.functions:add]
  - name: guarded
    a2a_agent: {{name: tools}}
    policies:
      - 'permit(principal, action, resource);'
      - 'forbid(principal, action == Switchboard::Action::"py___add", resource)
         when {{ context has a && context.a > 100 }};'
    rate_limits:
      - {{limit: 3/minute, per: caller_tool}}
    targets:
      - name: py
        kind: function
        functions: [tests.fixtures.functions:add]
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, agent: tuple[str, Seen]) -> Path:
    root = tmp_path_factory.mktemp("a2a-front")
    (root / "switchboard.yaml").write_text(_config(agent[0]))
    return root


@pytest.fixture(scope="module")
def served(data: Path) -> Iterator[Served]:
    env = {"SWITCHBOARD_EGRESS_ALLOW": '["127.0.0.1/32"]'}
    with serve(data / "data", data / "switchboard.yaml", env=env) as s:
        yield s


async def _client(
    http: httpx.AsyncClient, url: str, binding: str, *, streaming: bool = True, key: str | None = None
) -> tuple[AgentCard, Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    card = await A2ACardResolver(http, url).get_agent_card(http_kwargs={"headers": headers})
    config = ClientConfig(httpx_client=http, supported_protocol_bindings=[binding], streaming=streaming)
    return card, ClientFactory(config).create(card)


def _message(text: str, **metadata: Any) -> Message:
    message = new_text_message(text, role=Role.ROLE_USER)
    if metadata:
        message.metadata.update(metadata)
    return message


async def _events(client: Client, message: Message, **kw: Any) -> list[StreamResponse]:
    return [e async for e in client.send_message(SendMessageRequest(message=message, **kw))]


def _final(events: list[StreamResponse]) -> tuple[str, int]:
    """(task id, last state) of a stream."""
    task_id, state = "", 0
    for event in events:
        kind = event.WhichOneof("payload")
        if kind == "task":
            task_id, state = event.task.id, event.task.status.state
        elif kind == "status_update":
            task_id, state = event.status_update.task_id, event.status_update.status.state
    return task_id, state


def _texts(events: list[StreamResponse]) -> list[str]:
    found = []
    for event in events:
        if event.WhichOneof("payload") == "artifact_update":
            found += [p.text for p in event.artifact_update.artifact.parts if p.HasField("text")]
        if event.WhichOneof("payload") == "task":
            for artifact in event.task.artifacts:
                found += [p.text for p in artifact.parts if p.HasField("text")]
    return found


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


@pytest.mark.parametrize("binding", BINDINGS)
async def test_cards_messages_tasks_in_both_bindings(
    served: Served, http: httpx.AsyncClient, binding: str
) -> None:
    card, client = await _client(http, f"{served.base}/a2a/helper", binding)
    assert [s.id for s in card.skills] == ["echo", "greet"]
    assert {i.protocol_binding for i in card.supported_interfaces} == set(BINDINGS)
    assert all(i.url == f"{served.base}/a2a/helper" for i in card.supported_interfaces)
    streamed = await _events(client, _message("steps 2"))
    task_id, state = _final(streamed)
    assert state == TaskState.TASK_STATE_COMPLETED and "part 1;" in "".join(_texts(streamed))
    working = [
        e
        for e in streamed
        if e.WhichOneof("payload") == "status_update" and e.status_update.status.message.parts
    ]
    assert any("step 2 of 2" in p.text for e in working for p in e.status_update.status.message.parts)
    _, blocking = await _client(http, f"{served.base}/a2a/helper", binding, streaming=False)
    answered = await _events(blocking, _message("echo blocking"))
    assert len(answered) == 1 and answered[0].task.status.state == TaskState.TASK_STATE_COMPLETED
    assert _texts(answered) == ["echo: blocking"]
    got = await client.get_task(GetTaskRequest(id=task_id, history_length=1))
    assert got.id == task_id and got.status.state == TaskState.TASK_STATE_COMPLETED and len(got.history) <= 1
    page = await client.list_tasks(ListTasksRequest(page_size=1))
    assert len(page.tasks) == 1 and page.next_page_token and page.total_size >= 2
    second = await client.list_tasks(ListTasksRequest(page_size=1, page_token=page.next_page_token))
    assert second.tasks[0].id != page.tasks[0].id
    done = await client.list_tasks(
        ListTasksRequest(status=TaskState.TASK_STATE_COMPLETED, context_id=got.context_id)
    )
    assert [t.id for t in done.tasks] == [task_id] and done.next_page_token == ""
    with pytest.raises(TaskNotFoundError):
        await client.get_task(GetTaskRequest(id="no-such-task"))
    hello = await _events(client, _message("hi"))  # the agent answers with a message, not a task
    assert [e.WhichOneof("payload") for e in hello] == ["message"] and hello[0].message.parts[
        0
    ].text == "hi there"


@pytest.mark.parametrize("binding", BINDINGS)
async def test_the_published_tools_agent_runs_tools_through_the_pipeline(
    served: Served, http: httpx.AsyncClient, binding: str
) -> None:
    card, client = await _client(http, f"{served.base}/a2a/tools", binding)
    assert {"py___add", "helper___echo"} <= {s.id for s in card.skills}
    events = await _events(client, _message('{"a": 2, "b": 40}', skill="py___add"))
    _, state = _final(events)
    assert state == TaskState.TASK_STATE_COMPLETED and "42" in _texts(events)
    bad = await _events(client, _message("not json", skill="py___add"))
    assert _final(bad)[1] == TaskState.TASK_STATE_REJECTED
    nameless = await _events(client, _message('{"a": 1}'))  # several skills: one must be named
    assert _final(nameless)[1] == TaskState.TASK_STATE_REJECTED
    wrong = await _events(client, _message('{"a": "x"}', skill="py___add"))  # fails the input schema
    assert _final(wrong)[1] == TaskState.TASK_STATE_FAILED


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_question_makes_the_task_input_required_and_the_answer_continues_it(
    served: Served, http: httpx.AsyncClient, binding: str
) -> None:
    _, client = await _client(http, f"{served.base}/a2a/helper", binding)
    asked = await _events(client, _message("ask", skill="greet"))
    task_id, state = _final(asked)
    assert state == TaskState.TASK_STATE_INPUT_REQUIRED
    answer = _message("Ada")
    answer.task_id = task_id
    answered = await _events(client, answer)
    assert _final(answered) == (task_id, TaskState.TASK_STATE_COMPLETED)
    assert "hello Ada" in _texts(answered)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_cancel_and_subscribe(
    served: Served, http: httpx.AsyncClient, agent: tuple[str, Seen], binding: str
) -> None:
    _, seen = agent
    _, client = await _client(http, f"{served.base}/a2a/helper", binding)
    before = len(seen.cancelled)
    first = await anext(client.send_message(SendMessageRequest(message=_message("slow"))))
    task_id = first.task.id
    updates: list[StreamResponse] = []

    async def watch() -> None:
        async for event in client.subscribe(SubscribeToTaskRequest(id=task_id)):
            updates.append(event)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        with anyio.fail_after(30):
            while len(updates) < 3:  # noqa: ASYNC110 - the stream's own pace
                await anyio.sleep(0.05)
        cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    assert updates[0].WhichOneof("payload") == "task"  # a subscription starts with the task
    assert _final(updates)[1] == TaskState.TASK_STATE_CANCELED  # and ends at its end
    with anyio.fail_after(30):
        while len(seen.cancelled) == before:  # noqa: ASYNC110 - the agent runs on another thread
            await anyio.sleep(0.05)
    with pytest.raises(A2AError):  # an ended task is not cancelled again
        await client.cancel_task(CancelTaskRequest(id=task_id))


@pytest.mark.parametrize("binding", BINDINGS)
async def test_push_notifications_reach_a_local_webhook(
    served: Served, http: httpx.AsyncClient, hooks: tuple[str, list[dict[str, Any]]], binding: str
) -> None:
    url, received = hooks
    _, client = await _client(http, f"{served.base}/a2a/helper", binding, streaming=False)
    push = TaskPushNotificationConfig(id="mine", url=url, token=f"tok-{binding}")
    config = SendMessageConfiguration(task_push_notification_config=push, return_immediately=True)
    events = await _events(client, _message("steps 2"), configuration=config)
    task_id = events[0].task.id

    def ended() -> bool:
        return any(
            r["body"].get("statusUpdate", {}).get("status", {}).get("state") == "TASK_STATE_COMPLETED"
            and r["body"]["statusUpdate"]["taskId"] == task_id
            for r in received
        )

    with anyio.fail_after(30):
        while not ended():  # noqa: ASYNC110 - the webhook runs on another thread
            await anyio.sleep(0.05)
    mine = [r for r in received if r["headers"].get("x-a2a-notification-token") == f"tok-{binding}"]
    assert mine
    keys = KeySet.import_key_set((await http.get(f"{served.base}/.well-known/jwks.json")).json())
    for delivery in mine:  # each notification is signed by the gateway, for this webhook and body
        token = jwt.decode(delivery["headers"]["x-switchboard-signature"], keys, algorithms=["ES256"])
        digest = base64.urlsafe_b64encode(hashlib.sha256(delivery["raw"]).digest()).rstrip(b"=").decode()
        assert token.claims["aud"] == url and token.claims["taskId"] == task_id
        assert (token.claims["sub"], token.claims["tenant"], token.claims["configId"]) == (
            "anonymous",
            "default",
            "mine",
        )
        assert token.claims["bodySha256"] == digest and token.header["jku"].endswith("/.well-known/jwks.json")
    got = await client.get_task_push_notification_config(
        GetTaskPushNotificationConfigRequest(task_id=task_id, id="mine")
    )
    assert got.url == url
    listed = await client.list_task_push_notification_configs(
        ListTaskPushNotificationConfigsRequest(task_id=task_id)
    )
    assert [c.id for c in listed.configs] == ["mine"]
    await client.delete_task_push_notification_config(
        DeleteTaskPushNotificationConfigRequest(task_id=task_id, id="mine")
    )
    await client.delete_task_push_notification_config(
        DeleteTaskPushNotificationConfigRequest(task_id=task_id, id="mine")
    )
    assert not (
        await client.list_task_push_notification_configs(
            ListTaskPushNotificationConfigsRequest(task_id=task_id)
        )
    ).configs
    private = TaskPushNotificationConfig(task_id=task_id, id="x", url="http://10.1.2.3/hook")
    with pytest.raises(InvalidParamsError, match="push notification URL refused"):
        await client.create_task_push_notification_config(private)
    for i in range(10):  # ten webhooks a task at most
        await client.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task_id, id=f"c{i}", url=url)
        )
    with pytest.raises(InvalidParamsError, match="at most 10 push notification configs"):
        await client.create_task_push_notification_config(
            TaskPushNotificationConfig(task_id=task_id, id="c10", url=url)
        )
    await client.create_task_push_notification_config(
        TaskPushNotificationConfig(task_id=task_id, id="c9", url=url)
    )


async def test_auth_refusals_and_the_extended_card(served: Served, http: httpx.AsyncClient) -> None:
    url = f"{served.base}/gateways/keyed/a2a/tools"
    public = (await http.get(f"{url}/.well-known/agent-card.json")).json()
    assert public.get("skills", []) == [] and public["capabilities"]["extendedAgentCard"] is True
    assert "bearer" in public["securitySchemes"]
    refused = await http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}
    )
    assert refused.status_code == 401 and "www-authenticate" in refused.headers
    wrong = await http.get(f"{url}/tasks", headers={"Authorization": "Bearer sb_nope", "A2A-Version": "1.0"})
    assert wrong.status_code == 401
    async with httpx.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        key = (await admin.post("/admin/v1/gateways/keyed/keys", json={"subject": "ada"})).json()["key"]
        other = (await admin.post("/admin/v1/gateways/keyed/keys", json={"subject": "bob"})).json()["key"]
    card, client = await _client(http, url, TransportProtocol.JSONRPC, key=key)
    assert [s.id for s in card.skills] == ["py___add"]
    context = ClientCallContext(service_parameters={"Authorization": f"Bearer {key}"})
    extended = await client.get_extended_agent_card(GetExtendedAgentCardRequest(), context=context)
    assert [s.id for s in extended.skills] == ["py___add"]
    events = [
        e
        async for e in client.send_message(
            SendMessageRequest(message=_message('{"a": 1, "b": 2}', skill="py___add")), context=context
        )
    ]
    assert "3" in _texts(events)
    task_id = _final(events)[0]
    theirs = ClientCallContext(service_parameters={"Authorization": f"Bearer {other}"})
    with pytest.raises(TaskNotFoundError):  # another caller's task is not found, not refused
        await client.get_task(GetTaskRequest(id=task_id), context=theirs)
    assert not (await client.list_tasks(ListTasksRequest(), context=theirs)).tasks


async def test_bad_input_gets_the_specifications_errors(served: Served, http: httpx.AsyncClient) -> None:
    url = f"{served.base}/a2a/helper"
    v1 = {"A2A-Version": "1.0"}
    parse = await http.post(url, content=b"{not json", headers={**v1, "content-type": "application/json"})
    assert parse.status_code == 200 and parse.json()["error"]["code"] == -32700
    method = await http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "Nope", "params": {}}, headers=v1
    )
    assert method.json()["error"]["code"] == -32601
    version = await http.post(
        url,
        json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}},
        headers={"A2A-Version": "2.0"},
    )
    assert version.json()["error"]["code"] == -32009
    minor = await http.get(f"{url}/tasks/x", headers={"A2A-Version": "1.7"})
    assert minor.status_code == 400 and "VERSION_NOT_SUPPORTED" in minor.text
    unknown = await http.get(f"{url}/tasks/no-such", headers=v1)
    assert unknown.status_code == 404 and "TASK_NOT_FOUND" in unknown.text
    huge = await http.post(url, content=b"x" * (5 * 1024 * 1024), headers=v1)
    assert huge.status_code == 413 and "larger than" in huge.json()["error"]
    missing = await http.get(f"{served.base}/a2a/nobody/.well-known/agent-card.json")
    assert missing.status_code == 404 and "serves no A2A agent 'nobody'" in missing.json()["error"]
    legacy = await http.post(  # A2A 0.3's method names, without the header
        url,
        json={
            "jsonrpc": "2.0",
            "id": 2,
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "messageId": "m1",
                    "role": "user",
                    "parts": [{"kind": "text", "text": "echo old"}],
                }
            },
        },
    )
    assert legacy.json()["result"]["status"]["state"] == "completed"


async def test_tasks_outlive_a_restart(data: Path, agent: tuple[str, Seen], http: httpx.AsyncClient) -> None:
    env = {"SWITCHBOARD_EGRESS_ALLOW": '["127.0.0.1/32"]'}
    root = data.parent / f"{data.name}-restart"
    root.mkdir()
    (root / "switchboard.yaml").write_text(_config(agent[0]))
    with serve(root / "data", root / "switchboard.yaml", env=env) as first:
        _, client = await _client(http, f"{first.base}/a2a/helper", TransportProtocol.JSONRPC)
        task_id, _ = _final(await _events(client, _message("echo kept")))
    with serve(root / "data", root / "switchboard.yaml", env=env) as second:
        _, client = await _client(http, f"{second.base}/a2a/helper", TransportProtocol.JSONRPC)
        kept = await client.get_task(GetTaskRequest(id=task_id))
        assert kept.status.state == TaskState.TASK_STATE_COMPLETED
        assert [p.text for a in kept.artifacts for p in a.parts] == ["echo: kept"]


async def test_policy_and_rate_limits_govern_a2a_messages_as_tool_calls(
    served: Served, http: httpx.AsyncClient
) -> None:
    _, client = await _client(http, f"{served.base}/gateways/guarded/a2a/tools", TransportProtocol.JSONRPC)
    allowed = await _events(client, _message('{"a": 1, "b": 1}', skill="py___add"))
    assert _final(allowed)[1] == TaskState.TASK_STATE_COMPLETED
    denied = await _events(client, _message('{"a": 500}', skill="py___add"))
    assert _final(denied)[1] == TaskState.TASK_STATE_FAILED
    said = [
        p.text
        for e in denied
        if e.WhichOneof("payload") == "status_update"
        for p in e.status_update.status.message.parts
    ]
    assert any("policy does not allow py___add" in t for t in said)
    states = [_final(await _events(client, _message('{"a": 2}', skill="py___add")))[1] for _ in range(3)]
    assert states[-1] == TaskState.TASK_STATE_FAILED  # the fourth call in a minute is over the limit
