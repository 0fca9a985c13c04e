"""An A2A message run as a tool call through the gateway's pipeline (ADR 0037).

The message's skill (``metadata.skill``, else the agent's default) names the tool; the call runs
with the caller's identity through policy, rate limits, approvals, audit and traces, exactly as
an MCP ``tools/call`` would. Its progress becomes ``working`` status updates; its result becomes
the task's artifact and end state. A tool that is itself an A2A agent's skill (an ``a2a``
target) keeps its task's state: a question it asks makes this task ``input-required``, and the
answer continues the agent's task, whose ids this task keeps in its metadata.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from a2a.helpers import new_data_part, new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import Artifact, Message, Part, TaskState
from google.protobuf.json_format import MessageToDict, ParseDict

from gateway.a2a._agents import Agent, agent
from gateway.core.errors import SwitchboardError
from gateway.core.types import CallContext, NoChannel, Principal
from gateway.hub import Hub
from gateway.telemetry import tool_failed, tool_span

KEY = "switchboard"  # the task metadata this front keeps: the skill, and an agent's own task ids
ENDED = {
    "completed": TaskState.TASK_STATE_COMPLETED,
    "failed": TaskState.TASK_STATE_FAILED,
    "canceled": TaskState.TASK_STATE_CANCELED,
    "rejected": TaskState.TASK_STATE_REJECTED,
    "input-required": TaskState.TASK_STATE_INPUT_REQUIRED,
    "auth-required": TaskState.TASK_STATE_AUTH_REQUIRED,
}


class _Progress(NoChannel):
    """The call's channel back to the A2A caller: progress as ``working`` updates. It asks no
    questions (A2A asks them with ``input-required``, which a tool result says) and hears no logs."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        updater = await self.run.task()
        note = message or (f"{progress:g} of {total:g}" if total else f"{progress:g}")
        await updater.update_status(
            TaskState.TASK_STATE_WORKING, updater.new_agent_message([new_text_part(note)])
        )


class _Run:
    """One execution: the task is published on first need (a plain message answer needs none)."""

    def __init__(self, context: RequestContext, queue: EventQueue) -> None:
        self.context, self.queue = context, queue
        task = context.current_task
        self.context_id = task.context_id if task is not None else str(context.context_id)
        self.updater: TaskUpdater | None = None

    async def task(self) -> TaskUpdater:
        if self.updater is None:
            if self.context.current_task is None:
                assert self.context.message is not None
                await self.queue.enqueue_event(new_task_from_user_message(self.context.message))
            self.updater = TaskUpdater(self.queue, str(self.context.task_id), self.context_id)
            await self.updater.start_work()
        return self.updater


