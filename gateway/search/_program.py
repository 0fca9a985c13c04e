"""Code mode (ADR 0047): one tool that runs a short Python program in the code interpreter's
sandbox, with the gateway's tools as async functions inside it, so a multi-step task costs the
model one call and the program's output instead of every intermediate result.

Inside, ``await tools.NAME(**arguments)`` (a published name, its '-' and '.' written '_') or
``await tools.call("published name", {...})`` asks the host for the call over the kernel's own
channel (the sandbox has no network). The host makes it through the gateway as the program's
caller: the same policy, approvals, rate limits, audit and traces as if the client had called;
a refusal or a failure raises ``ToolError`` in the program with the gateway's message. What the
program prints and the value of its last line come back; the sandbox's limits (wall time, CPU
time, memory, output) end a program that loops or floods, with a sentence saying which.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import anyio

from gateway.config import CodeModeSpec
from gateway.core.catalog import CatalogSnapshot
from gateway.core.errors import SwitchboardError, ToolExecutionError, ToolNotFound
from gateway.core.provider import ToolProvider
from gateway.core.types import JSON, CallContext, ToolCall, ToolResult, ToolSpec
from gateway.search._provider import CODE_TARGET, IN_PROGRAM, Gateway
from sandbox import Limits, SandboxError

TARGET = CODE_TARGET
RUN = "switchboard_run_program"
STUBS = "switchboard_program_tools"
MAX_CODE = 100_000  # characters of a program
MAX_STUBS = 50  # tools whose stubs one listing gives
MAX_ARGUMENTS = 4 * 1024 * 1024  # bytes of one call's arguments (the MCP front's request limit)
MAX_DEPTH = 64  # levels of a program's result
MIN_WALL = 1.0  # seconds a program may run however close the call's deadline
# Seconds kept from the call's deadline: an interrupted program's grace (the kernel's 2) and the stop.
DEADLINE_MARGIN = 2.5
_IDENT = re.compile(r"[^0-9A-Za-z_]")
_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}
RUN_DESCRIPTION = (
    "Run a short Python program that uses this gateway's tools, and get back only what it prints "
    "and the value of its last line. Inside it, `await tools.NAME(arg=value, ...)` calls a tool "
    "(NAME: the tool's published name, '-' and '.' written '_'), or `await tools.call('name', "
    "{...})`; a refused or failed call raises ToolError. Find tools with the search tool and get "
    f"their typed signatures with {STUBS}. Use it for multi-step work: loops, filters, joins, counts."
)


class GatewayWithCalls(Gateway, Protocol):
    """What code mode reads of its live gateway, and how it calls a tool through it."""

    async def call(self, name: str, arguments: dict[str, Any] | None, ctx: CallContext) -> ToolResult: ...


def identifier(name: str) -> str:
    """A published tool name as a Python identifier: ``github___issues_list-for-repo`` ->
    ``github___issues_list_for_repo``."""
    ident = _IDENT.sub("_", name)
    if not ident or ident[0].isdigit() or keyword.iskeyword(ident):
        ident = f"t_{ident}"
    return ident


def stub(tool: Mapping[str, Any]) -> str:
    """The typed async signature of a tool, with its description, for a program's author."""
    schema = tool.get("inputSchema") or {}
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    required = set(schema.get("required") or []) if isinstance(schema, Mapping) else set()
    params: list[str] = []
    if isinstance(properties, Mapping):
        ordered = sorted(properties, key=lambda p: p not in required)  # (required ones first)
        for key in ordered:
            spec = properties[key]
            kind = _TYPES.get(str(spec.get("type")), "Any") if isinstance(spec, Mapping) else "Any"
            name = key if key.isidentifier() and not keyword.iskeyword(key) else f"{identifier(key)}_"
            params.append(f"{name}: {kind}" if key in required else f"{name}: {kind} | None = None")
    signature = ", ".join(["*", *params]) if params else ""
    description = str(tool.get("description") or "").strip().replace('"""', "'''")[:600]
    return f'async def {identifier(str(tool["name"]))}({signature}) -> Any:\n    """{description}"""\n'


