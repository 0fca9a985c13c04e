"""One client session to an upstream MCP server, kept open by a task of its own.

The `mcp` SDK's ``Client`` holds task groups that must be entered and left by one
task, so a keeper task owns the session and opens it again when a caller reports
it broken. Questions the upstream asks (elicitation, sampling) and its log lines
go to the downstream call they belong to (see ``Link.relayed``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from gateway.config import McpTarget
from gateway.core.errors import (
    InputRequired,
    MissingClientCapability,
    ToolNotFound,
    UpstreamError,
    UpstreamUnavailable,
)
from gateway.core.types import JSON, CallContext
from gateway.egress import Reach
from gateway.providers._sandboxed_stdio import sandboxed_stdio
from sandbox import Sandbox

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


class Link:
    """A session to the upstream with one set of credentials (the target's, or one user's).

    Args:
        config: The target.
        headers: HTTP headers for a remote server (credentials included).
        env: Extra environment for a local server.
        on_change: Called when the upstream says its lists changed (None: not listened for).
    """

    def __init__(
        self,
        config: McpTarget,
        *,
        headers: Mapping[str, str],
        env: Mapping[str, str],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.id = config.name
        self.headers = dict(headers)
        self.env = dict(env)
        self.on_change = on_change
        self.reach: Reach | None = None  # a tenant's target: every connection checked (set before run)
        # A sandboxed local server: how its sandbox is made (with this link's environment), and the
        # sandbox, made on the first connection and kept across reconnections until the link closes.
        self.make_box: (
            Callable[[Mapping[str, str]], Awaitable[tuple[Sandbox, list[str], Callable[[], None]]]] | None
        ) = None  # -> the sandbox, the command line to run in it, what closes what came with it
        self.box: Sandbox | None = None
        self._boxed: tuple[list[str], Callable[[], None]] | None = None
        self.failure: str | None = None
        self.last_used = time.monotonic()
        self._client: Client | None = None
        self._scope: anyio.CancelScope | None = None
        self._need = anyio.Event()  # a caller wants a session
        self._broken = anyio.Event()  # a caller saw the session fail
        self._waiters: list[anyio.Event] = []
        self._lock = anyio.Lock()
        self._calls: set[_Call] = set()
        self.closed = False

    @property
    def busy(self) -> bool:
        """In use: a call in flight, or a caller waiting for the session to open."""
        return bool(self._calls) or bool(self._waiters) or self._lock.locked()

    async def run(self) -> None:
        """The keeper: run this in a task group; ``close`` ends it (even before it starts)."""
        try:
            with anyio.CancelScope() as self._scope:
                if self.closed:
                    self._scope.cancel()
                await self._keeper()
        finally:
            self._wake()  # whoever still waits hears that no session is coming
            box, self.box = self.box, None
            boxed, self._boxed = self._boxed, None
            if box is not None:
                with anyio.CancelScope(shield=True):
                    await box.stop()
            if boxed is not None:
                boxed[1]()

    def close(self) -> None:
        self.closed = True
        if self._scope is not None:
            self._scope.cancel()

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        c = self.config
        if c.command is not None and self.make_box is not None:
            # In a sandbox: bwrap dies with the gateway (--die-with-parent); what the server sees of
            # the environment is only what the sandbox sets (the link's variables among them).
            if self.box is None:
                self.box, command, close = await self.make_box(self.env)
                self._boxed = (command, close)
            assert self._boxed is not None
            argv = self.box.command_line(self._boxed[0])
            return sandboxed_stdio(argv, c.max_result_bytes + 65536, self.id)
        if c.command is not None:
            # Through the reaper, so the server dies with the gateway even on kill -9. Its
            # environment is the SDK's minimal default (PATH, HOME, ...) plus what the target
            # names: never the gateway's own variables (vault key, database URL, cloud keys).
            return StdioServerParameters(
                command=sys.executable,
                args=["-m", "gateway.providers._reaper", *c.command],
                env=dict(self.env) or None,
                cwd=c.cwd,
            )
        assert c.url is not None
        guarded = self.reach
        if c.transport == "sse":
            if guarded is None:
                return sse_client(c.url, headers=self.headers or None, timeout=min(c.timeout_seconds, 30.0))

            def checked_client(
                headers: dict[str, str] | None = None,
                timeout: httpx2.Timeout | None = None,
                auth: httpx2.Auth | None = None,
            ) -> httpx2.AsyncClient:  # the SDK's client, but every connection's address checked
                default = httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT)
                return httpx2.AsyncClient(
                    headers=headers, timeout=timeout or default, auth=auth, transport=guarded.transport()
                )

            return sse_client(
                c.url,
                headers=self.headers or None,
                timeout=min(c.timeout_seconds, 30.0),
                httpx_client_factory=checked_client,
            )
        if not self.headers and guarded is None:
            return c.url  # the SDK's own client, with its recommended timeouts
        timeout = httpx2.Timeout(c.timeout_seconds, connect=10.0)
        transport = guarded.transport() if guarded is not None else None
        # Ours to close: the SDK leaves a client it was given open.
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=self.headers, timeout=timeout, transport=transport)
        )
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
                async with (
                    contextlib.AsyncExitStack() as stack,
                    Client(
                        await self._transport(stack),
                        mode="legacy" if self.config.transport == "sse" else self.config.protocol,
                        message_handler=self._message,
                        read_timeout_seconds=self.config.timeout_seconds,
                        cache=None,
                        elicitation_callback=self._elicit,
                        sampling_callback=self._sample,
                        logging_callback=self._log,
                        log_level="debug",  # 2026 era: opt in; each caller's own level filters
                    ) as client,
                ):
                    # A fresh event: a failure reported against an earlier session must not end this one.
                    self._broken = anyio.Event()
                    self._client, self.failure, connected = client, None, True
                    self._wake()
                    async with anyio.create_task_group() as tg:
                        if client.protocol_version >= MODERN and self.on_change is not None:
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

    async def session(self) -> Client:
        self.last_used = time.monotonic()
        client = self._client
        if client is not None:
            return client
        async with self._lock:
            if self._client is not None:
                return self._client
            if self.closed:
                raise UpstreamUnavailable(f"MCP server {self.where()}: this session was closed")
            done = anyio.Event()
            self._waiters.append(done)
            self._need.set()
            with anyio.move_on_after(self.config.timeout_seconds):
                await done.wait()
            if self._client is None:
                if self.closed:
                    reason = "the session was closed while it opened"
                else:
                    reason = self.failure or f"no session within {self.config.timeout_seconds}s"
                raise UpstreamUnavailable(f"MCP server {self.where()} is not reachable: {reason}")
            return self._client

    def where(self) -> str:
        return self.config.url or " ".join(self.config.command or [])

    async def failed(self, exc: BaseException, client: Client) -> UpstreamUnavailable:
        exc = _first(exc)
        self.failure = f"{type(exc).__name__}: {exc}"
        if self._client is client:
            self._client = None
            self._broken.set()  # the keeper closes this session; the next caller gets a new one
        return UpstreamUnavailable(f"MCP server {self.where()} failed: {self.failure}")

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

    async def relayed(self, ctx: CallContext, what: str, run: Any) -> Any:
        """Run ``run(client)`` as a call of ``ctx``'s: its questions reach that caller.

        Errors become the gateway's: a caller's pending answer (2026-era downstream) ends
        the call as ``InputRequired``; a refusal from the upstream is an ``UpstreamError``
        (``-32602`` unknown tool: ``ToolNotFound``); a broken session is reported and
        reopened for the next caller (never retried here: a tool may already have run).
        """
        client = await self.session()
        self.last_used = time.monotonic()
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
            raise await self.failed(group, client) from None
        except InputRequired:
            raise
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                raise await self.failed(exc, client) from None
            if exc.code == -32602 and "nknown tool" in exc.message:
                raise ToolNotFound(what) from None
            raise UpstreamError(f"MCP server {self.where()}: {what}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001 - boundary: the session broke
            raise await self.failed(exc, client) from None
        finally:
            self._calls.discard(call)
            _CURRENT.reset(token)
            if call.escalated is not None:  # the channel ended the call from a reader task
                raise call.escalated

    async def _all(self, fetch: Any, key: str) -> list[Any]:
        items: list[Any] = []
        cursor = None
        while True:
            page = await fetch(cursor=cursor)
            items.extend(getattr(page, key))
            cursor = page.next_cursor
            if not cursor or len(items) > 10_000:
                return items

    async def listing(self, method: str, key: str) -> list[Any]:
        for attempt in range(2):
            client = await self.session()
            try:
                return await self._all(getattr(client, method), key)
            except MCPError as exc:
                if exc.code == -32601:  # the server has no such list
                    return []
                if exc.code == CONNECTION_CLOSED:
                    failure = await self.failed(exc, client)
                    if attempt:
                        raise failure from None
                    continue
                raise UpstreamError(f"MCP server {self.where()} refused {method}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - boundary: a broken session is reopened once
                failure = await self.failed(exc, client)
                if attempt:
                    raise failure from None
        return []
