"""The code interpreter's tools, with AgentCore's names, arguments and result shapes (ADR 0035):
each call answers a ``CodeInterpreterResult`` (``content`` blocks of type text, image, resource and
resource_link; ``structuredContent`` with stdout, stderr, exitCode, executionTime in milliseconds,
taskId, taskStatus; ``isError``), which is also an MCP tool result once ``resource`` blocks drop
their ``type``.

A failure of the program (an exception, a non-zero exit, a limit met) is a result with ``isError``;
a call that cannot be made at all (an unknown tool, a missing argument, a path outside the work
directory, an oversize file) raises ``SandboxError``, which each front turns into its own refusal."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sandbox._contract import Limits, SandboxError, inside
from sandbox._kernel import MAX_FRAME, Kernel, KernelLost, ToolHandler

TOOLS = (
    "executeCode",
    "executeCommand",
    "readFiles",
    "writeFiles",
    "listFiles",
    "removeFiles",
    "startCommandExecution",
    "getTask",
    "stopTask",
)
LANGUAGES = ("python", "javascript", "typescript")
MAX_PATHS = 100  # paths one readFiles or removeFiles names
MAX_ENTRIES = 10_000  # entries one listFiles answers
MAX_IMAGES = 16  # images one execution answers (each at most IMAGE_CHARS of base64)
IMAGE_CHARS = 8 * 1024 * 1024
STATUS = {"IN_PROGRESS": "working", "COMPLETED": "completed", "FAILED": "failed", "CANCELED": "canceled"}
LIMITED = {
    "wall time": "wall_seconds",
    "cpu time": "cpu_seconds",
    "memory": "memory_bytes",
    "processes": "processes",
}


@dataclass(frozen=True, slots=True)
class Runtimes:
    """Where the languages' programs are, inside the sandbox."""

    node: str | None = "/usr/bin/node"  # javascript (and typescript when it strips types)
    typescript: bool = False  # this node runs TypeScript (22.6 and newer: --experimental-strip-types)


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _failed(message: str) -> dict[str, Any]:
    return {"content": [_text(message)], "isError": True}


