"""Tasks on the MCP front: the 2026-07-28 tasks extension (``io.modelcontextprotocol/tasks``, SEP-2663).

A ``tools/call`` of a task-capable tool (``ToolSpec.task_support``) from a client that declared
the extension is answered with a task handle (``resultType: "task"``) instead of the result; the
call runs on in the front's task group, through the same ``LiveGateway.call`` as every call,
while the client polls ``tasks/get``, answers the task's questions with ``tasks/update`` and may
``tasks/cancel`` it (ADR 0038). A tool with ``ask_before_task`` asks its first questions through
``input_required`` rounds of the ``tools/call`` itself and becomes a task when it calls
``ctx.begin_task()``.

Every task belongs to the (tenant, gateway, subject) that created it: for any other caller it does
not exist (the same -32602 as an id never issued). Ids are random. Tasks are kept in this
process's memory for ``TTL_MS`` after they were created (a task still running then is cancelled).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import decode_header_value
from mcp_types import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
)
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from gateway.core.errors import (
    AuthError,
    InputRequired,
    InvalidArguments,
    RequestError,
)
from gateway.core.types import JSON, CallContext, ClientChannel, ToolResult
from gateway.hub import LiveGateway
from gateway.mcp.channel import MODERN, askable
from gateway.mcp.forms import result_to_wire, to_wire

logger = logging.getLogger(__name__)

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TTL_MS = 3_600_000
POLL_INTERVAL_MS = 500
MAX_TASKS_PER_CALLER = 1000
TERMINAL = frozenset({"completed", "failed", "cancelled"})
_SWEEP_SECONDS = 1.0

Owner = tuple[str, str, str]
"""Whose a task is: tenant, gateway, principal subject."""

# What an answer to each kind of question must be (validated on tasks/update, as MRTR answers are).
_ANSWERS: dict[str, tuple[type[BaseModel], ...]] = {
    "elicitation/create": (types.ElicitResult,),
    "sampling/createMessage": (types.CreateMessageResult, types.CreateMessageResultWithTools),
    "roots/list": (types.ListRootsResult,),
}


def declares_tasks(capabilities: Any) -> bool:
    """Whether a client's capabilities (the SDK's ClientCapabilities) declare the extension."""
    extensions = getattr(capabilities, "extensions", None)
    return isinstance(extensions, Mapping) and TASKS_EXTENSION in extensions


def missing_extension(message: str) -> MCPError:
    """-32021, with the data the extension specifies."""
    data: JSON = {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}
    return MCPError(MISSING_REQUIRED_CLIENT_CAPABILITY, message, data)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Task:
    """One task: its state as ``tasks/get`` shows it, and the questions it waits on."""

    def __init__(self, owner: Owner, scope: anyio.CancelScope) -> None:
        self.id = secrets.token_urlsafe(24)
        self.owner = owner
        self.scope = scope
        self.status = "working"
        self.message: str | None = None
        self.created = self.updated = _now()
        self.expires = anyio.current_time() + TTL_MS / 1000
        self.result: JSON | None = None
        self.error: JSON | None = None
        self.pending: dict[str, JSON] = {}  # the questions not answered yet, by key
        self.answers: dict[str, JSON] = {}  # answered, not yet taken by the question's asker
        self.used: set[str] = set()  # every key this task has asked under (never reused)
        self.waiters: list[tuple[frozenset[str], anyio.Event]] = []

    def _set(self, status: str, message: str | None = None) -> None:
        self.status, self.message, self.updated = status, message, _now()

    def handle(self) -> JSON:
        """The task's fields (CreateTaskResult without ``resultType``)."""
        out: JSON = {
            "taskId": self.id,
            "status": self.status,
            "createdAt": self.created,
            "lastUpdatedAt": self.updated,
            "ttlMs": TTL_MS,
            "pollIntervalMs": POLL_INTERVAL_MS,
        }
        if self.message:
            out["statusMessage"] = self.message
        return out

    def detailed(self) -> JSON:
        """``tasks/get``: the task with what its status carries inlined."""
        out = self.handle()
        if self.status == "input_required":
            out["inputRequests"] = dict(self.pending)
        elif self.status == "completed" and self.result is not None:
            out["result"] = self.result
        elif self.status == "failed" and self.error is not None:
            out["error"] = self.error
        return out

    async def ask(self, requests: Mapping[str, JSON]) -> dict[str, JSON]:
        """Wait, ``input_required``, until every question is answered through tasks/update."""
        keys: dict[str, str] = {}  # key on the wire -> the tool's key
        for key, request in requests.items():
            wire, n = key, 1
            while wire in self.used:  # a key is never reused within a task
                n += 1
                wire = f"{key}.{n}"
            self.used.add(wire)
            keys[wire] = key
            self.pending[wire] = {"method": request["method"], "params": dict(request.get("params") or {})}
        waiter = (frozenset(keys), anyio.Event())
        self.waiters.append(waiter)
        self._set("input_required")
        try:
            await waiter[1].wait()
        finally:  # (answered, or cancelled: either way these questions are no longer open)
            self.waiters.remove(waiter)
            got = {key: self.answers.pop(wire, None) for wire, key in keys.items()}
            for wire in keys:
                self.pending.pop(wire, None)
            if self.status == "input_required" and not self.pending:
                self._set("working")
        return {key: answer for key, answer in got.items() if answer is not None}

    def answer(self, responses: Mapping[str, Any]) -> None:
        """Take the answers to pending questions; other keys (unknown, answered) are ignored.

        Raises:
            MCPError: an answer is not what its question's method returns (nothing is taken).
        """
        if self.status in TERMINAL:
            return
        taken = {
            key: _valid_answer(self.pending[key]["method"], key, value)
            for key, value in responses.items()
            if key in self.pending
        }
        for key, value in taken.items():
            del self.pending[key]
            self.answers[key] = value
        for keys, event in self.waiters:
            if keys <= self.answers.keys():
                event.set()
        if taken:
            self._set("input_required" if self.pending else "working")

    def settle(self, outcome: JSON | BaseException | None) -> None:
        """End the task: a tool result, a JSON-RPC error, or (None) cancelled."""
        self.pending.clear()
        if outcome is None:
            self._set("cancelled", "The task was cancelled.")
        elif isinstance(outcome, dict):
            self.result = outcome
            self._set("completed")
        else:
            self.error = _error_of(outcome)
            self._set("failed", str(self.error["message"]))


