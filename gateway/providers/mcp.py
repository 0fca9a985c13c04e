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

With ``sessions: per_user`` each caller gets a session of their own, opened with
their own credential: a secret per user listed in the target's config (``users``), or
the user's own token from a credential provider (``credential``, e.g. OAuth with the
user's consent); lists still come from the shared session. Idle user sessions are closed.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import ClassVar, Self

import anyio
import mcp_types as types
import orjson
from anyio.abc import TaskGroup
from mcp import Client
from mcp.shared.exceptions import MCPError

from gateway.config import McpTarget, McpUserCredential
from gateway.core.errors import (
    ConfigError,
    ConfigIssue,
    RequestError,
    ToolExecutionError,
    UpstreamError,
    UpstreamUnavailable,
)
from gateway.core.provider import PromptSpec, ResourceSpec, ResourceTemplateSpec, ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec
from gateway.egress import reach
from gateway.providers._mcp_link import Link, _dump
from sandbox import Options, Sandbox, SandboxError, backend_problem
from sandbox._egress import forwarded, open_egress

# Zero-width, bidirectional-override and other invisible characters, and C0/C1 controls but
# tab and newline: text a model reads but a person reviewing the tool does not see.
_INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\U000e0000-\U000e007f]"
)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
IDLE_CHECK_SECONDS = 30.0


def tool_spec(tool: types.Tool) -> ToolSpec:
    """An upstream's MCP tool as the gateway's catalog keeps it."""
    return ToolSpec(
        name=tool.name,
        description=clean(tool.description),
        title=clean(tool.title) or None,
        input_schema=tool.input_schema,
        output_schema=tool.output_schema,
        annotations=_dump(tool.annotations) if tool.annotations else None,
    )


def clean(text: str | None) -> str:
    """Text without invisible or control characters."""
    return _CONTROL.sub("", _INVISIBLE.sub("", text or ""))


def _nothing() -> None:
    return None


