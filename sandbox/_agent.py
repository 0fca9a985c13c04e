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
import io
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

FRAME = struct.Struct(">I")


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

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        os.write(self.reply_fd, FRAME.pack(len(body)) + body)

    # -- Python with state ------------------------------------------------------------------
    def python(self, code: str, cap: int) -> dict[str, Any]:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        out, err = Capture(out_r, cap), Capture(err_r, cap)
        saved = os.dup(1), os.dup(2)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.close(out_w)
        os.close(err_w)
        error = None
        try:
            self._run(code)
        except KeyboardInterrupt:
            error = "KeyboardInterrupt: the execution was interrupted"
        except BaseException as exc:  # noqa: BLE001 - the program's own error, reported as its traceback
            error = None if isinstance(exc, SystemExit) and exc.code in (None, 0) else _trace(exc)
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # (the program may have replaced or closed it)
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        images = self._figures()
        return {
            "stdout": out.text(),
            "stderr": err.text(),
            "truncated": out.cut or err.cut,
            "error": error,
            "images": images,
        }

    def _run(self, code: str) -> None:
        tree = ast.parse(code, "<code>", "exec")
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if last is not None:
            tree.body = tree.body[:-1]
        exec(compile(tree, "<code>", "exec"), self.namespace)
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