def _valid_answer(method: str, key: str, value: Any) -> JSON:
    for model in _ANSWERS.get(method, ()):
        try:
            answer: JSON = model.model_validate(value).model_dump(
                by_alias=True, mode="json", exclude_none=True
            )
            return answer
        except ValidationError:
            continue
    raise MCPError(INVALID_PARAMS, f"inputResponses[{key!r}] is not an answer to {method}: see the request.")


def _error_of(exc: BaseException) -> JSON:
    if isinstance(exc, RequestError | AuthError):
        exc = to_wire(exc)
    if not isinstance(exc, MCPError):
        exc = MCPError(INTERNAL_ERROR, f"Internal error: {type(exc).__name__}")
    error: JSON = {"code": exc.code, "message": exc.message}
    if exc.data is not None:
        error["data"] = exc.data
    return error


class _Run:
    """One call that is, or may become, a task."""

    def __init__(self, table: TaskTable, owner: Owner) -> None:
        self.table = table
        self.owner = owner
        self.scope = anyio.CancelScope()
        self.task: Task | None = None
        self.ready = anyio.Event()  # the request can answer: a task began, or the call ended first
        self.outcome: JSON | BaseException | None = None

    async def begin(self) -> None:
        if self.task is None:
            self.task = self.table.add(self.owner, self.scope)
            self.ready.set()

    async def main(self, gw: LiveGateway, name: str, arguments: JSON | None, ctx: CallContext) -> None:
        outcome: JSON | BaseException | None = None
        with self.scope:
            try:
                outcome = result_to_wire(await gw.call(name, arguments, ctx))
            except InvalidArguments as exc:
                outcome = result_to_wire(ToolResult.error(str(exc)))
            except (RequestError, AuthError, InputRequired, MCPError) as exc:
                outcome = exc
            except Exception as exc:  # boundary: whatever ends the call is the task's outcome
                logger.exception("task call of %s failed unexpectedly", name)
                outcome = exc
        if self.task is None:  # ended before it became a task: the request answers it
            self.outcome = outcome
            self.ready.set()
        elif isinstance(outcome, InputRequired):  # (a task's questions wait in the task)
            self.task.settle(MCPError(INTERNAL_ERROR, "The tool asked outside its task."))
        else:
            self.task.settle(outcome)