def _string(arguments: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = arguments.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise SandboxError(f"argument {name!r} is required and must be a non-empty string")
    return value


def _paths(arguments: Mapping[str, Any]) -> list[str]:
    paths = arguments.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise SandboxError("argument 'paths' is required: a non-empty list of paths in the work directory")
    if len(paths) > MAX_PATHS:
        raise SandboxError(f"argument 'paths' names {len(paths)} paths; at most {MAX_PATHS} at a time")
    found = [_relative(p) for p in paths]
    if len(set(found)) != len(found):
        raise SandboxError("argument 'paths' names a path twice")
    return found


def _relative(path: str) -> str:
    """A path as the caller gives it (relative, or absolute under /work) made relative to /work."""
    if path == "/work" or path.startswith("/work/"):
        path = path[len("/work") :].lstrip("/") or "."
    if path in ("", "."):
        return "."
    return str(inside(path.removeprefix("./")))


def _stopped(reason: str, limits: Limits, restarted: bool) -> str:
    field = LIMITED.get(reason)
    value = f" ({getattr(limits, field)})" if field else ""
    text = f"The execution was stopped: it reached its {reason} limit{value}."
    if restarted:
        text += " The session's processes were ended: its files are kept, its Python state is lost."
    return text


def _output(answer: Mapping[str, Any], limits: Limits, millis: float, exit_code: int) -> dict[str, Any]:
    stdout, stderr = str(answer.get("stdout", "")), str(answer.get("stderr", ""))
    blocks = [_text(stdout)] if stdout else []
    if stderr:
        blocks.append(_text(stderr))
    if answer.get("truncated"):
        blocks.append(_text(f"[output cut: more than {limits.output_bytes} bytes of stdout or stderr]"))
    return {
        "content": blocks,
        "structuredContent": {
            "stdout": stdout,
            "stderr": stderr,
            "exitCode": exit_code,
            "executionTime": millis,
        },
        "isError": exit_code != 0,
    }


async def call(
    kernel: Kernel,
    name: str,
    arguments: Mapping[str, Any],
    limits: Limits,
    runtimes: Runtimes,
) -> dict[str, Any]:
    """Run tool ``name`` in a session's sandbox and answer its result.

    Raises:
        SandboxError: the call itself is wrong (the message says how).
    """
    if name not in TOOLS:
        raise SandboxError(f"unknown tool {name!r}; the tools are {', '.join(TOOLS)}")
    if not isinstance(arguments, Mapping):
        raise SandboxError("'arguments' must be an object")
    if name == "executeCode":
        return await _execute_code(kernel, arguments, limits, runtimes)
    if name == "executeCommand":
        return await _command(kernel, ["/bin/sh", "-c", _string(arguments, "command")], "", limits)
    if name == "startCommandExecution":
        command = _string(arguments, "command")
        answer = await _kernel(
            kernel, {"op": "start", "command": command, "output_bytes": limits.output_bytes}, limits
        )
        if "task" not in answer:
            return _failed(_stopped(str(answer.get("stopped", "wall time")), limits, False))
        task = str(answer["task"])
        return {
            "content": [_text(f"Started {task}: ask getTask with taskId {task!r} for its state and output.")],
            "structuredContent": {"taskId": task, "taskStatus": "working"},
            "isError": False,
        }
    if name in ("getTask", "stopTask"):
        task = _string(arguments, "taskId")
        op = "task" if name == "getTask" else "stop"
        answer = await _kernel(kernel, {"op": op, "task": task}, limits)
        if answer.get("missing") or "status" not in answer:
            raise SandboxError(f"no task {task!r} in this session")
        status = STATUS.get(str(answer["status"]), "failed")
        result = _output(answer, limits, float(answer.get("seconds", 0)) * 1000, 0)
        result["structuredContent"].update(taskId=task, taskStatus=status)
        if answer.get("exit_code") is not None:
            result["structuredContent"]["exitCode"] = answer["exit_code"]
        else:
            del result["structuredContent"]["exitCode"]
        result["content"].insert(0, _text(f"{task}: {status}"))
        result["isError"] = status == "failed"
        return result
    return await _files(kernel, name, arguments, limits)


async def program(kernel: Kernel, code: str, limits: Limits, tools: ToolHandler) -> dict[str, Any]:
    """Run a code-mode program (ADR 0047): ``tools`` answers its tool calls. Its stdout, stderr,
    error and result; ``stopped`` (with a sentence saying which limit) when a limit ended it."""
    started = time.monotonic()
    answer = await _kernel(
        kernel, {"op": "program", "code": code, "output_bytes": limits.output_bytes}, limits, tools
    )
    out: dict[str, Any] = {
        "stdout": str(answer.get("stdout", "")),
        "stderr": str(answer.get("stderr", "")),
        "result": answer.get("result"),
        "error": answer.get("error"),
        "truncated": bool(answer.get("truncated")),
        "seconds": round(time.monotonic() - started, 3),
    }
    if answer.get("stopped"):
        out["stopped"] = _stopped(str(answer["stopped"]), limits, bool(answer.get("lost")))
    if out["truncated"]:
        out["stderr"] += f"\n[output cut: more than {limits.output_bytes} bytes of stdout or stderr]"
    return out


async def _kernel(
    kernel: Kernel, request: dict[str, Any], limits: Limits, tools: ToolHandler | None = None
) -> dict[str, Any]:
    try:
        answer = await kernel.call(request, wall=limits.wall_seconds, cpu=limits.cpu_seconds, tools=tools)
    except KernelLost as lost:
        return {"stopped": lost.reason, "lost": True}
    if not _plausible(answer, limits):  # (the agent is the program's: it is believed in shape only)
        await kernel.stop()
        return {"stopped": "a malformed answer", "lost": True}
    return answer


def _plausible(answer: Mapping[str, Any], limits: Limits) -> bool:
    """The answer has the agent's shapes and sizes: texts within what the caps let through, a few
    images of bounded size, numbers where numbers go."""
    chars = 4 * limits.output_bytes + 4096
    for key in ("stdout", "stderr", "error", "stopped", "status", "task"):
        value = answer.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= chars):
            return False
    images = answer.get("images") or []
    if not isinstance(images, list) or len(images) > MAX_IMAGES:
        return False
    for image in images:
        if not isinstance(image, dict) or not all(
            isinstance(v, str) and len(v) <= IMAGE_CHARS for v in image.values()
        ):
            return False
    code = answer.get("exit_code")
    seconds = answer.get("seconds", 0)
    return (code is None or type(code) is int) and isinstance(seconds, int | float)


