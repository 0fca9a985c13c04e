"""MCP servers as targets: remote ones over Streamable HTTP, local ones over stdio.

One client session per target, shared by every caller, opened with the `mcp`
SDK's client (``protocol: auto`` discovers the 2026-07-28 era and falls back to
the initialize handshake). Tools, resources, resource templates and prompts
are listed from the upstream; the upstream's list_changed notifications make
the catalog refresh and tell our own clients. Progress from the upstream is
relayed to the caller, and so are the upstream's questions (elicitation and
sampling, whether it asks them as 2025-era server requests or as 2026-07-28
``input_required`` results): they go to the client that made the call, in that
client's own era, and its answer goes back. A question is attributed to the
call it belongs to (in the 2026 era it runs inside that call; in the 2025 era
it is the call in flight on the session); one that cannot be attributed is
refused to the upstream, never shown to another caller. Descriptions lose
invisible and control characters, and results are capped in size. A session that fails is reopened on the next
call (and the call is retried once when it is a list or read, never a tool
call that may already have run).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

import anyio
import anyio.lowlevel
import httpx2
import mcp_types as types
import orjson
from anyio.abc import TaskGroup
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from gateway.config import McpTarget
from gateway.core.errors import (
    InputRequired,
    MissingClientCapability,
    RequestError,
    ToolExecutionError,
    ToolNotFound,
    UpstreamError,
    UpstreamUnavailable,
)
from gateway.core.provider import PromptSpec, ResourceSpec, ResourceTemplateSpec, ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec

# Zero-width, bidirectional-override and other invisible characters, and C0/C1 controls but
# tab and newline: text a model reads but a person reviewing the tool does not see.
_INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\U000e0000-\U000e007f]"
)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


logger = logging.getLogger(__name__)
MODERN = "2026-07-28"


@dataclass(eq=False)
class _Call:
    """A downstream request in flight on the upstream session (what its questions go to)."""

    ctx: CallContext
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    asked: int = 0
    escalated: Exception | None = None
    forwarding: list[anyio.Event] = field(default_factory=list)

    def escalate(self, exc: Exception) -> None:
        """End the call with ``exc`` raised in its own task (the channel raised it elsewhere)."""
        if self.escalated is None:
            self.escalated = exc
        self.scope.cancel()

    async def flushed(self) -> None:
        """Wait (briefly) for notifications of this call still being forwarded."""
        await anyio.lowlevel.checkpoint()
        with anyio.move_on_after(1.0):
            for done in self.forwarding:
                await done.wait()


_CURRENT: ContextVar[_Call | None] = ContextVar("switchboard_mcp_call", default=None)


def clean(text: str | None) -> str:
    """Text without invisible or control characters."""
    return _CONTROL.sub("", _INVISIBLE.sub("", text or ""))


def _first(exc: BaseException) -> BaseException:
    """The innermost first cause of an exception group (what actually went wrong)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _merged(pending: Sequence[BaseException]) -> InputRequired:
    """One round's questions, asked of the client together."""
    requests: dict[str, dict[str, Any]] = {}
    answered: dict[str, Any] = {}
    for p in pending:
        assert isinstance(p, InputRequired)
        requests.update(p.requests)
        answered.update(p.answered)
    return InputRequired(requests, answered)


def _dump(model: Any) -> JSON:
    out: JSON = model.model_dump(by_alias=True, mode="json", exclude_none=True)
    return out