class CodeModeProvider(ToolProvider):
    """The code-mode tools of one gateway."""

    kind = "code_mode"
    namespaced: ClassVar[bool] = False

    def __init__(self, spec: CodeModeSpec, gateway_of: Callable[[], GatewayWithCalls | None]) -> None:
        super().__init__(TARGET)
        self.spec = spec
        self.gateway_of = gateway_of

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        code = {"type": "string", "minLength": 1, "maxLength": MAX_CODE, "description": "The Python program."}
        run = ToolSpec(
            name=RUN,
            title="Run a program over the tools",
            description=RUN_DESCRIPTION,
            input_schema={"type": "object", "properties": {"code": code}, "required": ["code"]},
            annotations={"openWorldHint": True},
        )
        names = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_STUBS}
        stubs = ToolSpec(
            name=STUBS,
            title="Tool signatures for programs",
            description=f"The typed async signatures of tools, by published name, as {RUN} calls them.",
            input_schema={"type": "object", "properties": {"names": names}, "required": ["names"]},
            annotations={"readOnlyHint": True, "idempotentHint": True},
        )
        return [run, stubs]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        gateway = self.gateway_of()
        if gateway is None:
            return ToolResult.error("this gateway is being reloaded; try again in a moment")
        if call.name == STUBS:
            return self._stubs(gateway, call.arguments.get("names") or [], ctx)
        if call.name != RUN:
            raise ToolNotFound(call.name)
        return await self._run(str(call.arguments.get("code", "")), ctx)

    def _stubs(self, gateway: GatewayWithCalls, names: list[Any], ctx: CallContext) -> ToolResult:
        snapshot = gateway.snapshot
        visible = gateway.visible_names(ctx.principal)
        found, missing = [], []
        for raw in names:
            name, problem = _resolve(snapshot, str(raw))
            entry = snapshot.tools.get(name) if problem is None else None
            if entry is None or (visible is not None and name not in visible):
                missing.append(str(raw))
                continue
            found.append(stub(entry.wire()))
        text = "\n".join(found)
        if missing:
            text += (
                f"\n# not tools you can call here: {', '.join(missing)} (find them with the search tool)\n"
            )
        return ToolResult(
            content=({"type": "text", "text": text},), structured={"stubs": text, "missing": missing}
        )

    async def _run(self, code: str, ctx: CallContext) -> ToolResult:
        if not code.strip():
            return ToolResult.error("code is empty: give the Python program to run")
        if self.interpreters is None:
            raise ToolExecutionError("code interpreters are not running in this process")
        try:  # (the interpreter every tenant has: its warm pool is shared, nothing piles up per gateway)
            interpreter = await self.interpreters.builtin()
            session = await interpreter.start(ctx.tenant, owner=ctx.principal.subject, name="code-mode")
        except SandboxError as exc:
            raise ToolExecutionError(f"the program's sandbox could not start: {exc}") from None
        calls = 0

        async def tool(frame: dict[str, Any]) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            if calls > self.spec.max_tool_calls:
                return {"error": f"the program made {self.spec.max_tool_calls} tool calls, its limit"}
            live = self.gateway_of()  # (each call sees the gateway as it is now: a revoked policy too)
            if live is None:
                return {"error": "this gateway is being reloaded or was removed"}
            asked, arguments = str(frame.get("call")), frame.get("arguments")
            name, problem = _resolve(live.snapshot, asked)
            if problem is not None:
                return {"error": problem}
            problem = _checked(name, arguments)
            if problem is not None:
                return {"error": problem}
            nested = CallContext(
                principal=ctx.principal,
                gateway=ctx.gateway,
                session_id=ctx.session_id,
                deadline=ctx.deadline,
                request_id=f"{ctx.request_id}/{calls}" if ctx.request_id is not None else None,
                meta=ctx.meta,
            )
            marked = IN_PROGRAM.set(True)
            try:
                result = await live.call(name, arguments, nested)
            except SwitchboardError as exc:
                return {"error": str(exc)}
            finally:
                IN_PROGRAM.reset(marked)
            text = "\n".join(str(c.get("text", "")) for c in result.content if c.get("type") == "text")
            if result.is_error:
                return {"error": text or f"{name} failed"}
            return {"result": result.structured if result.structured is not None else _json_or_text(text)}

        spec = self.spec
        # A program ends by the call's deadline (the target's call_timeout_seconds), not after it:
        # its own limit says so plainly, where the deadline would only cancel the call.
        wall = round(max(MIN_WALL, min(spec.wall_seconds, ctx.remaining() - DEADLINE_MARGIN)), 1)
        limits = Limits(wall_seconds=wall, cpu_seconds=math.ceil(wall), output_bytes=spec.output_bytes)
        try:
            out = await interpreter.program(session.id, code, ctx.tenant, tool, limits)
        finally:
            with anyio.CancelScope(shield=True):  # (a cancelled call still ends its sandbox now)
                await interpreter.stop(session.id, ctx.tenant)
        return _answer(out, calls, limits)


