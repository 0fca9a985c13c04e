"""The host side of a microVM's port (``sandbox/_microvm.py``; the guest side is ``guest.py``
beside this file): frames of (channel, kind, length) and a payload, in both directions. Every
request opens a channel and is answered on it; a spawned process keeps its channel for its
standard input (``IN``, ``EOF``) and output (``OUT``, ``CLOSED``), then ``EXIT``. And QEMU's own
monitor (QMP), for migrations.

Nothing the guest says is trusted beyond the shape of a frame: a frame over ``MAX_FRAME``, one cut
halfway or a guest that stops answering loses the wire, and every later request is refused.
"""

from __future__ import annotations

import contextlib
import json
import signal
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from sandbox._contract import SandboxError

HEAD = struct.Struct(">IBI")  # channel, kind, payload length
CALL, REPLY, IN, EOF, OUT, CLOSED, EXIT = range(1, 8)
MAX_FRAME = 64 * 1024 * 1024
INBOX = 128 * 1024 * 1024  # a spawned process's output held unread, past which it is cut
SLACK = 15.0  # seconds past a request's own time before the VM is taken for hung


def said(text: object) -> str:
    """What the guest said, fit for an error message (it is untrusted)."""
    shown = "".join(c for c in str(text) if c.isprintable())
    return shown[:300] + ("..." if len(shown) > 300 else "")


@dataclass
class Inbox:
    """What arrived for one spawned process and is not read yet."""

    data: bytearray = field(default_factory=bytearray)
    closed: bool = False
    cut: bool = False
    code: int | None = None