class GatewayExecutor(AgentExecutor):
    """Runs every agent of every gateway: the call context says which (``state``)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        state = context.call_context.state if context.call_context is not None else {}
        run = _Run(context, event_queue)
        tenant, gateway, name = state["target"]
        principal: Principal = state["principal"]
        live = self.hub.get(tenant, gateway)
        found = agent(live, name, principal) if live is not None else None
        if live is None or found is None:
            updater = await run.task()
            await updater.failed(
                updater.new_agent_message([new_text_part(f"agent {name!r} is no longer served")])
            )
            return
        task = context.current_task
        kept = dict(MessageToDict(task.metadata).get(KEY, {})) if task is not None else {}
        message = context.message
        assert message is not None
        wanted = MessageToDict(message.metadata).get("skill") or kept.get("skill")
        skill = found.skill(str(wanted) if wanted else None)
        if skill is None:
            await _reject(run, found, wanted)
            return
        arguments = _arguments(message, skill.conversational, kept)
        if arguments is None:
            updater = await run.task()
            why = f"skill {skill.id!r} takes JSON arguments: send them as a data part (or as the text)"
            await updater.reject(updater.new_agent_message([new_text_part(why)]))
            return
        call = CallContext(
            principal=principal,
            gateway=gateway,
            deadline=math.inf,
            channel=_Progress(run),
            request_id=state.get("request_id"),
        )
        try:
            with tool_span(skill.tool, tenant=tenant, gateway=gateway, via=f"a2a/{name}") as span:
                result = await live.call(skill.tool, arguments, call)
                tool_failed(span, {"isError": result.is_error})
        except SwitchboardError as exc:
            updater = await run.task()
            await updater.failed(updater.new_agent_message([new_text_part(exc.message)]))
            return
        structured = result.structured if isinstance(result.structured, dict) else None
        said = structured.get("message") if structured is not None else None
        if isinstance(said, dict) and run.updater is None and context.current_task is None:
            answer = Message()  # an agent that answered with a message, not a task
            ParseDict(said, answer, ignore_unknown_fields=True)
            reply = new_text_message("", context_id=run.context_id)
            del reply.parts[:]
            reply.parts.extend(answer.parts)
            await event_queue.enqueue_event(reply)
            return
        updater = await run.task()
        await _finish(updater, skill.id, result.content, structured, result.is_error)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        context_id = task.context_id if task is not None else str(context.context_id)
        await TaskUpdater(event_queue, str(context.task_id), context_id).cancel()


async def _reject(run: _Run, found: Agent, wanted: object) -> None:
    updater = await run.task()
    offered = ", ".join(s.id for s in found.skills) or "none you may use"
    why = (
        f"agent {found.name!r} has no skill {wanted!r} you may use"
        if wanted
        else f"agent {found.name!r} has several skills: name one in the message's metadata (skill)"
    )
    await updater.reject(updater.new_agent_message([new_text_part(f"{why}; its skills: {offered}")]))


def _arguments(message: Message, conversational: bool, kept: dict[str, Any]) -> dict[str, Any] | None:
    """The tool's arguments: text (and data) for an agent's skill; else the data part, or the
    text when it is a JSON object."""
    text = "\n".join(p.text for p in message.parts if p.HasField("text"))
    data = next((MessageToDict(p.data) for p in message.parts if p.HasField("data")), None)
    if conversational:
        arguments: dict[str, Any] = {"message": text}
        if isinstance(data, dict):
            arguments["data"] = data
        if kept.get("taskId"):
            arguments["taskId"] = kept["taskId"]
        if kept.get("contextId"):
            arguments["contextId"] = kept["contextId"]
        return arguments
    if isinstance(data, dict):
        whole: dict[str, Any] = _integers(data)
        return whole
    try:
        parsed = json.loads(text) if text.strip() else {}
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _integers(value: Any) -> Any:
    """Whole floats back to ints (protobuf's Value keeps every number as a double)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    return value


async def _finish(
    updater: TaskUpdater, skill: str, content: Any, structured: dict[str, Any] | None, is_error: bool
) -> None:
    """The task's artifacts and end state from the tool's result."""
    relayed = structured is not None and structured.get("state") in ENDED and "artifacts" in structured
    metadata: dict[str, Any] = {"skill": skill}
    if relayed:
        assert structured is not None
        metadata.update(taskId=structured.get("taskId", ""), contextId=structured.get("contextId", ""))
        for raw in structured["artifacts"]:
            artifact = Artifact()
            ParseDict(raw, artifact, ignore_unknown_fields=True)
            await updater.add_artifact(
                list(artifact.parts), artifact_id=artifact.artifact_id, name=artifact.name
            )
        state = ENDED[structured["state"]]
    else:
        parts = _parts(content)
        if structured is not None:
            parts.append(new_data_part(structured))
        if parts and not is_error:
            await updater.add_artifact(parts, name="result")
        state = TaskState.TASK_STATE_FAILED if is_error else TaskState.TASK_STATE_COMPLETED
    said = _said(content, structured, relayed, is_error)
    message = updater.new_agent_message([new_text_part(said)]) if said else None
    await updater.update_status(state, message, metadata={KEY: metadata})


def _said(content: Any, structured: dict[str, Any] | None, relayed: bool, is_error: bool) -> str:
    """The end state's message: an agent's question or why it ended; a tool's error."""
    texts = [str(b.get("text", "")) for b in content or () if isinstance(b, dict) and b.get("type") == "text"]
    if relayed and structured is not None:
        if structured.get("question"):
            return str(structured["question"])
        return "" if structured.get("state") == "completed" else (texts[-1] if texts else "")
    return "\n".join(t for t in texts if t)[:4000] if is_error else ""


def _parts(content: Any) -> list[Part]:
    parts: list[Part] = []
    for block in content or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(new_text_part(str(block.get("text", ""))))
        elif kind == "image":
            raw = base64.b64decode(str(block.get("data", "")))
            parts.append(Part(raw=raw, media_type=str(block.get("mimeType", "image/png"))))
        elif kind == "resource_link":
            parts.append(Part(url=str(block.get("uri", "")), media_type=str(block.get("mimeType", ""))))
        elif kind == "resource":
            parts.append(new_data_part(block.get("resource") or {}))
    return parts
