"""The agent that runs INSIDE a code-interpreter sandbox (ADR 0035), with the sandbox's own
Python (``/usr/bin/python3 -I``), standard library only; it is bound read-only into the sandbox
and never imported by the host.

It keeps one Python namespace between executions (the interpreter's state) and runs commands and
background tasks, answering the host over its standard input and output with frames: four bytes
of length (big-endian), then a JSON object. Everything in here is as untrusted as the code it runs:
the host trusts nothing it says beyond the shape of a frame, and enforces every limit from outside
(control groups, the work directory's size, wall and CPU time, the size of a frame).
"""

from __future__ import annotations

import ast
import base64
import contextlib
import inspect
import io
import json
import os
import queue
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

FRAME = struct.Struct(">I")


class ToolError(Exception):
    """A gateway tool called by a program failed or was refused; the message says why."""


class Tools:
    """The gateway's tools, for a program (code mode, ADR 0047): ``await tools.NAME(**arguments)``
    or ``await tools.call("published name", {...})``. Each call is a frame to the host, which makes
    it through the gateway as the program's caller; its answer comes back on the request stream."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def tool(**arguments: Any) -> Any:
            return await self._agent.tool_call(name, arguments)

        tool.__name__ = name
        return tool

    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        return await self._agent.tool_call(name, dict(arguments or {}))


class Capture:
    """One stream (stdout or stderr) read from a pipe into a capped buffer by a thread."""

    def __init__(self, fd: int, cap: int) -> None:
        self.fd, self.cap, self.data, self.cut = fd, cap, bytearray(), False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            room = self.cap - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            self.cut = self.cut or len(chunk) > room
        os.close(self.fd)

    def text(self, wait: float = 5.0) -> str:
        self.thread.join(wait)
        return self.data.decode("utf-8", "replace")


class Task:
    """A command started in the background; its output is kept (capped) until asked for."""

    def __init__(self, command: str, cap: int) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.out = Capture(os.dup(self.process.stdout.fileno()), cap)
        self.err = Capture(os.dup(self.process.stderr.fileno()), cap)
        self.process.stdout.close()
        self.process.stderr.close()
        self.canceled = False

    def state(self) -> dict[str, Any]:
        code = self.process.poll()
        if code is None:
            status = "IN_PROGRESS"
        elif self.canceled:
            status = "CANCELED"
        else:
            status = "COMPLETED" if code == 0 else "FAILED"
        waited = 5.0 if code is not None else 0.0
        return {
            "status": status,
            "exit_code": code,
            "stdout": self.out.text(waited),
            "stderr": self.err.text(waited),
            "truncated": self.out.cut or self.err.cut,
            "seconds": round(time.monotonic() - self.started, 3),
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.canceled = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _end_strays() -> None:
    """Kill every other process of this process's group (what an interrupted execution started
    and did not put in a session of its own), until none is left; background tasks have their own
    sessions and live on."""
    me, group = os.getpid(), os.getpgid(0)
    for _ in range(1000):
        strays = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != me:
                with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[2]) == group:
                        strays.append(int(name))
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in strays:  # (its own children are reaped here; others by the sandbox's init)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if not strays:
            return


class Stream:
    """Standard output (or error) of executions: one pipe for the agent's life, read by a thread
    of its own. An execution's output ends where the agent writes a marker of that execution's
    into the pipe after it: what comes after (a child still writing) is not that execution's."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_inheritable(self.read_fd, False)
        self.lock = threading.Lock()
        self.marker = b""
        self.data = bytearray()
        self.seen = 0  # bytes of this execution's output, kept or not
        self.cap = 0
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def begin(self, cap: int) -> None:
        with self.lock:
            self.data.clear()
            self.seen, self.cap = 0, cap
            self.marker = b"\0switchboard:" + os.urandom(12).hex().encode() + b"\0"
            self.done.clear()

    def end(self) -> tuple[str, bool]:
        os.write(self.write_fd, self.marker)
        self.done.wait(5.0)
        with self.lock:
            self.marker = b""
            return self.data.decode("utf-8", "replace"), self.seen > self.cap

    def _take(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.seen += len(chunk)

    def _read(self) -> None:
        window = b""  # the stream's last bytes: a marker may arrive split across reads
        while True:
            chunk = os.read(self.read_fd, 65536)
            with self.lock:
                marker = self.marker
                if not marker or self.done.is_set():
                    window = b""
                    continue  # (between executions: nobody's output)
                joined = window + chunk
                at = joined.find(marker)
                if at < 0:
                    self._take(chunk)
                    window = joined[-(len(marker) - 1) :]
                    continue
                if at >= len(window):
                    self._take(joined[len(window) : at])
                else:  # the marker began in bytes already taken: they were not output
                    self.seen -= len(window) - at
                    del self.data[max(0, self.seen) :]
                window = b""
                self.done.set()


def _trace(exc: BaseException) -> str:
    """The program's traceback, without the agent's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class Agent:
    def __init__(self, reply: int) -> None:
        self.reply_fd = reply
        self.namespace: dict[str, Any] = {"__name__": "__main__"}
        self.tasks: dict[str, Task] = {}
        self.numbered = 0
        self.busy = threading.Event()
        self.streams = (Stream(), Stream())
        self.answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.called = 0

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        os.write(self.reply_fd, FRAME.pack(len(body)) + body)

    # -- Python with state ------------------------------------------------------------------
    def python(self, code: str, cap: int) -> dict[str, Any]:
        """Run ``code`` in the namespace, its output (and its children's) read from two pipes by
        the streams' own threads, kept up to ``cap`` bytes each: a flood fills nothing."""
        for stream in self.streams:
            stream.begin(cap)
        saved = os.dup(1), os.dup(2)
        os.dup2(self.streams[0].write_fd, 1)
        os.dup2(self.streams[1].write_fd, 2)
        error = None
        try:
            self._run(code)
        except KeyboardInterrupt:
            error = "KeyboardInterrupt: the execution was interrupted"
            _end_strays()  # (what it started dies with it: a fork bomb's copies of this process too)
        except BaseException as exc:  # noqa: BLE001 - the program's own error, reported as its traceback
            error = None if isinstance(exc, SystemExit) and exc.code in (None, 0) else _trace(exc)
        finally:
            for standard in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # (the program may have replaced or closed it)
                    standard.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        images = self._figures()
        (stdout, out_cut), (stderr, err_cut) = (stream.end() for stream in self.streams)
        return {
            "stdout": stdout,
            "stderr": stderr,
            "truncated": out_cut or err_cut,
            "error": error,
            "images": images,
        }

    def program(self, code: str, cap: int) -> dict[str, Any]:
        """A program of code mode: top-level ``await`` allowed, ``tools`` and ``ToolError`` in a
        namespace of its own; its output and the value of its last expression come back."""
        self.namespace = {"__name__": "__main__", "tools": Tools(self), "ToolError": ToolError}
        answer = self.python(code, cap)
        value = self.namespace.pop("_result_", None)
        try:
            answer["result"] = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            answer["result"] = repr(value)
        return answer

    async def tool_call(self, name: str, arguments: dict[str, Any]) -> Any:
        """Ask the host to call tool ``name``; wait for its answer in a thread of its own (an
        interrupt still reaches the main thread)."""
        import asyncio

        self.called += 1
        number = self.called
        waiting: queue.Queue[dict[str, Any]] = queue.Queue(1)
        self.answers[number] = waiting
        loop = asyncio.get_running_loop()
        done: asyncio.Future[dict[str, Any]] = loop.create_future()

        def settle(got: dict[str, Any]) -> None:
            if not done.done():
                done.set_result(got)

        def wait() -> None:
            loop.call_soon_threadsafe(settle, waiting.get())

        threading.Thread(target=wait, daemon=True).start()
        self.send({"call": name, "arguments": arguments, "id": number})
        try:
            answer = await done
        finally:
            self.answers.pop(number, None)
        if "error" in answer:
            raise ToolError(str(answer["error"]))
        return answer.get("result")

    def answered(self, request: dict[str, Any]) -> None:
        waiting = self.answers.get(request.get("id"))  # type: ignore[arg-type]
        if waiting is not None:
            waiting.put(request)

    def _run(self, code: str) -> None:
        tree = ast.parse(code, "<code>", "exec")
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        programs = "tools" in self.namespace and isinstance(self.namespace["tools"], Tools)
        if last is not None and programs:  # (a program's last value is its result, not printed)
            target = ast.Name("_result_", ast.Store())
            tree.body[-1] = ast.fix_missing_locations(
                ast.copy_location(ast.Assign([target], last.value), last)
            )
            last = None
        elif last is not None:
            tree.body = tree.body[:-1]
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if programs else 0
        ran = eval(compile(tree, "<code>", "exec", flags=flags), self.namespace)
        if inspect.iscoroutine(ran):
            import asyncio

            asyncio.run(ran)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<code>", "eval"), self.namespace)
            if value is not None:
                print(repr(value))

    def _figures(self) -> list[dict[str, str]]:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return []
        images = []
        try:
            for number in plt.get_fignums():
                buffer = io.BytesIO()
                plt.figure(number).savefig(buffer, format="png")
                images.append({"mimeType": "image/png", "data": base64.b64encode(buffer.getvalue()).decode()})
            plt.close("all")
        except Exception as exc:  # noqa: BLE001 - a figure that cannot be drawn is reported, not fatal
            images.append({"error": f"a figure could not be drawn: {exc}"})
        return images

    # -- commands ---------------------------------------------------------------------------
    def command(self, argv: list[str], stdin: str, timeout: float, cap: int) -> dict[str, Any]:
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stdout is not None and process.stderr is not None and process.stdin is not None
        out, err = (
            Capture(os.dup(process.stdout.fileno()), cap),
            Capture(os.dup(process.stderr.fileno()), cap),
        )
        process.stdout.close()
        process.stderr.close()
        try:
            process.stdin.write(stdin.encode())
            process.stdin.close()
        except OSError:
            pass
        stopped = None
        try:
            code: int | None = process.wait(timeout)
        except subprocess.TimeoutExpired:
            stopped, code = "wall time", None
        except KeyboardInterrupt:
            stopped, code = "interrupted", None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # (whatever it left behind, too)
        if code is None:
            process.wait()
        return {
            "exit_code": code,
            "stdout": out.text(),
            "stderr": err.text(),
            "truncated": out.cut or err.cut,
            "stopped": stopped,
            "seconds": round(time.monotonic() - started, 3),
        }

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op, cap = request.get("op"), int(request.get("output_bytes", 1 << 20))
        if op == "python":
            return self.python(str(request["code"]), cap)
        if op == "program":
            return self.program(str(request["code"]), cap)
        if op == "command":
            argv = [str(a) for a in request["argv"]]
            return self.command(argv, str(request.get("stdin", "")), float(request["timeout"]), cap)
        if op == "start":
            self.numbered += 1
            name = f"task-{self.numbered}"
            self.tasks[name] = Task(str(request["command"]), cap)
            return {"task": name}
        if op in ("task", "stop"):
            task = self.tasks.get(str(request["task"]))
            if task is None:
                return {"missing": True}
            if op == "stop":
                task.stop()
            return task.state()
        if op == "clear":
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                plt.close("all")
            self.namespace = {"__name__": "__main__"}
            return {}
        if op == "ping":
            return {"pid": os.getpid()}
        if op == "reseed":  # (a copy restored from a snapshot would repeat the snapshot's numbers)
            for module in ("random", "numpy.random"):
                found = sys.modules.get(module)
                if found is not None:
                    found.seed()
            return {}
        if isinstance(op, str) and op.startswith("file."):
            return _file(op, request)
        return {"unknown": op}


WORK = "/work"


def _inside(path: str) -> str:
    """``path`` (relative to /work, or absolute under it) as a path that stays in /work once every
    link is resolved; ValueError says why not. (In here a link can only lead to the sandbox's own
    files: the check keeps the tools' promise, not the host's safety.)"""
    joined = os.path.normpath(os.path.join(WORK, path))
    real = os.path.realpath(joined)
    if real != WORK and not real.startswith(WORK + "/"):
        raise ValueError(f"{path!r} is not a path inside the work directory")
    return real


def _file(op: str, request: dict[str, Any]) -> dict[str, Any]:
    """The file tools, done in here: by the sandbox's user, in its control groups and filesystem."""
    try:
        path = _inside(str(request.get("path", ".")))
        if op == "file.write":
            data = base64.b64decode(str(request["data"]))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o644)
            with os.fdopen(fd, "wb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise ValueError(f"{request['path']!r} is not a regular file")
                f.truncate(0)
                f.write(data)
            return {"written": len(data)}
        if op == "file.read":
            limit = int(request["limit"])
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                info = os.fstat(f.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise ValueError(f"{request['path']!r} is not a regular file")
                if info.st_size > limit:
                    raise ValueError(
                        f"{request['path']!r} is {info.st_size} bytes, over the limit of {limit}"
                    )
                return {"data": base64.b64encode(f.read(limit)).decode()}
        if op == "file.list":
            limit = int(request.get("limit", 10_000))
            entries: list[list[Any]] = []
            with os.scandir(path) as found:
                for entry in found:
                    if len(entries) >= limit:
                        return {"error": f"{request.get('path')!r} holds more than {limit} entries"}
                    info = entry.stat(follow_symlinks=False)
                    entries.append([entry.name, info.st_size, stat.S_ISDIR(info.st_mode)])
            return {"entries": sorted(entries)}
        if op == "file.remove":
            if path == WORK:
                raise ValueError("give a path in the work directory, not the work directory itself")
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            return {}
    except FileNotFoundError:
        return {"error": f"no file {request.get('path')!r} in the work directory"}
    except NotADirectoryError:
        return {"error": f"{request.get('path')!r} is not a directory in the work directory"}
    except IsADirectoryError:
        return {"error": f"{request.get('path')!r} is a directory"}
    except (ValueError, KeyError, TypeError) as exc:
        return {"error": str(exc)}
    except OSError as exc:
        if exc.errno == 6:  # ENXIO: a FIFO nobody reads (opened without blocking)
            return {"error": f"{request.get('path')!r} is not a regular file"}
        return {"error": f"{request.get('path')!r}: {exc.strerror}"}
    return {"unknown": op}


def main() -> None:
    # Packages the program installs (pip install --user) land in the session's /tmp and are
    # importable at once (the agent runs isolated, -I, which leaves the user's site out).
    user_site = os.path.join(
        os.environ.get("PYTHONUSERBASE", "/tmp/python"),
        "lib",
        "python{}.{}".format(*sys.version_info[:2]),
        "site-packages",
    )
    os.makedirs(user_site, exist_ok=True)
    sys.path.append(user_site)
    egress = os.environ.get("SWITCHBOARD_EGRESS_SOCKET")
    if egress:  # network mode PUBLIC: the forwarder to the host's egress proxy, on this loopback
        from importlib.util import module_from_spec, spec_from_file_location

        found = spec_from_file_location("forward", "/opt/switchboard/forward.py")
        if found is not None and found.loader is not None:
            forward = module_from_spec(found)
            found.loader.exec_module(forward)
            forward.start(3128, egress)
    requests_fd, reply_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - it stays open for the agent's life
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    agent = Agent(reply_fd)
    work: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def reading() -> None:
        """Requests are read here; an interrupt is acted on at once, the rest run in order on
        the main thread (where Python delivers signals)."""
        source = os.fdopen(requests_fd, "rb", buffering=0)
        while True:
            head = source.read(FRAME.size)
            if not head or len(head) < FRAME.size:
                break
            (size,) = FRAME.unpack(head)
            body = b""
            while len(body) < size:
                chunk = source.read(size - len(body))
                if not chunk:
                    break
                body += chunk
            request = json.loads(body)
            if request.get("op") == "answer":  # (a tool call's, for the program running)
                agent.answered(request)
                continue
            if request.get("op") == "interrupt":
                if agent.busy.is_set():
                    os.kill(os.getpid(), signal.SIGINT)
                continue
            work.put(request)
        work.put(None)

    def interrupted(signum: int, frame: Any) -> None:
        if agent.busy.is_set():  # (one that comes once the answer is ready is dropped)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    threading.Thread(target=reading, daemon=True).start()
    agent.send({"ready": True})
    while True:
        request = work.get()
        if request is None:
            break
        agent.busy.set()
        try:
            answer = agent.handle(request)
        except KeyboardInterrupt:
            answer = {"stopped": "interrupted"}
        except Exception as exc:  # noqa: BLE001 - a request the agent cannot serve is answered so
            answer = {"failed": f"{type(exc).__name__}: {exc}"}
        finally:
            agent.busy.clear()
        agent.send(answer)
    for task in agent.tasks.values():
        task.stop()


if __name__ == "__main__":
    main()