class TaskChannel:
    """The channel of a call that is a task (or becomes one): questions wait in the task,
    progress and logs are dropped. Before a tool with ``ask_before_task`` begins its task,
    everything goes to the request's own channel."""

    def __init__(self, run: _Run, capabilities: Any, before: ClientChannel | None) -> None:
        self.run = run
        self.capabilities = capabilities  # as the client declared them on the creating request
        self.before = before
        self._asked = 0

    @property
    def _early(self) -> ClientChannel | None:
        return self.before if self.run.task is None else None

    def supports(self, capability: str) -> bool:
        found: object = self.capabilities
        for part in capability.split("."):
            found = getattr(found, part, None) if found is not None else None
        return found is not None

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if (early := self._early) is not None:
            await early.progress(progress, total, message)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        if (early := self._early) is not None:
            await early.log(level, data, logger)

    async def ask(self, requests: Mapping[str, JSON]) -> dict[str, JSON]:
        if (early := self._early) is not None:
            return await early.ask(requests)
        askable(requests, self.supports)
        task = self.run.task
        if task is None:  # (a call that is a task from its start has its task before it runs)
            raise MCPError(INTERNAL_ERROR, "The call asked before its task began.")
        return await task.ask(requests)

    def _key(self, key: str | None) -> str:
        self._asked += 1
        return key or f"q{self._asked}"

    async def elicit(self, message: str, requested_schema: JSON, *, key: str | None = None) -> JSON:
        if (early := self._early) is not None:
            return await early.elicit(message, requested_schema, key=key)
        k = self._key(key)
        params = {"mode": "form", "message": message, "requestedSchema": requested_schema}
        return (await self.ask({k: {"method": "elicitation/create", "params": params}}))[k]

    async def sample(self, request: JSON, *, key: str | None = None) -> JSON:
        if (early := self._early) is not None:
            return await early.sample(request, key=key)
        k = self._key(key)
        return (await self.ask({k: {"method": "sampling/createMessage", "params": request}}))[k]

    async def list_roots(self, *, key: str | None = None) -> JSON:
        if (early := self._early) is not None:
            return await early.list_roots(key=key)
        k = self._key(key)
        return (await self.ask({k: {"method": "roots/list", "params": {}}}))[k]