class Wire:
    """The frames of the virtio-serial port. No task reads in the background: whoever waits for
    something reads the next frame for everyone (one at a time), the others wake after each."""

    def __init__(self, stream: UNIXSocketStream) -> None:
        self.stream = stream
        self.buffered = BufferedByteReceiveStream(stream)
        self.reading, self.writing = anyio.Lock(), anyio.Lock()
        self.arrived = anyio.Event()
        self.waiting: set[int] = set()
        self.replies: dict[int, dict[str, Any]] = {}
        self.inboxes: dict[int, Inbox] = {}
        self.hello: dict[str, Any] | None = None
        self.lost: str | None = None
        self.counters = {"oom": 0, "pids": 0}
        self.numbered = 0

    def lose(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
        self._wake()

    def _wake(self) -> None:
        arrived, self.arrived = self.arrived, anyio.Event()
        arrived.set()

    def count(self, answer: dict[str, Any]) -> None:
        for key in self.counters:  # (counters only grow: a smaller one is not believed)
            if isinstance(answer.get(key), int):
                self.counters[key] = max(self.counters[key], answer[key])

    async def pump(self, ready: Callable[[], bool]) -> None:
        """Read frames until ``ready()`` or the wire is lost."""
        while not ready() and self.lost is None:
            try:
                self.reading.acquire_nowait()
            except anyio.WouldBlock:
                arrived = self.arrived
                await arrived.wait()
                continue
            try:
                await self._read()
            except (
                anyio.EndOfStream,
                anyio.IncompleteRead,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
            ):
                self.lose("the microVM has ended")
            except OSError as exc:
                self.lose(f"the microVM's port failed: {exc}")
            finally:
                self.reading.release()
                self._wake()

    async def _read(self) -> None:
        channel, kind, size = HEAD.unpack(await self.buffered.receive_exactly(HEAD.size))
        if size > MAX_FRAME:
            self.lose(f"the microVM sent a frame of {size} bytes, over the limit of {MAX_FRAME}")
            return
        # Once its head is read a frame is read whole, never cut by a deadline (the next read
        # would start inside it); a guest that stops halfway is not believed again.
        with anyio.CancelScope(shield=True), anyio.move_on_after(SLACK) as waited:
            payload = await self.buffered.receive_exactly(size) if size else b""
        if waited.cancelled_caught:
            self.lose("the microVM stopped halfway through a frame")
        elif kind == REPLY:
            try:
                answer = json.loads(payload)
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                answer = {"error": "the microVM answered something that is not a JSON object"}
            if channel == 0:
                self.hello = answer
            elif channel in self.waiting:
                self.replies[channel] = answer
        elif channel in self.inboxes:
            self._take(self.inboxes[channel], kind, payload)

    def _take(self, inbox: Inbox, kind: int, payload: bytes) -> None:
        if kind == OUT and not inbox.cut:
            if len(inbox.data) + len(payload) > INBOX:
                inbox.cut = True
            else:
                inbox.data += payload
        elif kind == CLOSED:
            inbox.closed = True
        elif kind == EXIT:
            with contextlib.suppress(ValueError):
                ended = json.loads(payload)
                if isinstance(ended, dict):
                    self.count(ended)
                    inbox.code = ended["code"] if isinstance(ended.get("code"), int) else -signal.SIGKILL
            inbox.closed = True
            if inbox.code is None:
                inbox.code = -signal.SIGKILL

    async def send(self, channel: int, kind: int, payload: bytes = b"") -> None:
        if self.lost is not None:
            raise SandboxError(f"the microVM sandbox has ended ({self.lost})")
        async with self.writing:
            try:  # (a frame goes whole or the wire is lost)
                with anyio.CancelScope(shield=True), anyio.fail_after(SLACK):
                    await self.stream.send(HEAD.pack(channel, kind, len(payload)) + payload)
            except TimeoutError:
                self.lose("the microVM stopped reading")
                raise SandboxError("the microVM stopped reading its port") from None
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self.lose("the microVM has ended")
                raise SandboxError("the microVM sandbox has ended") from None

    async def call(
        self, request: dict[str, Any], seconds: float, inbox: Inbox | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Send ``request`` on a new channel and return the channel and the guest's answer.

        Raises:
            SandboxError: the guest refused (its reason), did not answer in time, or has ended.
        """
        self.numbered += 1
        channel = self.numbered
        self.waiting.add(channel)
        if inbox is not None:
            self.inboxes[channel] = inbox  # (its output may come before the answer)
        try:
            await self.send(channel, CALL, json.dumps(request).encode())
            with anyio.move_on_after(seconds):
                await self.pump(lambda: channel in self.replies)
            if channel not in self.replies:
                if self.lost is None:
                    self.lose(f"it did not answer a request within {seconds:.0f} s")
                raise SandboxError(f"the microVM sandbox has ended ({self.lost})")
            answer = self.replies.pop(channel)
        except BaseException:
            self.inboxes.pop(channel, None)
            raise
        finally:
            self.waiting.discard(channel)
            self.replies.pop(channel, None)
        self.count(answer)
        if "error" in answer:
            self.inboxes.pop(channel, None)
            raise SandboxError(said(answer["error"]))
        return channel, answer


class _Stdin(ByteSendStream):
    def __init__(self, wire: Wire, channel: int) -> None:
        self.wire, self.channel, self.closed = wire, channel, False

    async def send(self, item: bytes) -> None:
        if self.closed:
            raise anyio.ClosedResourceError
        try:
            for start in range(0, len(item), 1024 * 1024):
                await self.wire.send(self.channel, IN, item[start : start + 1024 * 1024])
        except SandboxError:
            raise anyio.BrokenResourceError from None

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(SandboxError):
                await self.wire.send(self.channel, EOF)


class _Stdout(ByteReceiveStream):
    def __init__(self, wire: Wire, inbox: Inbox) -> None:
        self.wire, self.inbox, self.closed = wire, inbox, False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        inbox = self.inbox
        await self.wire.pump(lambda: bool(inbox.data) or inbox.closed or inbox.cut or self.closed)
        if self.closed:
            raise anyio.ClosedResourceError
        if inbox.data:
            chunk = bytes(inbox.data[:max_bytes])
            del inbox.data[:max_bytes]
            return chunk
        if inbox.cut or self.wire.lost is not None:
            raise anyio.BrokenResourceError
        raise anyio.EndOfStream

    async def aclose(self) -> None:
        self.closed = True


class MicrovmProcess(Process):
    """A process spawned in the VM, its standard input and output relayed over the port (its
    standard error is not kept). ``kill`` takes effect at the next ``wait`` or ``aclose``: the
    guest is asked to kill the process's group, then the process's end is awaited."""

    def __init__(self, wire: Wire, channel: int, inbox: Inbox, pid: int) -> None:
        self.wire, self.channel, self.inbox, self.guest_pid = wire, channel, inbox, pid
        self._stdin, self._stdout = _Stdin(wire, channel), _Stdout(wire, inbox)
        self.killing = self.killed = False

    async def wait(self) -> int:
        if self.killing and not self.killed and self.inbox.code is None:
            self.killed = True
            with contextlib.suppress(SandboxError):
                await self.wire.call({"op": "signal", "channel": self.channel}, SLACK)
        await self.wire.pump(lambda: self.inbox.code is not None)
        if self.inbox.code is None:  # (the VM ended, and the process with it)
            self.inbox.code = -signal.SIGKILL
        return self.inbox.code

    def terminate(self) -> None:
        self.killing = True

    def kill(self) -> None:
        self.killing = True

    def send_signal(self, signal: signal.Signals) -> None:
        self.killing = True  # (the guest is only ever asked to kill)

    @property
    def pid(self) -> int:
        return self.guest_pid

    @property
    def returncode(self) -> int | None:
        return self.inbox.code

    @property
    def stdin(self) -> ByteSendStream:
        return self._stdin

    @property
    def stdout(self) -> ByteReceiveStream:
        return self._stdout

    @property
    def stderr(self) -> None:
        return None

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stdin.aclose()
            await self.wait()
            await self._stdout.aclose()
            self.wire.inboxes.pop(self.channel, None)


class Monitor:
    """QEMU's machine protocol (QMP), on a socket pair: commands answered in order, events kept."""

    def __init__(self, stream: UNIXSocketStream) -> None:
        self.stream = stream
        self.lines = BufferedByteReceiveStream(stream)
        self.events: list[dict[str, Any]] = []

    async def _message(self) -> dict[str, Any]:
        try:
            message = json.loads(await self.lines.receive_until(b"\n", 1024 * 1024))
        except (ValueError, anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, OSError):
            raise SandboxError("QEMU's monitor failed (QEMU has ended?)") from None
        if not isinstance(message, dict):
            raise SandboxError("QEMU's monitor answered something that is not a JSON object")
        return message

    async def start(self) -> None:
        await self._message()  # (the greeting)
        await self.execute("qmp_capabilities")

    async def execute(self, command: str, fds: Sequence[int] = (), **arguments: Any) -> Any:
        message = json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n"
        try:
            await (self.stream.send_fds(message, fds) if fds else self.stream.send(message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            raise SandboxError("QEMU's monitor failed (QEMU has ended?)") from None
        while True:
            answer = await self._message()
            if "return" in answer:
                return answer["return"]
            if "error" in answer:
                raise SandboxError(f"QEMU refused {command}: {said(answer['error'])}")
            self.events.append(answer)

    async def event(self, name: str) -> dict[str, Any]:
        while True:
            while self.events:
                found = self.events.pop(0)
                if found.get("event") == name:
                    return found
            self.events.append(await self._message())

    async def aclose(self) -> None:
        await self.stream.aclose()
