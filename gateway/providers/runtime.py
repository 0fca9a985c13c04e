"""Hosted agents as a gateway target (``kind: runtime``, ADR 0039): an MCP server deployed to the
runtime serves its tools through the gateway; an HTTP agent becomes one tool, ``invoke_{runtime}``,
that other agents call through the gateway.

Every caller's calls run in a runtime session of their own, whose id is a hash of the tenant, the
target, the caller's subject and their MCP session: two callers never share a sandbox, and one
caller's calls reach the same sandbox (its files, its app's memory) until the runtime ends the
session (idle, or too old); the next call then starts a new one. An MCP server is reached through
its session's socket with the mcp SDK's client, one client per live session (AgentCore's contract
makes the server stateless, so a client made for a new session just works). Its tools are listed
in a session of the target's own, ended once they are read; a version's list is kept, versions
never change. A new version (a deploy, an endpoint moved) is noticed by looking every few seconds,
and clients hear list_changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

import anyio
import httpx
import httpx2
import mcp_types as types
import orjson
from anyio.abc import TaskGroup
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from gateway.config import McpTarget, RuntimeTarget
from gateway.core.errors import (
    SandboxError,
    ToolExecutionError,
    ToolNotFound,
    UpstreamError,
    UpstreamUnavailable,
)
from gateway.core.provider import ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec
from gateway.providers._mcp_link import Link, _dump, _first
from gateway.providers._results import from_json_payload
from gateway.providers.mcp import clean, tool_spec
from gateway.runtimes import Caller, Runtimes
from runtime import SESSION_HEADER, AtCapacity, DeployError, EndpointError, Session, SessionError, Version

WATCH_SECONDS = 2.0  # how often the target looks for a new version of its runtime
KEPT_LISTS = 8  # versions whose tool lists are remembered
INVOKE_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "description": 'Sent to the agent as {"prompt": ...}.'},
        "payload": {
            "type": "object",
            "description": "The JSON payload the agent's entrypoint receives (instead of a prompt).",
        },
    },
    "additionalProperties": False,
}


class RuntimeProvider(ToolProvider):
    """Serves one ``kind: runtime`` target, for the tenant whose gateway names it."""

    kind: ClassVar[str] = "runtime"

    def __init__(self, config: RuntimeTarget, *, gateway: str = "default") -> None:
        super().__init__(config.name)
        self.config = config
        self.gateway = gateway
        self.qualifier = str(config.version) if config.version is not None else config.endpoint
        # What the MCP client's keeper reads (its deadline, how it connects); ``where`` names the
        # session instead of this address, which only ever names the session's socket.
        self.link_config = McpTarget(
            name=config.name,
            kind="mcp",
            url="http://127.0.0.1:8000/mcp",
            timeout_seconds=config.timeout_seconds,
            max_result_bytes=config.max_result_bytes,
        )
        self.tenant: str | None = None  # the gateway's tenant (told by the first listing)
        self.shown: str | None = None  # the version whose tools were listed last
        self.failure: str | None = None
        self.listed: dict[str, list[ToolSpec]] = {}  # a version's tag -> its tools
        self.links: dict[tuple[str, str], _SessionLink] = {}  # (tenant, session id) -> its client
        self._held: set[_SessionLink] = set()  # clients holding a descriptor of a session's home
        self._listing = anyio.Lock()
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        if self.runtimes is not None:
            self._tg.start_soon(self._watch)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """The clients close; the sessions stay the runtime's, ended when idle (another provider
        of the same target, after a change, finds its callers' sessions again)."""
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        self.links.clear()
        for link in list(self._held):  # (a client whose task never ran)
            link.release()

    # -- which version, which session ---------------------------------------------------------

    def _hosted(self) -> Runtimes:
        if self.runtimes is None:
            raise UpstreamUnavailable(f"target {self.id!r}: this process hosts no agents")
        hosted: Runtimes = self.runtimes
        return hosted

    def _id(self, *parts: str) -> str:
        """A runtime session id (AgentCore's: 33 to 256 letters, digits, '-', '_') for ``parts``."""
        whose = (self.gateway, self.id, self.config.runtime, self.qualifier, *parts)
        return "gateway-" + hashlib.sha256("\0".join(whose).encode()).hexdigest()

    def _listing_id(self, tenant: str) -> str:
        return self._id("list", tenant)

    def _caller_id(self, ctx: CallContext) -> str:
        return self._id("call", ctx.tenant, ctx.principal.subject, ctx.session_id or "")

    def _version(self, tenant: str, session_id: str) -> Version:
        """The version ``session_id`` runs (its live session's, else the endpoint's choice)."""
        try:
            return self._hosted().choose(tenant, self.config.runtime, self.qualifier, session_id)
        except (DeployError, EndpointError) as exc:
            raise UpstreamUnavailable(f"target {self.id!r} (tenant {tenant!r}): {exc}") from None

    def _served(self, version: Version) -> None:
        if version.protocol not in ("MCP", "HTTP"):
            raise UpstreamError(
                f"target {self.id!r}: {version.tag} is an {version.protocol} agent, which a runtime "
                "target does not serve: it serves MCP servers and HTTP agents"
            )

    async def _session(
        self, version: Version, session_id: str, tenant: str, user: str | None = None
    ) -> Session:
        hosted = self._hosted()
        if hosted.sessions is None:
            raise SandboxError(f"hosted agents cannot run here: {hosted.problem}")
        try:
            return await hosted.sessions.session(version, session_id, owner=tenant, user=user)
        except AtCapacity as exc:
            raise UpstreamUnavailable(str(exc)) from None
        except SessionError as exc:
            raise SandboxError(f"target {self.id!r}: {exc}") from None

    # -- lists --------------------------------------------------------------------------------

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        if self.runtimes is None:
            return ()  # (a hub that only checks the configuration: no sandbox is started there)
        self.tenant = ctx.tenant
        async with self._listing:  # (one listing session at a time: each ends it when done)
            try:
                found = await self._tools(ctx.tenant)
            except ToolExecutionError as exc:
                self.failure = exc.message
                raise
        self.failure = None
        return found

    async def _tools(self, tenant: str) -> Sequence[ToolSpec]:
        self.shown = None
        version = self._version(tenant, self._listing_id(tenant))
        self.shown = version.tag
        self._served(version)
        if version.protocol == "HTTP":
            return [self._invoke_spec(version)]
        found = self.listed.get(version.tag)
        if found is None:
            found = self.listed[version.tag] = await self._list(version, tenant)
            while len(self.listed) > KEPT_LISTS:
                self.listed.pop(next(iter(self.listed)))
        return found

    async def _list(self, version: Version, tenant: str) -> list[ToolSpec]:
        """The tools of ``version``'s server, read in a session of the target's own, then ended."""
        session_id, timeout = self._listing_id(tenant), self.config.timeout_seconds
        session = await self._session(version, session_id, tenant)
        tools: list[types.Tool] = []
        try:
            with _held(session) as fd, anyio.fail_after(timeout):
                async with contextlib.AsyncExitStack() as stack:
                    client = await stack.enter_async_context(
                        Client(await _streams(stack, fd, session, timeout))
                    )
                    cursor = None
                    while True:
                        page = await client.list_tools(cursor=cursor)
                        tools.extend(page.tools)
                        cursor = page.next_cursor
                        if not cursor or len(tools) > 10_000:
                            break
        except TimeoutError:
            raise UpstreamUnavailable(
                f"target {self.id!r}: the MCP server of {version.tag} did not list its tools "
                f"within {timeout:g}s (timeout_seconds)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - boundary: the server did not answer as MCP
            inner = _first(exc)
            raise UpstreamUnavailable(
                f"target {self.id!r}: the MCP server of {version.tag} did not list its tools: "
                f"{type(inner).__name__}: {inner}"
            ) from None
        finally:
            hosted = self._hosted()
            if hosted.sessions is not None:
                await hosted.sessions.stop(session_id, tenant)
        return [tool_spec(t) for t in tools]

    def _invoke_name(self) -> str:
        return f"invoke_{self.config.runtime}"

    def _invoke_spec(self, version: Version) -> ToolSpec:
        said = self.config.description or version.description
        return ToolSpec(
            name=self._invoke_name(),
            description=clean(said)
            or f"Ask the agent {self.config.runtime}: send it a prompt, or the JSON payload it reads. "
            "Your calls share one session of it, which keeps what it was told.",
            input_schema=INVOKE_SCHEMA,
        )

    async def _watch(self) -> None:
        """Tell the catalog when the version the target lists is no longer the one it listed."""
        while True:
            await anyio.sleep(WATCH_SECONDS)
            if self.tenant is None:
                continue  # (not listed yet)
            try:
                now: str | None = self._version(self.tenant, self._listing_id(self.tenant)).tag
            except ToolExecutionError:
                now = None
            if now != self.shown:
                self.shown = now
                self.changed()

    def problems(self) -> Sequence[str]:
        return [self.failure] if self.failure else []

    # -- calls --------------------------------------------------------------------------------

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        tenant, session_id = ctx.tenant, self._caller_id(ctx)
        version = self._version(tenant, session_id)
        self._served(version)
        if version.protocol == "HTTP":
            return await self._invoke(call, ctx, version, session_id)
        session = await self._session(version, session_id, tenant, ctx.principal.subject)
        link = self._link(session)

        async def relay(progress: float, total: float | None, message: str | None) -> None:
            await ctx.channel.progress(progress, total, message)

        async def run(client: Client) -> types.CallToolResult:
            return await client.call_tool(call.name, call.arguments, progress_callback=relay)

        name = call.public_name or call.name
        session.used = time.monotonic()  # (busy: not ended as idle while it runs)
        try:
            wire = _dump(await link.relayed(ctx, name, run))
        finally:
            session.used = time.monotonic()
        self._capped(name, len(orjson.dumps(wire)))
        return ToolResult(
            content=tuple(wire.get("content") or ()),
            structured=wire.get("structuredContent"),
            is_error=bool(wire.get("isError")),
        )

    def _link(self, session: Session) -> _SessionLink:
        """The client of ``session``'s server: kept while the session lives, a new one for a new
        session (the runtime ended the last one, and the same id started afresh)."""
        key = (session.owner, session.id)
        link = self.links.get(key)
        if link is not None and link.runtime_session is session and not link.closed:
            return link
        if link is not None:
            link.close()
        sessions = self._hosted().sessions
        for old_key in list(self.links):  # (clients of sessions that ended)
            if sessions is None or sessions.live_version(old_key[1], old_key[0]) is None:
                self.links.pop(old_key).close()
        if self._tg is None:
            raise UpstreamUnavailable(f"target {self.id!r} is not open")
        where = f"runtime {session.version.tag} (session {session.id[:20]}...)"
        link = self.links[key] = _SessionLink(self.link_config, session, where, self._held)
        self._tg.start_soon(link.run)
        return link

    async def _invoke(
        self, call: ToolCall, ctx: CallContext, version: Version, session_id: str
    ) -> ToolResult:
        """``invoke_{runtime}``: ``POST /invocations`` in the caller's session; its JSON, or the
        data of the events it streamed, is the result."""
        if call.name != self._invoke_name():
            raise ToolNotFound(call.public_name or call.name)
        prompt, payload = call.arguments.get("prompt"), call.arguments.get("payload")
        if (prompt is None) == (payload is None):
            raise ToolExecutionError(
                f"{call.public_name or call.name}: give a `prompt`, or the `payload` the agent's "
                "entrypoint reads (one of them)"
            )
        body = orjson.dumps({"prompt": prompt} if payload is None else payload)
        caller = Caller(ctx.tenant, ctx.principal.subject, ctx.principal.client_id)
        invoking = self._hosted().invoke(caller, version, session_id, body, {}, "application/json")
        try:
            async with invoking as (_, answer):
                read = await self._read(call.public_name or call.name, answer)
                failed, streamed = answer.status_code >= 400, _streamed(answer)
        except AtCapacity as exc:
            raise UpstreamUnavailable(str(exc)) from None
        except SessionError as exc:
            raise SandboxError(f"target {self.id!r}: {exc}") from None
        if streamed:
            return _events(read, is_error=failed)
        return from_json_payload(read, is_error=failed)

    async def _read(self, name: str, answer: httpx.Response) -> bytes:
        body = bytearray()
        try:
            async for chunk in answer.aiter_bytes():
                body += chunk
                self._capped(name, len(body))
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{name}: the agent's answer broke off: {exc}") from None
        return bytes(body)

    def _capped(self, name: str, size: int) -> None:
        if size > self.config.max_result_bytes:
            raise ToolExecutionError(
                f"the result of {name} is over this target's max_result_bytes "
                f"({self.config.max_result_bytes}); ask for less"
            )


def _streamed(answer: httpx.Response) -> bool:
    kind: str = answer.headers.get("content-type", "")
    return kind.startswith("text/event-stream")


def _events(body: bytes, *, is_error: bool) -> ToolResult:
    """Server-sent events as one result: the text of strings streamed one after another (what a
    model's tokens make), else the list of the events' values."""
    events: list[Any] = []
    for block in body.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")]
        if not data:
            continue
        text = "\n".join(data)
        try:
            events.append(orjson.loads(text))
        except orjson.JSONDecodeError:
            events.append(text)
    if all(isinstance(e, str) for e in events):
        return ToolResult.text("".join(events), is_error=is_error)
    return ToolResult(
        content=({"type": "text", "text": orjson.dumps(events).decode()},),
        structured={"events": events},
        is_error=is_error,
    )


async def _streams(stack: contextlib.AsyncExitStack, fd: int, session: Session, seconds: float) -> Any:
    """The MCP transport to ``session``'s server, through the socket in the home ``fd`` holds."""
    http = await stack.enter_async_context(
        httpx2.AsyncClient(
            transport=httpx2.AsyncHTTPTransport(uds=f"/proc/self/fd/{fd}/app.sock"),
            headers={SESSION_HEADER: session.id},  # (as AgentCore passes it to the server)
            timeout=httpx2.Timeout(seconds, connect=10.0),
            trust_env=False,
        )
    )
    return streamable_http_client(f"http://127.0.0.1:{session.version.port}/mcp", http_client=http)


class _SessionLink(Link):
    """The client of one runtime session's MCP server, kept open by a task of its own.

    It holds a descriptor of its own of the session's home, and reaches the socket through it: the
    session's descriptor is closed when the runtime ends the session, and its number may then name
    another session's home; this one names this session's until the client closes (its socket then
    refuses: the call fails, and the next call makes a client for the session that follows).
    """

    def __init__(self, config: McpTarget, session: Session, where: str, held: set[_SessionLink]) -> None:
        super().__init__(config, headers={SESSION_HEADER: session.id}, env={})
        self.runtime_session = session
        self.label = where
        self.fd = os.dup(session.work)
        self.held = held
        held.add(self)

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        return await _streams(stack, self.fd, self.runtime_session, self.config.timeout_seconds)

    def where(self) -> str:
        return self.label

    def release(self) -> None:
        """Close the descriptor (once): the client is done."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.held.discard(self)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            self.release()


@contextlib.contextmanager
def _held(session: Session) -> Iterator[int]:
    """A descriptor of ``session``'s home of our own, while a client reads (see _SessionLink);
    never of a session that has ended (its number may be another session's by now)."""
    if session.ended:
        raise UpstreamUnavailable(f"runtime session {session.id} has ended: call again")
    fd = os.dup(session.work)
    try:
        yield fd
    finally:
        os.close(fd)
