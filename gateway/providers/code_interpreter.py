"""A code interpreter as a gateway target (``kind: code_interpreter``, ADR 0035): AgentCore's
tools over MCP, each call run in a session of the caller's.

A caller's session is found by (tenant, caller, MCP session): the first call starts one, later
calls reuse it until it ends (timeout, idle, or ``stopSession``), then the next call starts
another. Every result says its ``sessionId``; a call that names one (``sessionId``) runs there, if
it is the caller's. The results are AgentCore's, which are MCP's but for ``resource`` blocks'
``type`` inside the resource (dropped here).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar

from gateway.config import CodeInterpreterTarget
from gateway.core.errors import ConfigError, ConfigIssue, ToolExecutionError, ToolNotFound
from gateway.core.provider import ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec
from sandbox import Interpreter, Limits, NoSession, Options, SandboxError, backend_problem

_SESSION = {
    "sessionId": {
        "type": "string",
        "description": "Run in this session (a sessionId an earlier result gave); default: your own.",
    }
}
_PATHS = {"type": "array", "items": {"type": "string"}, "minItems": 1}


def _spec(
    name: str, description: str, properties: Mapping[str, Any], required: Sequence[str] = ()
) -> ToolSpec:
    schema: dict[str, Any] = {"type": "object", "properties": {**properties, **_SESSION}}
    if required:
        schema["required"] = list(required)
    return ToolSpec(name=name, description=description, input_schema=schema)


TOOLS = (
    _spec(
        "executeCode",
        "Run code in your session's sandbox. Python keeps its variables between calls (like a "
        "notebook; the last expression is printed; open matplotlib figures come back as images); "
        "javascript and typescript run each call afresh. No network.",
        {
            "code": {"type": "string"},
            "language": {
                "type": "string",
                "enum": ["python", "javascript", "typescript"],
                "default": "python",
            },
            "clearContext": {"type": "boolean", "description": "Forget Python's variables first."},
        },
        ["code"],
    ),
    _spec(
        "executeCommand",
        "Run a shell command in the session's work directory (/work) and wait for it.",
        {"command": {"type": "string"}},
        ["command"],
    ),
    _spec(
        "startCommandExecution",
        "Start a long shell command in the background; ask getTask for its state and output.",
        {"command": {"type": "string"}},
        ["command"],
    ),
    _spec(
        "getTask",
        "The state and output so far of a background command.",
        {"taskId": {"type": "string"}},
        ["taskId"],
    ),
    _spec("stopTask", "Stop a background command.", {"taskId": {"type": "string"}}, ["taskId"]),
    _spec(
        "readFiles",
        "Read files of the work directory (text, or base64 blobs for binary files).",
        {"paths": _PATHS},
        ["paths"],
    ),
    _spec(
        "writeFiles",
        "Write files into the work directory (all checked before any is written).",
        {
            "content": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "text": {"type": "string"},
                        "blob": {"type": "string", "description": "base64"},
                    },
                    "required": ["path"],
                },
            }
        },
        ["content"],
    ),
    _spec(
        "listFiles",
        "List a directory of the work directory (default: its top).",
        {"directoryPath": {"type": "string"}},
    ),
    _spec("removeFiles", "Remove files or directories of the work directory.", {"paths": _PATHS}, ["paths"]),
    _spec("stopSession", "End your session now: its sandbox and files are removed.", {}),
)
_NAMES = {spec.name for spec in TOOLS}
PRUNE_AT = 1000  # callers remembered before those whose session has ended are forgotten


def _mcp_block(block: JSON) -> JSON:
    """An AgentCore content block as MCP has it (an embedded resource has no ``type`` inside)."""
    if block.get("type") == "resource" and isinstance(block.get("resource"), dict):
        resource = {k: v for k, v in block["resource"].items() if k != "type"}
        return {"type": "resource", "resource": resource}
    return block


class CodeInterpreterProvider(ToolProvider):
    """Serves one ``kind: code_interpreter`` target."""

    kind: ClassVar[str] = "code_interpreter"

    def __init__(self, config: CodeInterpreterTarget, *, gateway: str = "default") -> None:
        super().__init__(config.name)
        problem = backend_problem(config.backend)
        if problem is not None:  # (refused when the configuration is checked: never run without it)
            raise ConfigError(
                [ConfigIssue(f"sandbox backend {config.backend} cannot run here: {problem}", "backend")]
            )
        self.config = config
        fingerprint = hashlib.sha256(json.dumps(config.model_dump(mode="json"), sort_keys=True).encode())
        self.key = f"target:{gateway}/{config.name}:{fingerprint.hexdigest()[:12]}"
        self.mine: dict[tuple[str, str, str], str] = {}  # (tenant, caller, MCP session) -> session
        self.tenants: set[str] = set()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """The target is gone (or changed): its sessions end with it."""
        if self.interpreters is not None:
            for tenant in self.tenants:
                await self.interpreters.forget(tenant, self.key)

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return TOOLS

    async def _interpreter(self, tenant: str) -> Interpreter:
        if self.interpreters is None:
            raise ToolExecutionError("code interpreters are not running in this process")
        c = self.config
        try:
            found: Interpreter = await self.interpreters.for_target(
                tenant,
                self.key,
                backend=c.backend,
                network=c.network,
                default_timeout=c.session_seconds,
                idle_seconds=c.idle_seconds,
                max_sessions=c.max_sessions,
                warm=c.warm,
                **_sized(c),
            )
        except SandboxError as exc:
            raise ToolExecutionError(f"code interpreter {c.name!r} cannot run here: {exc}") from None
        self.tenants.add(tenant)
        return found

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        if call.name not in _NAMES:
            raise ToolNotFound(call.public_name or call.name)
        running = await self._interpreter(ctx.tenant)
        arguments = dict(call.arguments or {})
        named = arguments.pop("sessionId", None)
        caller = ctx.principal.subject
        mine = (ctx.tenant, caller, ctx.session_id or "")
        session_id = str(named) if named else self.mine.get(mine)
        try:
            if call.name == "stopSession":
                if session_id is None:
                    return ToolResult.text("You have no session.")
                await running.stop(session_id, ctx.tenant, caller)
                self.mine.pop(mine, None)
                return ToolResult(
                    content=({"type": "text", "text": f"Session {session_id} ended."},),
                    structured={"sessionId": session_id},
                )
            if session_id is None or (not named and session_id not in running.live):
                session_id = (await running.start(ctx.tenant, caller)).id  # (the first, or the last ended)
                self.mine[mine] = session_id
                if len(self.mine) > PRUNE_AT:  # (entries of ended sessions go)
                    self.mine = {k: v for k, v in self.mine.items() if v in running.live}
            result = await running.invoke(session_id, call.name, arguments, ctx.tenant, caller)
        except NoSession as exc:
            raise ToolExecutionError(f"{exc}; leave sessionId out to use (or start) your own") from None
        except SandboxError as exc:
            raise ToolExecutionError(str(exc)) from None
        structured = dict(result.get("structuredContent") or {})
        structured["sessionId"] = session_id
        return ToolResult(
            content=tuple(_mcp_block(b) for b in result.get("content", ())),
            structured=structured,
            is_error=bool(result.get("isError")),
        )


def _sized(config: CodeInterpreterTarget) -> dict[str, Any]:
    """The target's sizes as the interpreter's options and limits."""
    memory = config.memory_mb * 1024 * 1024
    return {
        "options": Options(memory_bytes=memory, disk_bytes=config.disk_mb * 1024 * 1024),
        "limits": Limits(
            wall_seconds=config.wall_seconds, cpu_seconds=int(config.wall_seconds), memory_bytes=memory
        ),
    }
