"""The host side of a code interpreter's kernel (ADR 0035): the agent (``_agent.py``) runs inside a
sandbox with the sandbox's own Python, and is driven from here over its standard input and output,
one request at a time.

Every limit is kept from out here, whatever the code inside does to the agent: each request has a
wall-clock deadline and a CPU-time budget (read from the sandbox's control group); past either the
agent is interrupted, and if it does not answer within a grace period every process of the sandbox
is killed and the kernel starts afresh on next use (files kept, Python state lost, and the answer
says so). An answer larger than ``MAX_FRAME`` or not a JSON object ends the kernel the same way. A
kernel that dies (the memory limit, the process limit) is reported with the limit that ended it.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from sandbox._contract import Sandbox, SandboxError, Usage

AGENT = Path(__file__).with_name("_agent.py")
AGENT_INSIDE = "/opt/switchboard/agent.py"
FRAME = struct.Struct(">I")
MAX_FRAME = 24 * 1024 * 1024  # an answer's largest, unless a call allows more (a file read)
IN_THREAD = 256 * 1024  # answers larger than this are parsed off the event loop
GRACE = 2.0  # seconds an interrupted kernel has to answer before it is killed
START = 20.0  # seconds a new kernel has to say it is ready
WATCH = 0.05  # seconds between readings of the CPU time used
# A program's tool call (code mode): the frame the agent sent, answered with "result" or "error".
ToolHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class KernelLost(Exception):
    """The kernel was ended (its Python state is gone); ``reason`` is the limit or the fault."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Kernel:
    """The agent inside one sandbox. Started on first use, and again after it was ended."""

    def __init__(self, box: Sandbox, python: str = "/usr/bin/python3") -> None:
        self.box = box
        self.python = python
        self.process: Process | None = None
        self.replies: BufferedByteReceiveStream | None = None
        self.lock = anyio.Lock()
        self.started = 0  # how many times it has been started

    async def _ensure(self) -> None:
        if self.process is not None and self.process.returncode is None:
            return
        self.process = await self.box.spawn([self.python, "-I", "-B", AGENT_INSIDE])
        assert self.process.stdout is not None
        self.replies = BufferedByteReceiveStream(self.process.stdout)
        self.started += 1
        with anyio.move_on_after(START) as waited:
            ready = await self._receive()
        if waited.cancelled_caught or ready.get("ready") is not True:
            await self._end()
            raise SandboxError("the interpreter's kernel did not start (is python3 in the sandbox's system?)")

    async def _receive(self, limit: int = MAX_FRAME) -> dict[str, Any]:
        assert self.replies is not None
        try:
            (size,) = FRAME.unpack(await self.replies.receive_exactly(FRAME.size))
            if size > limit:
                raise KernelLost(f"the kernel answered {size} bytes, over the limit of {limit}")
            # Once its length is read the frame is read whole, never cut by a deadline (the next
            # read would start inside it); a kernel that stops halfway is not believed.
            with anyio.CancelScope(shield=True), anyio.fail_after(START):
                body = await self.replies.receive_exactly(size)
                answer = (
                    await anyio.to_thread.run_sync(json.loads, body) if size > IN_THREAD else json.loads(body)
                )
        except RecursionError:
            raise KernelLost("the kernel answered JSON nested too deeply") from None
        except TimeoutError:
            raise KernelLost("the kernel stopped halfway through an answer") from None
        except (
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
        ):
            raise KernelLost("ended") from None
        except ValueError:
            raise KernelLost("the kernel answered something that is not JSON") from None
        if not isinstance(answer, dict):
            raise KernelLost("the kernel answered something that is not a JSON object")
        return answer

    async def _send(self, request: dict[str, Any], seconds: float) -> None:
        """Send a request; a kernel that does not take it within ``seconds`` is not waited for."""
        assert self.process is not None and self.process.stdin is not None
        body = json.dumps(request).encode()
        try:
            with anyio.fail_after(seconds):
                await self.process.stdin.send(FRAME.pack(len(body)) + body)
        except TimeoutError:
            raise KernelLost("the kernel stopped taking requests") from None
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise KernelLost("ended") from None

    async def _end(self) -> None:
        """Kill every process of the sandbox (the kernel and all it started); files stay."""
        with anyio.CancelScope(shield=True):
            if self.process is not None:
                with contextlib.suppress(ProcessLookupError):  # (it may have ended already)
                    self.process.kill()
                await self.process.wait()
                await self.process.aclose()
            await self.box.kill()
            self.process = None
            self.replies = None

    async def call(
        self,
        request: dict[str, Any],
        *,
        wall: float,
        cpu: float | None = None,
        limit: int = MAX_FRAME,
        tools: ToolHandler | None = None,
    ) -> dict[str, Any]:
        """Send ``request`` and return the agent's answer (at most ``limit`` bytes of it). With
        ``tools``, a program's tool calls (frames holding ``call``) are answered by it meanwhile,
        within the same wall time.

        Raises:
            KernelLost: a limit or a fault ended the kernel; every process of the sandbox is gone.
            SandboxError: the kernel could not be started.
        """
        async with self.lock:
            await self._ensure()
            used = self.box.usage()
            try:
                answer = await self._exchange(request, wall, cpu, used.cpu_seconds, limit, tools)
                if isinstance(answer.get("stopped"), str):  # (interrupted in time: which limit)
                    answer["stopped"] = await self._why(used, answer["stopped"])
                return answer
            except KernelLost as lost:
                reason = lost.reason
                reason = await self._why(used, reason)
                await self._end()
                raise KernelLost(reason) from None

    async def _why(self, before: Usage, seen: str) -> str:
        """Why the kernel was lost: the memory or process limit if its counter moved during the
        call (a fork bomb also runs out its wall time), else what was ``seen``. A kernel that just
        "ended" is read again for a little while: the kernel counts a kill a moment after."""
        for _ in range(25 if seen == "ended" else 1):
            usage = self.box.usage()
            if usage.memory_kills > before.memory_kills:
                return "memory"
            if usage.process_refusals > before.process_refusals:
                return "processes"
            await anyio.sleep(0.02)
        return seen

    async def _exchange(
        self,
        request: dict[str, Any],
        wall: float,
        cpu: float | None,
        base: float,
        limit: int,
        tools: ToolHandler | None = None,
    ) -> dict[str, Any]:
        await self._send(request, wall)
        deadline = anyio.current_time() + wall
        reason = "wall time"
        while (remaining := deadline - anyio.current_time()) > 0:
            got: dict[str, Any] | None = None
            # (a read cut by the timeout loses nothing: see _receive)
            with anyio.move_on_after(remaining if cpu is None else min(WATCH, remaining)):
                got = await self._receive(limit)
            if got is not None and (tools is None or "call" not in got):
                return got
            if got is not None and tools is not None:  # a program's tool call: answered, then on
                with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
                    reply = await tools(got)
                    await self._send({**reply, "op": "answer", "id": got.get("id")}, GRACE)
                continue
            if cpu is not None and self.box.usage().cpu_seconds - base > cpu:
                reason = "cpu time"
                break
        await self._send({"op": "interrupt"}, GRACE)
        with anyio.move_on_after(GRACE):
            answer = await self._receive(limit)
            answer["stopped"] = reason  # interrupted in time: the state is kept
            return answer
        raise KernelLost(reason)

    async def stop(self) -> None:
        await self._end()