class McpProvider(ToolProvider):
    """Serves a ``kind: mcp`` target."""

    kind: ClassVar[str] = "mcp"

    def __init__(self, config: McpTarget, *, gateway: str = "default") -> None:
        super().__init__(config.name)
        self.config = config
        self.failure: str | None = None
        self._client: Client | None = None
        self._tg: TaskGroup | None = None
        self._need = anyio.Event()  # a caller wants a session
        self._broken = anyio.Event()  # a caller saw the session fail
        self._waiters: list[anyio.Event] = []
        self._lock = anyio.Lock()
        self._calls: set[_Call] = set()

    async def __aenter__(self) -> Self:
        # The session lives in a task of its own (the keeper): a client session holds task
        # groups, which must be entered and left by one task, and it is reopened from there.
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._keeper)
        with contextlib.suppress(UpstreamUnavailable):
            await self._session()  # if it fails: unavailable until it answers; the other targets go on
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    # -- the session ---------------------------------------------------------------------

    def _transport(self) -> Any:
        c = self.config
        if c.command is not None:
            env = {**os.environ, **c.env} if c.env else None
            # Through the reaper, so the server dies with the gateway even on kill -9.
            return StdioServerParameters(
                command=sys.executable,
                args=["-m", "gateway.providers._reaper", *c.command],
                env=env,
                cwd=c.cwd,
            )
        assert c.url is not None
        if not c.headers:
            return c.url  # the SDK's own client, with its recommended timeouts
        http = httpx2.AsyncClient(headers=c.headers, timeout=httpx2.Timeout(c.timeout_seconds, connect=10.0))
        return streamable_http_client(c.url, http_client=http)

    async def _message(self, message: Any) -> None:
        if isinstance(
            message,
            types.ToolListChangedNotification
            | types.PromptListChangedNotification
            | types.ResourceListChangedNotification,
        ):
            self.changed()

    async def _listen(self, client: Client) -> None:
        """2026 era: list changes arrive on a ``subscriptions/listen`` stream, kept open."""
        while True:
            try:
                async with client.listen(
                    tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True
                ) as events:
                    async for _ in events:
                        self.changed()
            except MCPError as exc:
                if exc.code == -32601:
                    return  # the server offers no change events
                logger.info("MCP server %s: change events stopped: %s", self.id, exc)
            except Exception as exc:  # noqa: BLE001 - boundary: the stream dropped
                logger.info("MCP server %s: change events stopped: %s", self.id, exc)
            await anyio.sleep(1.0)
            self.changed()  # no replay after a drop: refetch in case something changed meanwhile

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()

    async def _keeper(self) -> None:
        while True:
            await self._need.wait()
            self._need = anyio.Event()
            connected = False
            try:
                async with Client(
                    self._transport(),
                    mode=self.config.protocol,
                    message_handler=self._message,
                    read_timeout_seconds=self.config.timeout_seconds,
                    cache=None,
                    elicitation_callback=self._elicit,
                    sampling_callback=self._sample,
                    logging_callback=self._log,
                    log_level="debug",  # 2026 era: opt in; each caller's own level filters
                ) as client:
                    # A fresh event: a failure reported against an earlier session must not end this one.
                    self._broken = anyio.Event()
                    self._client, self.failure, connected = client, None, True
                    self._wake()
                    async with anyio.create_task_group() as tg:
                        if client.protocol_version >= MODERN:
                            tg.start_soon(self._listen, client)
                        await self._broken.wait()
                        tg.cancel_scope.cancel()
            except Exception as exc:  # noqa: BLE001 - boundary: the upstream is down or broke the session
                if not connected:
                    inner = _first(exc)
                    self.failure = f"{type(inner).__name__}: {inner}"
            finally:
                self._client = None
                if not connected:
                    self._wake()  # callers waiting for this attempt hear that it failed

    async def _session(self) -> Client:
        client = self._client
        if client is not None:
            return client
        async with self._lock:
            if self._client is not None:
                return self._client
            done = anyio.Event()
            self._waiters.append(done)
            self._need.set()
            with anyio.move_on_after(self.config.timeout_seconds):
                await done.wait()
            if self._client is None:
                reason = self.failure or f"no session within {self.config.timeout_seconds}s"
                raise UpstreamUnavailable(f"MCP server {self._where()} is not reachable: {reason}")
            return self._client

    def _where(self) -> str:
        return self.config.url or " ".join(self.config.command or [])

    async def _failed(self, exc: BaseException, client: Client) -> UpstreamUnavailable:
        exc = _first(exc)
        self.failure = f"{type(exc).__name__}: {exc}"
        if self._client is client:
            self._client = None
            self._broken.set()  # the keeper closes this session; the next caller gets a new one
        return UpstreamUnavailable(f"MCP server {self._where()} failed: {self.failure}")

    # -- questions from the upstream -------------------------------------------------------

    def _attributed(self) -> _Call | None:
        # 2026 era: the SDK answers input_required inside the caller's task. 2025 era: the
        # request arrives on the session's reader, so it belongs to the one call in flight.
        call = _CURRENT.get()
        if call is not None and call not in self._calls:
            call = None  # a context captured by an earlier call that has ended
        if call is None and len(self._calls) == 1:
            call = next(iter(self._calls))
        return call

    async def _ask(self, context: ClientRequestContext, method: str, params: JSON) -> JSON | types.ErrorData:
        call = self._attributed()
        if call is None:
            return types.ErrorData(
                code=types.INVALID_REQUEST,
                message=f"{method} cannot be relayed: it is not tied to exactly one call in flight "
                "through the gateway",
            )
        # 2026 era: the SDK's input_required driver runs this inside the call's own task, and
        # whatever the channel raises ends the call there. 2025 era: this answers a server
        # request from the session's reader, so the call is ended from here instead.
        in_task = (context.session.protocol_version or "") >= MODERN
        call.asked += 1
        # Keys are stable across rounds so a 2026-era client's answers find their question again.
        key = f"{self.id}.{context.request_id if in_task else call.asked}"
        try:
            answers = await call.ctx.channel.ask({key: {"method": method, "params": params}})
        except MissingClientCapability as exc:
            return types.ErrorData(code=types.INVALID_REQUEST, message=str(exc))
        except Exception as exc:
            if in_task:  # ends the call from inside it (InputRequired: the caller answers and retries)
                if not isinstance(exc, InputRequired) and call.escalated is None:
                    call.escalated = exc  # the SDK wraps it in a group: keep what to re-raise
                raise
            call.escalate(exc)  # on the reader: end the upstream call, then the caller's round
            return types.ErrorData(code=types.INVALID_REQUEST, message="the request was cancelled")
        return answers[key]

    async def _elicit(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        answer = await self._ask(context, "elicitation/create", _dump(params))
        return answer if isinstance(answer, types.ErrorData) else types.ElicitResult.model_validate(answer)

    async def _sample(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.ErrorData:
        answer = await self._ask(context, "sampling/createMessage", _dump(params))
        if isinstance(answer, types.ErrorData):
            return answer
        return types.CreateMessageResult.model_validate(answer)

    async def _log(self, params: types.LoggingMessageNotificationParams) -> None:
        call = self._attributed()
        if call is None:
            logger.info("MCP server %s (%s): %s", self.id, params.level, params.data)
            return
        # The SDK hands notifications to tasks of their own, racing the call's response:
        # the call waits for this before it answers, so the line reaches the client first.
        done = anyio.Event()
        call.forwarding.append(done)
        try:
            await call.ctx.channel.log(params.level, params.data, params.logger or self.id)
        except Exception as exc:  # noqa: BLE001 - the channel cannot send from here: the call must hear it
            call.escalate(exc)
        finally:
            done.set()

    # -- lists ---------------------------------------------------------------------------

    async def _all(self, fetch: Any, key: str) -> list[Any]:
        items: list[Any] = []
        cursor = None
        while True:
            page = await fetch(cursor=cursor)
            items.extend(getattr(page, key))
            cursor = page.next_cursor
            if not cursor or len(items) > 10_000:
                return items

    async def _listing(self, method: str, key: str) -> list[Any]:
        for attempt in range(2):
            client = await self._session()
            try:
                return await self._all(getattr(client, method), key)
            except MCPError as exc:
                if exc.code == -32601:  # the server has no such list
                    return []
                if exc.code == CONNECTION_CLOSED:
                    failure = await self._failed(exc, client)
                    if attempt:
                        raise failure from None
                    continue
                raise UpstreamError(f"MCP server {self._where()} refused {method}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - boundary: a broken session is reopened once
                failure = await self._failed(exc, client)
                if attempt:
                    raise failure from None
        return []

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return [
            ToolSpec(
                name=t.name,
                description=clean(t.description),
                title=clean(t.title) or None,
                input_schema=t.input_schema,
                output_schema=t.output_schema,
                annotations=_dump(t.annotations) if t.annotations else None,
            )
            for t in await self._listing("list_tools", "tools")
        ]

    async def list_resources(self, ctx: CallContext) -> Sequence[ResourceSpec]:
        return [
            ResourceSpec(
                uri=str(r.uri),
                name=r.name,
                title=clean(r.title) or None,
                description=clean(r.description) or None,
                mime_type=r.mime_type,
            )
            for r in await self._listing("list_resources", "resources")
        ]

    async def list_resource_templates(self, ctx: CallContext) -> Sequence[ResourceTemplateSpec]:
        return [
            ResourceTemplateSpec(
                uri_template=t.uri_template,
                name=t.name,
                title=clean(t.title) or None,
                description=clean(t.description) or None,
                mime_type=t.mime_type,
            )
            for t in await self._listing("list_resource_templates", "resource_templates")
        ]

    async def list_prompts(self, ctx: CallContext) -> Sequence[PromptSpec]:
        return [
            PromptSpec(
                name=p.name,
                title=clean(p.title) or None,
                description=clean(p.description) or None,
                arguments=tuple(_dump(a) for a in p.arguments or ()),
            )
            for p in await self._listing("list_prompts", "prompts")
        ]

    # -- calls ---------------------------------------------------------------------------

    async def _relayed(self, ctx: CallContext, what: str, run: Any) -> Any:
        """Run ``run(client)`` as a call of ``ctx``'s: its questions reach that caller.

        Errors become the gateway's: a caller's pending answer (2026-era downstream) ends
        the call as ``InputRequired``; a refusal from the upstream is an ``UpstreamError``
        (``-32602`` unknown tool: ``ToolNotFound``); a broken session is reported and
        reopened for the next caller (never retried here: a tool may already have run).
        """
        client = await self._session()
        call = _Call(ctx)
        token = _CURRENT.set(call)
        self._calls.add(call)
        try:
            with call.scope:
                result = await run(client)
                await call.flushed()
                return result
        except BaseExceptionGroup as group:  # several questions in one 2026-era round
            leaves = _leaves(group)
            if leaves and all(isinstance(e, InputRequired) for e in leaves):
                raise _merged(leaves) from None
            raise await self._failed(group, client) from None
        except InputRequired:
            raise
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                raise await self._failed(exc, client) from None
            if exc.code == -32602 and "nknown tool" in exc.message:
                raise ToolNotFound(what) from None
            raise UpstreamError(f"MCP server {self._where()}: {what}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001 - boundary: the session broke
            raise await self._failed(exc, client) from None
        finally:
            self._calls.discard(call)
            _CURRENT.reset(token)
            if call.escalated is not None:  # the channel ended the call from a reader task
                raise call.escalated

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        async def relay(progress: float, total: float | None, message: str | None) -> None:
            await ctx.channel.progress(progress, total, message)

        async def run(client: Client) -> types.CallToolResult:
            return await client.call_tool(call.name, call.arguments, progress_callback=relay)

        name = call.public_name or call.name
        wire = _dump(await self._relayed(ctx, name, run))
        size = len(orjson.dumps(wire))
        if size > self.config.max_result_bytes:
            raise ToolExecutionError(
                f"the result of {name} was {size} bytes, over this target's "
                f"max_result_bytes ({self.config.max_result_bytes}); ask for less"
            )
        return ToolResult(
            content=tuple(wire.get("content") or ()),
            structured=wire.get("structuredContent"),
            is_error=bool(wire.get("isError")),
        )

    async def read_resource(self, uri: str, ctx: CallContext) -> Sequence[JSON]:
        async def run(client: Client) -> types.ReadResourceResult:
            return await client.read_resource(uri)

        try:
            result = await self._relayed(ctx, f"resource {uri!r}", run)
        except UpstreamError as exc:
            raise RequestError(str(exc)) from None
        return [_dump(c) for c in result.contents]

    async def get_prompt(self, name: str, arguments: Mapping[str, str], ctx: CallContext) -> JSON:
        async def run(client: Client) -> types.GetPromptResult:
            return await client.get_prompt(name, dict(arguments))

        try:
            result = await self._relayed(ctx, f"prompt {name!r}", run)
        except UpstreamError as exc:
            raise RequestError(str(exc)) from None
        wire = _dump(result)
        wire.pop("resultType", None)
        wire.pop("_meta", None)
        return wire

    async def complete(self, ref: JSON, argument: JSON, context: JSON | None, ctx: CallContext) -> JSON:
        client = await self._session()
        typed_ref: types.ResourceTemplateReference | types.PromptReference = (
            types.PromptReference.model_validate(ref)
            if ref.get("type") == "ref/prompt"
            else types.ResourceTemplateReference.model_validate(ref)
        )
        try:
            result = await client.complete(
                typed_ref,
                {str(argument.get("name", "")): str(argument.get("value", ""))},
                dict((context or {}).get("arguments") or {}) or None,
            )
        except MCPError:
            return {"values": [], "hasMore": False}
        except Exception as exc:  # noqa: BLE001 - boundary
            raise await self._failed(exc, client) from None
        return _dump(result.completion)

    def problems(self) -> Sequence[str]:
        return [f"upstream failure: {self.failure}"] if self.failure else []