async def _execute_code(
    kernel: Kernel, arguments: Mapping[str, Any], limits: Limits, runtimes: Runtimes
) -> dict[str, Any]:
    language = arguments.get("language", "python") or "python"
    if language not in LANGUAGES:
        raise SandboxError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    code = _string(arguments, "code", required=False)
    runtime = arguments.get("runtime")
    if language == "python":
        if runtime not in (None, "python"):
            raise SandboxError(f"runtime {runtime!r} does not run python; leave it out or give 'python'")
        if arguments.get("clearContext"):
            await _kernel(kernel, {"op": "clear"}, limits)
        started = time.monotonic()
        answer = await _kernel(
            kernel, {"op": "python", "code": code, "output_bytes": limits.output_bytes}, limits
        )
        millis = round((time.monotonic() - started) * 1000, 3)
        if answer.get("lost"):
            return _failed(_stopped(str(answer["stopped"]), limits, True))
        error = answer.get("error")
        result = _output(answer, limits, millis, 1 if error or answer.get("stopped") else 0)
        if error:
            result["structuredContent"]["stderr"] += str(error)
        if answer.get("stopped"):
            result["content"].append(_text(_stopped(str(answer["stopped"]), limits, False)))
        elif error:
            result["content"].append(_text(str(error)))
        for image in answer.get("images") or []:
            if isinstance(image, dict) and "data" in image:
                result["content"].append({"type": "image", "data": image["data"], "mimeType": "image/png"})
            elif isinstance(image, dict):
                result["content"].append(_text(str(image.get("error", "a figure could not be drawn"))))
        return result
    if runtime not in (None, "nodejs"):
        raise SandboxError(f"runtime {runtime!r} is not installed here; leave it out or give 'nodejs'")
    if runtimes.node is None:
        raise SandboxError(f"{language} is not available in this code interpreter (no node configured)")
    if language == "typescript" and not runtimes.typescript:
        raise SandboxError(
            "typescript needs node 22.6 or newer in this code interpreter (its `node` setting)"
        )
    argv = [runtimes.node, "--experimental-strip-types", "--input-type=module-typescript", "-"]
    if language == "javascript":
        argv = [runtimes.node, "-"]
    return await _command(kernel, argv, code, limits)


async def _command(kernel: Kernel, argv: list[str], stdin: str, limits: Limits) -> dict[str, Any]:
    request = {
        "op": "command",
        "argv": argv,
        "stdin": stdin,
        "timeout": limits.wall_seconds,
        "output_bytes": limits.output_bytes,
    }
    started = time.monotonic()
    # The agent keeps a command's wall time itself (and kills it); out here it gets a little more,
    # so that the agent's answer, not the kernel's end, reports it.
    answer = await _kernel(kernel, request, replace(limits, wall_seconds=limits.wall_seconds + 5))
    millis = round((time.monotonic() - started) * 1000, 3)
    if answer.get("lost"):
        return _failed(_stopped(str(answer["stopped"]), limits, True))
    code = answer.get("exit_code")
    result = _output(answer, limits, millis, code if isinstance(code, int) else 1)
    if answer.get("stopped"):
        result["content"].append(_text(_stopped(str(answer["stopped"]), limits, False)))
        result["isError"] = True
    return result


def _resource(path: str, data: bytes) -> dict[str, Any]:
    uri = f"file:///{path}"
    mime = mimetypes.guess_type(path)[0]
    try:
        content: dict[str, Any] = {"type": "text", "uri": uri, "text": data.decode("utf-8")}
        mime = mime or "text/plain"
    except UnicodeDecodeError:
        content = {"type": "blob", "uri": uri, "blob": base64.b64encode(data).decode()}
        mime = mime or "application/octet-stream"
    content["mimeType"] = mime
    return {"type": "resource", "resource": content}


