"""MCP servers as targets: remote ones over Streamable HTTP, local ones over stdio.

One client session per target, shared by every caller, opened with the `mcp`
SDK's client (``protocol: auto`` discovers the 2026-07-28 era and falls back to
the initialize handshake). Tools, resources, resource templates and prompts
are listed from the upstream; the upstream's list_changed notifications make
the catalog refresh and tell our own clients. Progress from the upstream is
relayed to the caller. Descriptions lose invisible and control characters,
and results are capped in size. A session that fails is reopened on the next
call (and the call is retried once when it is a list or read, never a tool
call that may already have run).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

import anyio
import httpx2
import mcp_types as types
import orjson
from anyio.abc import TaskGroup
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from gateway.config import McpTarget
from gateway.core.errors import (
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


def clean(text: str | None) -> str:
    """Text without invisible or control characters."""
    return _CONTROL.sub("", _INVISIBLE.sub("", text or ""))


def _first(exc: BaseException) -> BaseException:
    """The innermost first cause of an exception group (what actually went wrong)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


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
                ) as client:
                    # A fresh event: a failure reported against an earlier session must not end this one.
                    self._broken = anyio.Event()
                    self._client, self.failure, connected = client, None, True
                    self._wake()
                    await self._broken.wait()
            except Exception as exc:  # noqa: BLE001 - boundary: the upstream is down or broke the session
                if not connected:
                    self.failure = f"{type(exc).__name__}: {_first(exc)}"
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

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        client = await self._session()

        async def relay(progress: float, total: float | None, message: str | None) -> None:
            await ctx.channel.progress(progress, total, message)

        try:
            result = await client.call_tool(call.name, call.arguments, progress_callback=relay)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                raise await self._failed(exc, client) from None
            if exc.code == -32602 and "nknown tool" in exc.message:
                raise ToolNotFound(call.public_name or call.name) from None
            raise UpstreamError(f"MCP server {self._where()}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001 - boundary: no retry, the tool may have run
            raise await self._failed(exc, client) from None
        wire = _dump(result)
        size = len(orjson.dumps(wire))
        if size > self.config.max_result_bytes:
            raise ToolExecutionError(
                f"the result of {call.public_name or call.name} was {size} bytes, over this target's "
                f"max_result_bytes ({self.config.max_result_bytes}); ask for less"
            )
        return ToolResult(
            content=tuple(wire.get("content") or ()),
            structured=wire.get("structuredContent"),
            is_error=bool(wire.get("isError")),
        )

    async def read_resource(self, uri: str, ctx: CallContext) -> Sequence[JSON]:
        client = await self._session()
        try:
            result = await client.read_resource(uri)
        except MCPError as exc:
            raise RequestError(f"Resource {uri!r}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001 - boundary
            raise await self._failed(exc, client) from None
        return [_dump(c) for c in result.contents]

    async def get_prompt(self, name: str, arguments: Mapping[str, str], ctx: CallContext) -> JSON:
        client = await self._session()
        try:
            result = await client.get_prompt(name, dict(arguments))
        except MCPError as exc:
            raise RequestError(f"Prompt {name!r}: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001 - boundary
            raise await self._failed(exc, client) from None
        wire = _dump(result)
        wire.pop("resultType", None)
        wire.pop("_meta", None)
        return wire

    def problems(self) -> Sequence[str]:
        return [f"upstream failure: {self.failure}"] if self.failure else []
