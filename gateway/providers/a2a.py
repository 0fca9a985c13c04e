"""A remote A2A agent as a gateway target (``kind: a2a``, ADR 0037), on ``a2a-sdk``'s client.

The agent is found by its Agent Card. Its skills become tools (or one ``send_message`` tool);
a call sends one message and follows the agent's task until it ends or stops to ask:

- status and artifact updates are relayed as MCP progress (when the card allows streaming);
- the task's artifacts (or the agent's message) are the result: text as text, data as JSON
  and structured content, images as images, other files as embedded resources;
- ``input-required``: the agent's question goes to the user by elicitation when the client can
  answer one, and the answer continues the same task; otherwise the result says what was asked,
  and a call with that ``taskId`` answers it;
- a cancelled or timed-out call cancels the agent's task;
- a 2026-07-28 client that declared the MCP tasks extension gets an MCP task at once (every
  tool here is task-capable, ADR 0038): the agent's question waits in it (``input_required``)
  for ``tasks/update``, and ``tasks/cancel`` cancels the agent's task.

A tenant's target reaches only public addresses (``gateway.egress``), its card included.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import anyio
import httpx
from a2a.client import A2ACardResolver, ClientCallContext, ClientConfig, ClientFactory
from a2a.client.client import Client
from a2a.client.errors import A2AClientError
from a2a.types import (
    AgentCard,
    Artifact,
    CancelTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    TaskState,
)
from a2a.utils import TransportProtocol
from a2a.utils.errors import A2AError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Struct, Value

from gateway.config import A2aTarget
from gateway.core.errors import ToolNotFound, UpstreamError, UpstreamUnavailable
from gateway.core.provider import ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec
from gateway.egress import reach
from gateway.telemetry import upstream_request

CARD_PATH = "/.well-known/agent-card.json"
BINDINGS: dict[str, str] = {"jsonrpc": TransportProtocol.JSONRPC, "http_json": TransportProtocol.HTTP_JSON}
TERMINAL = {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED}
TERMINAL |= {TaskState.TASK_STATE_REJECTED}
STOPPED = TERMINAL | {TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED}
MAX_ROUNDS = 8  # questions one call may put to the user
_INPUT = {
    "message": {"type": "string", "description": "What to ask of the agent, in words."},
    "data": {"type": "object", "description": "Structured input, sent to the agent as a data part."},
    "taskId": {
        "type": "string",
        "description": "Continue this task of the agent's (one that asked for input): `message` answers it.",
    },
    "contextId": {"type": "string", "description": "Keep to this conversation (a contextId a result gave)."},
}


def state_name(state: int) -> str:
    """``TASK_STATE_INPUT_REQUIRED`` -> ``input-required`` (the specification's words)."""
    name: str = TaskState.Name(state)
    return name.removeprefix("TASK_STATE_").lower().replace("_", "-")


def _text(message: Message) -> str:
    return "\n".join(part.text for part in message.parts if part.HasField("text"))


class _Follow:
    """One task followed to its end: the latest state, status message and artifacts."""

    def __init__(self) -> None:
        self.task_id = self.context_id = ""
        self.state: int = TaskState.TASK_STATE_UNSPECIFIED
        self.status: Message | None = None
        self.message: Message | None = None  # an answer that is a message, not a task
        self.artifacts: dict[str, Artifact] = {}
        self.updates = 0
        self.size = 0  # bytes of artifacts taken so far

    def take(self, event: StreamResponse) -> str | None:
        """Take one event; returns what to report as progress, if anything."""
        kind = event.WhichOneof("payload")
        if kind == "message":
            self.message = event.message
            self.context_id = event.message.context_id
            return None
        if kind == "task":
            task = event.task
            self.task_id, self.context_id = task.id, task.context_id
            self.artifacts = {a.artifact_id: a for a in task.artifacts}
            self.size = task.ByteSize()
            return self._status(
                task.status.state, task.status.message if task.status.HasField("message") else None
            )
        if kind == "status_update":
            status_update = event.status_update
            self.task_id, self.context_id = status_update.task_id, status_update.context_id
            status = status_update.status
            return self._status(status.state, status.message if status.HasField("message") else None)
        if kind == "artifact_update":
            update = event.artifact_update
            self.size += update.artifact.ByteSize()
            known = self.artifacts.get(update.artifact.artifact_id)
            if update.append and known is not None:
                known.parts.extend(update.artifact.parts)
            else:
                self.artifacts[update.artifact.artifact_id] = update.artifact
            self.updates += 1
            return f"artifact {update.artifact.name or update.artifact.artifact_id}"
        return None

    def _status(self, state: int, message: Message | None) -> str | None:
        """A state the agent says something about is progress; a bare change of state is not
        (the result says how the task ended)."""
        self.state = state
        said = _text(message) if message is not None else ""
        if message is not None:
            self.status = message
        if not said:
            return None
        self.updates += 1
        return f"{state_name(state)}: {said}"

    @property
    def question(self) -> str:
        return (_text(self.status) if self.status is not None else "") or "The agent needs more input."


class A2aProvider(ToolProvider):
    """A remote A2A agent's skills as tools."""

    kind: ClassVar[str] = "a2a"

    def __init__(self, config: A2aTarget, *, gateway: str = "default") -> None:
        super().__init__(config.name)
        self.config = config
        self.gateway = gateway
        self._http: httpx.AsyncClient | None = None
        self._card: tuple[float, AgentCard, Client] | None = None
        self._lock = anyio.Lock()

    async def __aenter__(self) -> Self:
        guarded = reach(self.egress_allow)
        transport = guarded.httpx_transport() if guarded is not None else None
        timeout = httpx.Timeout(self.config.timeout_seconds, connect=min(10.0, self.config.timeout_seconds))
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._card = None

    # -- the card --------------------------------------------------------------------------

    async def card(self) -> tuple[AgentCard, Client]:
        """The agent's card (read again after ``card_seconds``) and a client for it."""
        known = self._card
        if known is not None and time.monotonic() - known[0] < self.config.card_seconds:
            return known[1], known[2]
        async with self._lock:
            known = self._card
            if known is not None and time.monotonic() - known[0] < self.config.card_seconds:
                return known[1], known[2]
            card = await self._read_card()
            client = self._client(card)
            self._card = (time.monotonic(), card, client)
            return card, client

    async def _read_card(self) -> AgentCard:
        assert self._http is not None, "the provider is not open"
        url = self.config.url
        parts = urlsplit(url)
        if parts.path.endswith(".json"):
            base, path = f"{parts.scheme}://{parts.netloc}", parts.path
        else:
            base, path = url.rstrip("/"), CARD_PATH
        try:
            return await A2ACardResolver(self._http, base, path).get_agent_card(
                http_kwargs={"headers": dict(self.config.headers)}
            )
        except (A2AClientError, httpx.HTTPError, ValueError) as exc:
            raise UpstreamUnavailable(
                f"the agent card of target {self.id!r} could not be read from {base}{path}: {exc}"
            ) from None

    def _client(self, card: AgentCard) -> Client:
        bindings = (
            [BINDINGS[self.config.binding]] if self.config.binding != "auto" else list(BINDINGS.values())
        )
        offered = {i.protocol_binding for i in card.supported_interfaces}
        if not offered & set(bindings):
            wanted = self.config.binding if self.config.binding != "auto" else "JSONRPC or HTTP+JSON"
            raise UpstreamUnavailable(
                f"the agent of target {self.id!r} offers {', '.join(sorted(offered)) or 'no interface'}, "
                f"not {wanted}: set `binding` to one it offers"
            )
        config = ClientConfig(
            httpx_client=self._http, streaming=self.config.streaming, supported_protocol_bindings=bindings
        )
        return ClientFactory(config).create(card)

    # -- tools -----------------------------------------------------------------------------

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        card, _ = await self.card()
        if self.config.tools == "send_message":
            skills = "; ".join(f"{s.name}: {s.description}" for s in card.skills)
            described = card.description + (f" Skills: {skills}" if skills else "")
            return [ToolSpec("send_message", described, _schema(), title=card.name, task_support="optional")]
        specs, names = [], set()
        for skill in card.skills:
            name = skill.id or skill.name
            while name in names:
                name += "_"
            names.add(name)
            described = skill.description
            if skill.examples:
                described += " Examples: " + "; ".join(skill.examples[:5])
            specs.append(
                ToolSpec(name, described, _schema(), title=skill.name or None, task_support="optional")
            )
        return specs

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        card, client = await self.card()
        skill = None
        if self.config.tools == "skills":
            skills = {s.id or s.name for s in card.skills}
            if call.name.rstrip("_") not in skills:
                raise ToolNotFound(f"the agent of target {self.id!r} has no skill {call.name!r}")
            skill = call.name.rstrip("_")
        elif call.name != "send_message":
            raise ToolNotFound(f"target {self.id!r} has one tool, send_message, not {call.name!r}")
        arguments = call.arguments
        message = _message(arguments, skill)
        follow = _Follow()
        headers = await self._headers(ctx)
        try:
            for round_ in range(MAX_ROUNDS + 1):
                async for note in self._send(client, message, follow, headers):
                    await ctx.channel.progress(follow.updates, None, note)
                if follow.state != TaskState.TASK_STATE_INPUT_REQUIRED or round_ == MAX_ROUNDS:
                    break
                if not ctx.channel.supports("elicitation"):
                    break
                answer = await ctx.channel.elicit(follow.question, _ANSWER, key=f"a2a-{round_}")
                content = answer.get("content") if isinstance(answer, dict) else None
                if (
                    not isinstance(answer, dict)
                    or answer.get("action") != "accept"
                    or not isinstance(content, dict)
                ):
                    await self._cancel(client, follow, headers)
                    return ToolResult.error(f"The agent asked {follow.question!r}; the user gave no answer.")
                message = _message({"message": str(content.get("answer", ""))}, skill)
                message.task_id, message.context_id = follow.task_id, follow.context_id
        except BaseException:
            if follow.task_id and follow.state not in STOPPED:
                await self._cancel(client, follow, headers)
            raise
        return _result(follow, self.config.max_result_bytes)

    async def _headers(self, ctx: CallContext) -> dict[str, str]:
        headers = {**self.config.headers, **ctx.headers}
        credential = self.config.credential
        if credential is not None:
            secret = await ctx.credentials.secret(credential.provider, tool=None)
            headers[credential.header] = credential.prefix + secret
        return headers

    async def _send(
        self, client: Client, message: Message, follow: _Follow, headers: dict[str, str]
    ) -> AsyncIterator[str]:
        url = urlsplit(self.config.url)
        with upstream_request("POST", url.scheme, url.hostname or "", url.port, url.path) as traced:
            context = ClientCallContext(service_parameters={**headers, **traced.headers})
            try:
                async for event in client.send_message(SendMessageRequest(message=message), context=context):
                    note = follow.take(event)
                    cap = 4 * self.config.max_result_bytes  # (streamed chunks add up)
                    if follow.size > cap:
                        raise UpstreamError(
                            f"the agent of target {self.id!r} sent more than {cap} bytes of artifacts: "
                            "its task was cancelled (raise max_result_bytes for more)"
                        )
                    if note is not None:
                        yield note
                traced.status = 200
            except A2AError as exc:
                raise UpstreamError(f"the agent of target {self.id!r} refused: {exc}") from None
            except (A2AClientError, httpx.HTTPError) as exc:
                raise UpstreamUnavailable(
                    f"the agent of target {self.id!r} could not be reached: {exc}"
                ) from None

    async def _cancel(self, client: Client, follow: _Follow, headers: dict[str, str]) -> None:
        """Cancel the agent's task (best effort: the call is ending either way)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                context = ClientCallContext(service_parameters=headers)
                await client.cancel_task(CancelTaskRequest(id=follow.task_id), context=context)
            except (A2AError, A2AClientError, httpx.HTTPError):
                pass


_ANSWER: JSON = {
    "type": "object",
    "properties": {"answer": {"type": "string", "title": "Your answer"}},
    "required": ["answer"],
}


def _schema() -> dict[str, Any]:
    return {"type": "object", "properties": dict(_INPUT), "required": ["message"]}


def _message(arguments: dict[str, Any], skill: str | None) -> Message:
    message = Message(message_id=uuid.uuid4().hex, role=Role.ROLE_USER)
    text, data = str(arguments.get("message", "")), arguments.get("data")
    if text or not isinstance(data, dict):  # (A2A refuses an empty text part: data alone is sent alone)
        message.parts.append(Part(text=text or " "))
    if isinstance(data, dict):
        value = Value()
        ParseDict(data, value.struct_value)
        message.parts.append(Part(data=value))
    if arguments.get("taskId"):
        message.task_id = str(arguments["taskId"])
    if arguments.get("contextId"):
        message.context_id = str(arguments["contextId"])
    if skill is not None:
        message.metadata.CopyFrom(_struct({"skill": skill}))
    return message


def _struct(values: dict[str, Any]) -> Struct:
    struct = Struct()
    struct.update(values)
    return struct


def _result(follow: _Follow, limit: int) -> ToolResult:
    """The tool result of a task that stopped (or of the agent's message)."""
    content: list[JSON] = []
    structured: dict[str, Any] = {"contextId": follow.context_id}
    if follow.message is not None:
        parts: Sequence[Part] = follow.message.parts
        structured["message"] = MessageToDict(follow.message)
        content += _content(parts)
        return _capped(ToolResult(content=content, structured=structured), limit)
    structured.update(taskId=follow.task_id, state=state_name(follow.state))
    structured["artifacts"] = [MessageToDict(a) for a in follow.artifacts.values()]
    said = _text(follow.status) if follow.status is not None else ""
    for artifact in follow.artifacts.values():
        content += _content(artifact.parts)
    state = follow.state
    if state == TaskState.TASK_STATE_COMPLETED:
        if said and not content:
            content.append({"type": "text", "text": said})
        return _capped(ToolResult(content=content, structured=structured), limit)
    if state == TaskState.TASK_STATE_INPUT_REQUIRED:
        structured["question"] = follow.question
        content.append(
            {
                "type": "text",
                "text": f"The agent asks: {follow.question}\nAnswer by calling this tool again with "
                f'taskId "{follow.task_id}" and your answer as the message.',
            }
        )
        return _capped(ToolResult(content=content, structured=structured), limit)
    if state == TaskState.TASK_STATE_AUTH_REQUIRED:
        why = said or "the agent needs the user's authorization"
        text = f"The agent needs authorization: {why}"
        return ToolResult(content=[{"type": "text", "text": text}], structured=structured, is_error=True)
    why = said or "it gave no reason"
    return ToolResult(
        content=[*content, {"type": "text", "text": f"The agent's task ended {state_name(state)}: {why}"}],
        structured=structured,
        is_error=True,
    )


def _content(parts: Sequence[Part]) -> list[JSON]:
    blocks: list[JSON] = []
    for part in parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            blocks.append({"type": "text", "text": part.text})
        elif kind == "data":
            blocks.append({"type": "text", "text": json.dumps(MessageToDict(part.data), ensure_ascii=False)})
        elif kind == "raw":
            media = part.media_type or "application/octet-stream"
            data = base64.b64encode(part.raw).decode()
            if media.startswith("image/"):
                blocks.append({"type": "image", "data": data, "mimeType": media})
            else:
                name = part.filename or "file"
                blocks.append(
                    {
                        "type": "resource",
                        "resource": {"uri": f"a2a:///{name}", "mimeType": media, "blob": data},
                    }
                )
        elif kind == "url":
            link: JSON = {"type": "resource_link", "uri": part.url, "name": part.filename or part.url}
            if part.media_type:
                link["mimeType"] = part.media_type
            blocks.append(link)
    return blocks


def _capped(result: ToolResult, limit: int) -> ToolResult:
    """Text beyond ``limit`` bytes is cut, with a notice saying so."""
    size = len(json.dumps(list(result.content)).encode())
    if size <= limit:
        return result
    kept: list[JSON] = []
    used = 0
    for block in result.content:
        cost = len(json.dumps(block).encode())
        if used + cost > limit:
            break
        kept.append(block)
        used += cost
    kept.append({"type": "text", "text": f"[the agent's answer was {size} bytes; cut to {used}]"})
    return ToolResult(content=kept, structured=None, is_error=result.is_error)