async def _file(
    kernel: Kernel, request: dict[str, Any], limits: Limits, answer: int = MAX_FRAME
) -> dict[str, Any]:
    """A file operation, done by the agent inside the sandbox (by its user, in its control groups,
    where a link can lead only to the sandbox's own files); its refusal a SandboxError."""
    try:
        found = await kernel.call(request, wall=limits.wall_seconds, limit=answer)
    except KernelLost as lost:
        raise SandboxError(f"the session's kernel was lost ({lost.reason}); try again") from None
    if isinstance(found.get("error"), str):
        raise SandboxError(found["error"][:1000])
    return found


async def _files(kernel: Kernel, name: str, arguments: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    if name == "readFiles":
        paths = _paths(arguments)
        blocks, total = [], 0
        for path in paths:  # (at most file_bytes in all: one call cannot fill the gateway's memory)
            room = limits.file_bytes - total
            request = {"op": "file.read", "path": path, "limit": room}
            found = await _file(kernel, request, limits, answer=room * 4 // 3 + 65536)
            data = _decoded(found.get("data"), room)
            total += len(data)
            blocks.append(_resource(path, data))
        return {"content": blocks, "isError": False}
    if name == "writeFiles":
        files = _contents(arguments, limits)  # all checked before any is written
        for path, data in files:
            await _file(
                kernel, {"op": "file.write", "path": path, "data": base64.b64encode(data).decode()}, limits
            )
        return {
            "content": [_text(f"Wrote {path} ({len(data)} bytes)") for path, data in files],
            "isError": False,
        }
    if name == "removeFiles":
        paths = _paths(arguments)
        for path in paths:
            await _file(kernel, {"op": "file.remove", "path": path}, limits)
        return {"content": [_text(f"Removed {path}") for path in paths], "isError": False}
    directory = _relative(str(arguments.get("directoryPath") or arguments.get("path") or ""))
    found = await _file(kernel, {"op": "file.list", "path": directory, "limit": MAX_ENTRIES}, limits)
    blocks = []
    for entry in found.get("entries") or []:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)):
            raise SandboxError("the session's kernel answered a listing that is not one")
        name_of, size, is_dir = entry[0][:4096], entry[1], bool(entry[2])
        path = name_of if directory == "." else f"{directory}/{name_of}"
        link: dict[str, Any] = {"type": "resource_link", "uri": f"file:///{path}", "name": name_of}
        if is_dir:
            link["description"] = "Directory"
        else:
            link["mimeType"] = mimetypes.guess_type(name_of)[0] or "application/octet-stream"
            link["size"] = size if isinstance(size, int) else 0
        blocks.append(link)
    return {"content": blocks[:MAX_ENTRIES], "isError": False}


def _decoded(data: Any, cap: int) -> bytes:
    try:
        decoded = base64.b64decode(data, validate=True) if isinstance(data, str) else None
    except (binascii.Error, ValueError):
        decoded = None
    if decoded is None or len(decoded) > cap:
        raise SandboxError("the session's kernel answered a file read that is not one")
    return decoded


def _contents(arguments: Mapping[str, Any], limits: Limits) -> list[tuple[str, bytes]]:
    content = arguments.get("content")
    if not isinstance(content, list) or not content:
        raise SandboxError("argument 'content' is required: a list of {path, text} or {path, blob}")
    files = []
    for number, block in enumerate(content):
        if not isinstance(block, Mapping) or not isinstance(block.get("path"), str):
            raise SandboxError(f"content[{number}] needs a 'path' (a path in the work directory)")
        path = _relative(block["path"])
        if path == ".":
            raise SandboxError(f"content[{number}]: give a file's path, not the work directory")
        if isinstance(block.get("text"), str):
            data = block["text"].encode()
        elif isinstance(block.get("blob"), str | bytes):
            blob = block["blob"]
            try:
                data = blob if isinstance(blob, bytes) else base64.b64decode(blob, validate=True)
            except (binascii.Error, ValueError):
                raise SandboxError(f"content[{number}].blob is not base64") from None
        else:
            raise SandboxError(f"content[{number}] needs 'text' or 'blob'")
        if len(data) > limits.file_bytes:
            raise SandboxError(
                f"content[{number}] ({path}) is {len(data)} bytes, over the limit of {limits.file_bytes}"
            )
        files.append((path, data))
    return files