_IDENTS: list[tuple[CatalogSnapshot, dict[str, str | None]]] = []  # (the last catalog's, kept)


def _idents(snapshot: CatalogSnapshot) -> dict[str, str | None]:
    """Identifier -> published name; None where two names make the same identifier (made once
    a catalog snapshot: a program's calls all read it)."""
    if _IDENTS and _IDENTS[0][0] is snapshot:
        return _IDENTS[0][1]
    out: dict[str, str | None] = {}
    for name in snapshot.tools:
        ident = identifier(name)
        out[ident] = None if ident in out and out[ident] != name else name
    _IDENTS[:] = [(snapshot, out)]
    return out


def _resolve(snapshot: CatalogSnapshot, asked: str) -> tuple[str, str | None]:
    """The published name a program asked for (an exact name first), or why it is refused."""
    name = asked
    if asked not in snapshot.tools:
        found = _idents(snapshot).get(asked, asked)
        if found is None:
            return (
                asked,
                f"{asked} names several tools: call one by its exact name, tools.call(name, {{...}})",
            )
        name = found
    entry = snapshot.tools.get(name)
    if entry is not None and entry.provider.id == TARGET:
        return name, f"{name} cannot be called from a program"
    return name, None


def _checked(name: str, arguments: Any) -> str | None:
    """Arguments the MCP front would take: an object, finite numbers, within its size."""
    if not isinstance(arguments, dict):
        return f"{name}: arguments must be an object"
    try:
        size = len(json.dumps(arguments, allow_nan=False))
    except ValueError:
        return f"{name}: arguments must hold finite numbers only (no NaN or infinity)"
    except RecursionError:
        return f"{name}: arguments are nested too deeply"
    if size > MAX_ARGUMENTS:
        return f"{name}: arguments are {size} bytes, over the limit of {MAX_ARGUMENTS}"
    return None


def _depth(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests no deeper than ``limit``."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return False
        if isinstance(item, dict):
            stack += [(v, level + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, level + 1) for v in item]
    return True


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _answer(out: Mapping[str, Any], calls: int, limits: Limits) -> ToolResult:
    result, note = out.get("result"), None
    shown = json.dumps(result, default=str) if _depth(result) else ""
    if not shown:
        result, note = None, f"the result was dropped: nested deeper than {MAX_DEPTH} levels"
    elif len(shown) > limits.output_bytes:
        result, note = None, f"the result was dropped: more than {limits.output_bytes} bytes"
    structured: JSON = {
        "stdout": out.get("stdout", ""),
        "stderr": out.get("stderr", ""),
        "result": result,
        "toolCalls": calls,
    }
    parts = [str(out.get("stdout") or "")]
    failed = out.get("stopped") or out.get("error")
    if failed:
        structured["error"] = str(failed)
        parts.append(str(failed))
    elif note is not None:
        structured["note"] = note
        parts.append(f"[{note}]")
    elif result is not None:
        parts.append(f"result: {shown}")
    if out.get("stderr"):
        parts.append(str(out["stderr"]))
    text = "\n".join(p for p in parts if p)
    content = ({"type": "text", "text": text or "(no output)"},)
    return ToolResult(content=content, structured=structured, is_error=bool(failed))