class McpProvider(ToolProvider):
    """Serves a ``kind: mcp`` target."""

    kind: ClassVar[str] = "mcp"

    def __init__(self, config: McpTarget, *, gateway: str = "default") -> None:
        super().__init__(config.name)
        problem = backend_problem(config.sandbox.backend) if config.sandbox is not None else None
        if problem is not None and config.sandbox is not None:  # (never run it without the sandbox)
            where = "sandbox.backend"
            raise ConfigError(
                [ConfigIssue(f"sandbox backend {config.sandbox.backend} cannot run here: {problem}", where)]
            )
        self.config = config
        self._shared = Link(config, headers=config.headers, env=config.env, on_change=self.changed)
        self._users: OrderedDict[tuple[str, str, str], Link] = OrderedDict()
        self._tg: TaskGroup | None = None

    @property
    def failure(self) -> str | None:
        return self._shared.failure

    async def _make_box(self, env: Mapping[str, str]) -> tuple[Sandbox, list[str], Callable[[], None]]:
        """A sandbox for one session of a sandboxed local server, with that session's variables;
        the command line to run in it (behind the egress forwarder in PUBLIC mode), and what ends
        what came with it (its egress proxy)."""
        c = self.config
        assert c.sandbox is not None and c.command is not None
        if self.interpreters is None or self._tg is None:
            raise UpstreamUnavailable(f"target {self.id!r} runs in a sandbox, and this process runs none")
        modules = self.interpreters.settings.sandbox_node_modules
        binds: tuple[tuple[str, str], ...] = ((str(modules), "/work/node_modules"),) if modules else ()
        environment = {
            "PATH": "/work/node_modules/.bin:/usr/local/bin:/usr/bin:/bin",
            "npm_config_cache": "/tmp/npm",
            "npm_config_offline": "true",  # (packages come from node_modules alone)
            "npm_config_update_notifier": "false",
            **env,
        }
        command: list[str] = list(c.command)
        close: Callable[[], None] = _nothing
        try:
            if c.sandbox.network == "PUBLIC":
                egress = await open_egress(
                    self._tg, self.interpreters.policy(), log=self.interpreters.egress_log
                )
                binds, command, close = (*binds, *egress.binds), forwarded(command), egress.close
                environment = {**environment, **egress.environment}
            options = Options(
                memory_bytes=c.sandbox.memory_mb * 1024 * 1024,
                processes=c.sandbox.processes,
                disk_bytes=c.sandbox.disk_mb * 1024 * 1024,
                binds=binds,
                environment=environment,
            )
            box: Sandbox = await self.interpreters.sandbox(c.sandbox.backend, options)
        except SandboxError as exc:
            close()
            raise UpstreamUnavailable(f"target {self.id!r}: its sandbox cannot be made: {exc}") from None
        except BaseException:
            close()  # (its egress proxy, whatever went wrong)
            raise
        return box, command, close

    async def __aenter__(self) -> Self:
        if self.config.sandbox is not None:
            self._shared.make_box = self._make_box
        self._shared.reach = reach(self.egress_allow)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._shared.run)
        if self.config.sessions == "per_user":
            self._tg.start_soon(self._close_idle)
        with contextlib.suppress(UpstreamUnavailable):
            await self._shared.session()  # if it fails: unavailable until it answers; the other targets go on
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    # -- sessions ------------------------------------------------------------------------

    async def _link(self, ctx: CallContext) -> Link:
        """The session a call goes out on: the shared one, or the caller's own."""
        c = self.config
        if c.sessions == "shared":
            return self._shared
        subject = ctx.principal.subject
        if c.credential is not None:
            # The caller's own token from a credential provider (consent, refresh: identity).
            secret = await ctx.credentials.secret(c.credential.provider, tool=self.id)
            credential = McpUserCredential(headers={c.credential.header: c.credential.prefix + secret})
            # A new token opens a new session; the old one closes when idle.
            key = (ctx.principal.tenant, subject, hashlib.sha256(secret.encode()).hexdigest()[:16])
        else:
            key = (ctx.principal.tenant, subject, "")
            found = c.users.get(subject)
            if found is None:
                raise ToolExecutionError(
                    f"target {self.id!r} calls its server with each user's own credential, and none is "
                    f"configured for user {subject!r}; an administrator adds it under `users.{subject}` "
                    "of the target, or names a credential provider (`credential`)"
                )
            credential = found
        link = self._users.get(key)
        if link is not None and not link.closed:
            self._users.move_to_end(key)
            return link
        if self._tg is None:
            raise UpstreamUnavailable(f"target {self.id!r} is not open")
        link = Link(c, headers={**c.headers, **credential.headers}, env={**c.env, **credential.env})
        link.reach = self._shared.reach
        link.make_box = self._shared.make_box  # (each user's server in a sandbox of its own)
        self._users[key] = link
        self._tg.start_soon(link.run)
        while len(self._users) > c.max_user_sessions:  # close the least recently used idle one
            idle = next((k for k, v in self._users.items() if k != key and not v.busy), None)
            if idle is None:
                break
            self._users.pop(idle).close()
        return link

    async def _close_idle(self) -> None:
        while True:
            await anyio.sleep(min(IDLE_CHECK_SECONDS, self.config.user_session_idle_seconds))
            cutoff = time.monotonic() - self.config.user_session_idle_seconds
            for key, link in list(self._users.items()):
                if not link.busy and link.last_used < cutoff:
                    self._users.pop(key).close()

    @property
    def user_sessions(self) -> int:
        """How many user sessions are open (for operators and tests)."""
        return len(self._users)

    # -- lists ---------------------------------------------------------------------------

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return [tool_spec(t) for t in await self._shared.listing("list_tools", "tools")]

    async def list_resources(self, ctx: CallContext) -> Sequence[ResourceSpec]:
        return [
            ResourceSpec(
                uri=str(r.uri),
                name=r.name,
                title=clean(r.title) or None,
                description=clean(r.description) or None,
                mime_type=r.mime_type,
            )
            for r in await self._shared.listing("list_resources", "resources")
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
            for t in await self._shared.listing("list_resource_templates", "resource_templates")
        ]

    async def list_prompts(self, ctx: CallContext) -> Sequence[PromptSpec]:
        return [
            PromptSpec(
                name=p.name,
                title=clean(p.title) or None,
                description=clean(p.description) or None,
                arguments=tuple(_dump(a) for a in p.arguments or ()),
            )
            for p in await self._shared.listing("list_prompts", "prompts")
        ]

    # -- calls ---------------------------------------------------------------------------

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        async def relay(progress: float, total: float | None, message: str | None) -> None:
            await ctx.channel.progress(progress, total, message)

        async def run(client: Client) -> types.CallToolResult:
            return await client.call_tool(call.name, call.arguments, progress_callback=relay)

        name = call.public_name or call.name
        wire = _dump(await (await self._link(ctx)).relayed(ctx, name, run))
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
            result = await (await self._link(ctx)).relayed(ctx, f"resource {uri!r}", run)
        except UpstreamError as exc:
            raise RequestError(str(exc)) from None
        return [_dump(c) for c in result.contents]

    async def get_prompt(self, name: str, arguments: Mapping[str, str], ctx: CallContext) -> JSON:
        async def run(client: Client) -> types.GetPromptResult:
            return await client.get_prompt(name, dict(arguments))

        try:
            result = await (await self._link(ctx)).relayed(ctx, f"prompt {name!r}", run)
        except UpstreamError as exc:
            raise RequestError(str(exc)) from None
        wire = _dump(result)
        wire.pop("resultType", None)
        wire.pop("_meta", None)
        return wire

    async def complete(self, ref: JSON, argument: JSON, context: JSON | None, ctx: CallContext) -> JSON:
        link = await self._link(ctx)
        client = await link.session()
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
            raise await link.failed(exc, client) from None
        return _dump(result.completion)

    def problems(self) -> Sequence[str]:
        return [f"upstream failure: {self.failure}"] if self.failure else []

    def healthy(self) -> bool:
        return self.failure is None