class TaskParams(types.RequestParams):
    """Params of tasks/get, tasks/update and tasks/cancel, taken leniently: the handlers check
    the client's capability before anything in them, and answers to unknown keys are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")
    task_id: Any = None
    input_responses: Any = None


OwnerOf = Callable[[ServerRequestContext[Any, Any]], Owner]
Handler = Callable[[ServerRequestContext[Any, Any], TaskParams], Awaitable[JSON]]


class TaskTable:
    """This process's tasks, and the front's handlers of the tasks methods."""

    def __init__(self, owner_of: OwnerOf) -> None:
        """``owner_of``: whose a request is (the front's gateway and principal)."""
        self.owner_of = owner_of
        self._tasks: dict[str, Task] = {}
        self._owned: dict[Owner, dict[str, Task]] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._swept = 0.0

    def bind(self, group: anyio.abc.TaskGroup | None) -> None:
        """Run tasks in ``group`` (the front's, which cancels them when the front stops)."""
        self._group = group

    # -- tools/call --------------------------------------------------------------------

    async def call_tool(
        self,
        ctx: ServerRequestContext[Any, Any],
        gw: LiveGateway,
        call_ctx: CallContext,
        name: str,
        arguments: JSON | None,
    ) -> JSON | None:
        """Run this tools/call as a task if it is to be one (its answer); None: an ordinary call.

        Raises:
            MCPError: -32021, a tool that runs only as a task called by a client without the
                extension.
            InvalidArguments: the arguments do not fit the tool (answered as an ordinary call).
        """
        entry = gw.catalog.snapshot.tools.get(name)
        if ctx.protocol_version < MODERN or entry is None or entry.spec.task_support == "forbidden":
            return None
        if gw.policy is not None and not gw.policy.visible(call_ctx.principal, [(name, entry.provider.id)]):
            return None  # refused as an ordinary call is, before anything starts
        capabilities = ctx.session.client_capabilities
        if not declares_tasks(capabilities):
            if entry.spec.task_support == "required":
                raise missing_extension(
                    f"Tool {name!r} runs only as a task: declare the {TASKS_EXTENSION} extension "
                    "in the client's capabilities."
                )
            return None
        gw.catalog.resolve(name, arguments)  # bad arguments are answered at once, not as a task
        return await self.start(gw, name, arguments, call_ctx, capabilities, entry.spec.ask_before_task)

    async def start(
        self,
        gw: LiveGateway,
        name: str,
        arguments: JSON | None,
        ctx: CallContext,
        capabilities: Any,
        ask_first: bool,
    ) -> JSON:
        """Start the call in the background; the task's handle once it is one (or the call's
        own answer when it ended before it began a task)."""
        if self._group is None:
            raise MCPError(INTERNAL_ERROR, "The MCP front is not running.")
        owner = (ctx.tenant, ctx.gateway, ctx.principal.subject)
        self._make_room(owner)
        run = _Run(self, owner)
        ctx.channel = TaskChannel(run, capabilities, ctx.channel if ask_first else None)
        if ask_first:
            ctx.task_hook = run.begin
        else:
            await run.begin()
        self._group.start_soon(run.main, gw, name, arguments, ctx)
        try:
            await run.ready.wait()
        except anyio.get_cancelled_exc_class():
            if run.task is None:
                run.scope.cancel()  # the client went away before there was a task to come back to
            raise
        if run.task is not None:
            return {"resultType": "task", **run.task.handle()}
        outcome = run.outcome
        if isinstance(outcome, RequestError | AuthError | InputRequired | MCPError):
            raise outcome  # answered as for an ordinary call (the front maps these)
        if outcome is None or isinstance(outcome, BaseException):
            raise MCPError(INTERNAL_ERROR, "Internal error: the call ended without a result.")
        return outcome

    # -- the table ---------------------------------------------------------------------

    def add(self, owner: Owner, scope: anyio.CancelScope) -> Task:
        task = Task(owner, scope)
        self._tasks[task.id] = task
        self._owned.setdefault(owner, {})[task.id] = task
        return task

    def _drop(self, task: Task) -> None:
        self._tasks.pop(task.id, None)
        owned = self._owned.get(task.owner)
        if owned is not None:
            owned.pop(task.id, None)
            if not owned:
                del self._owned[task.owner]

    def _sweep(self) -> None:
        now = anyio.current_time()
        if now - self._swept < _SWEEP_SECONDS:
            return
        self._swept = now
        for task in [t for t in self._tasks.values() if t.expires <= now]:
            task.scope.cancel()  # (past its ttl: a task still running ends)
            self._drop(task)

    def _make_room(self, owner: Owner) -> None:
        self._sweep()
        owned = self._owned.get(owner, {})
        if len(owned) < MAX_TASKS_PER_CALLER:
            return
        ended = next((t for t in owned.values() if t.status in TERMINAL), None)
        if ended is None:
            raise MCPError(
                INVALID_REQUEST,
                f"Too many tasks: this caller has {len(owned)} unfinished; wait for some to end "
                "or cancel them (tasks/cancel).",
            )
        self._drop(ended)  # the oldest ended task makes way

    def find(self, owner: Owner, task_id: str) -> Task:
        self._sweep()
        task = self._tasks.get(task_id)
        if task is None or task.owner != owner:  # another caller's task does not exist for this one
            raise MCPError(
                INVALID_PARAMS,
                f"Unknown task {task_id!r}: it never existed, expired, or lives on another server process.",
            )
        return task

    # -- the tasks methods -------------------------------------------------------------

    def handlers(self) -> list[tuple[str, type[TaskParams], Handler]]:
        """tasks/get, tasks/update and tasks/cancel (tasks/result and tasks/list are not in the
        2026-07-28 extension: unregistered, they are -32601)."""
        return [
            ("tasks/get", TaskParams, self._get),
            ("tasks/update", TaskParams, self._update),
            ("tasks/cancel", TaskParams, self._cancel),
        ]

    def _checked(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> Task:
        if ctx.protocol_version < MODERN:
            raise MCPError(METHOD_NOT_FOUND, "Method not found")
        if not declares_tasks(ctx.session.client_capabilities):
            raise missing_extension(
                f"{ctx.method} needs the {TASKS_EXTENSION} extension: declare it in the client's "
                "capabilities."
            )
        task_id = params.task_id
        if not isinstance(task_id, str) or not task_id:
            raise MCPError(INVALID_PARAMS, f"{ctx.method} needs params.taskId, the id of a task (a string).")
        header = ctx.request.headers.get("mcp-name") if ctx.request is not None else None
        if decode_header_value(header) != task_id:
            raise MCPError(HEADER_MISMATCH, "Mcp-Name header does not match the request's params.taskId")
        return self.find(self.owner_of(ctx), task_id)

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> JSON:
        return self._checked(ctx, params).detailed()

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> JSON:
        task = self._checked(ctx, params)
        responses = params.input_responses
        if responses is not None and not isinstance(responses, dict):
            raise MCPError(
                INVALID_PARAMS, "tasks/update: inputResponses must be an object of answers by key."
            )
        task.answer(responses or {})
        return {}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> JSON:
        task = self._checked(ctx, params)
        if task.status not in TERMINAL:
            task.scope.cancel()  # cooperative: the task ends cancelled once the call stops
        return {}
