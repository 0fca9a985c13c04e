"""Code interpreter sessions, per sandbox backend that runs here (issue 18's goals in brackets).

Rows, each against a baseline measured in the same run:

  start warm       a session taken from the warm pool (Interpreter.start)      [<= 20 ms, bwrap]
  start cold       a sandbox made and its kernel started, no pool (microvm: from its snapshot)
                                                                             [<= 200 ms, microvm]
      baseline:    spawning /bin/true on the host and waiting for it (the floor of any start)
  print(1)         executeCode print(1) in a live session, in process
      baseline:    exec("print(1)") in this process, output captured
  print(1) MCP     the same through `switchboard serve` and an MCP client     [<= 5 ms p50, bwrap]
      baseline:    a function target's tools/call through the same serve and client
  exec/s           executeCode print(1) back to back in one session, and in two  [>= 100/s]
  idle memory      what a started, idle session holds (its control group: agent, bwrap, files)

    python bench/sandbox.py [--calls 300] [--starts 30] [--backends bwrap,gvisor,microvm]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from mcp import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # (ahead of bench/, whose sandbox.py is this file)

from sandbox import Interpreter, InterpreterConfig, SandboxError, backend_for  # noqa: E402
from sandbox._kernel import Kernel  # noqa: E402

BACKENDS = ("bwrap", "gvisor", "microvm")
CONFIG = """
gateways:
  - name: default
    targets:
      - name: py
        kind: code_interpreter
        backend: {backend}
        warm: 1
      - name: fx
        kind: function
        functions: [tests.fixtures.functions:add]
"""


def _stats(values: list[float]) -> tuple[float, float]:
    p95 = statistics.quantiles(values, n=20)[18] if len(values) >= 20 else max(values)
    return statistics.median(values), p95


async def _timed(call: Callable[[], Awaitable[object]], times: int) -> list[float]:
    out = []
    for _ in range(times):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _spawn_true(times: int) -> list[float]:
    out = []
    for _ in range(times):
        start = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _exec_print(times: int) -> list[float]:
    out = []
    for _ in range(times):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            exec("print(1)", {})  # the baseline: Python running the same code here
        out.append((time.perf_counter() - start) * 1000)
    return out


async def _in_process(backend: str, root: Path, calls: int, starts: int) -> dict[str, list[float] | float]:
    rows: dict[str, list[float] | float] = {}
    interpreter = Interpreter("bench", InterpreterConfig(backend=backend, warm=2), root)
    async with interpreter.running():
        await anyio.sleep(2)  # (the pool fills)
        warm = []
        for _ in range(starts):
            while not interpreter.pool.ready:  # noqa: ASYNC110 - a refill, so each start is a warm one
                await anyio.sleep(0.01)
            start = time.perf_counter()
            session = await interpreter.start("bench")
            warm.append((time.perf_counter() - start) * 1000)
            await interpreter.stop(session.id, "bench")
        rows["start warm"] = warm
        session = await interpreter.start("bench")
        assert session.box is not None
        rows["idle memory MiB"] = session.box.usage().memory_bytes / 2**20

        async def run() -> None:
            result = await interpreter.invoke(session.id, "executeCode", {"code": "print(1)"}, "bench")
            assert result["structuredContent"]["stdout"] == "1\n", result

        await _timed(run, 20)
        rows["print(1)"] = await _timed(run, calls)
        began = time.perf_counter()
        for _ in range(calls):
            await run()
        rows["exec/s, 1 session"] = calls / (time.perf_counter() - began)
        other = await interpreter.start("bench")

        async def run_other() -> None:
            await interpreter.invoke(other.id, "executeCode", {"code": "print(1)"}, "bench")

        began = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for call in (run, run_other):

                async def loop(call: Callable[[], Awaitable[None]] = call) -> None:
                    for _ in range(calls):
                        await call()

                tg.start_soon(loop)
        rows["exec/s, 2 sessions"] = 2 * calls / (time.perf_counter() - began)
    cold_backend = backend_for(backend, root / "cold")
    cold = []
    for turn in range(max(5, starts // 3) + 1):  # (the first makes the microVM's snapshot: not timed)
        start = time.perf_counter()
        box = await cold_backend.start(interpreter.options)
        kernel = Kernel(box)
        await kernel.call({"op": "ping"}, wall=60)
        if turn:
            cold.append((time.perf_counter() - start) * 1000)
        await kernel.stop()
        await box.stop()
    rows["start cold"] = cold
    return rows


def _serve(data_dir: Path, config: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--port", "0", "--data-dir", str(data_dir)]
    cmd += ["--config", str(config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SWITCHBOARD_TRACING": "false"}
    out = subprocess.PIPE
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    base = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if found := re.search(r"serving on (\S+)", line):
            base = found.group(1)
        if base and "admin API" in line:
            break
    if not base:
        proc.kill()
        raise SystemExit("switchboard serve did not start")
    stream = proc.stdout
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()  # keep the pipe drained
    return proc, base


async def _through_mcp(backend: str, root: Path, calls: int) -> dict[str, list[float]]:
    config = root / "switchboard.yaml"
    config.write_text(CONFIG.format(backend=backend))
    proc, base = _serve(root / "data", config)
    try:
        async with Client(f"{base}/mcp", mode="legacy") as client:

            async def sandboxed() -> None:
                result = await client.call_tool("py___executeCode", {"code": "print(1)"})
                assert not result.is_error, result

            async def plain() -> None:
                await client.call_tool("fx___add", {"a": 1, "b": 2})

            await _timed(sandboxed, 20)
            await _timed(plain, 20)
            rows: dict[str, list[float]] = {"print(1) MCP": [], "function MCP": []}
            for _ in range(3):  # rounds alternate, so machine noise hits both alike
                rows["print(1) MCP"] += await _timed(sandboxed, calls // 3)
                rows["function MCP"] += await _timed(plain, calls // 3)
            return rows
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--starts", type=int, default=30)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="which, comma-separated")
    args = parser.parse_args()
    spawn = _spawn_true(args.starts)
    local = _exec_print(args.calls)
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                rows = anyio.run(_in_process, backend, Path(tmp), args.calls, args.starts)
            except SandboxError as exc:
                print(f"{backend}: cannot run here: {exc}")
                continue
            mcp = anyio.run(_through_mcp, backend, Path(tmp), args.calls)
        print(f"\n{backend}: {args.starts} starts, {args.calls} calls (baselines measured in this run)")
        print(f"{'row':<20} {'p50 ms':>9} {'p95 ms':>9} {'x baseline':>11}  baseline")
        spawn_p50, local_p50 = statistics.median(spawn), statistics.median(local)
        function_p50 = statistics.median(mcp["function MCP"])
        for name, values, baseline, what in (
            ("start warm", rows["start warm"], spawn_p50, "spawn /bin/true"),
            ("start cold", rows["start cold"], spawn_p50, "spawn /bin/true"),
            ("print(1)", rows["print(1)"], local_p50, "exec in process"),
            ("print(1) MCP", mcp["print(1) MCP"], function_p50, "function tools/call"),
        ):
            assert isinstance(values, list)
            p50, p95 = _stats(values)
            print(f"{name:<20} {p50:9.3f} {p95:9.3f} {p50 / baseline:11.2f}  {what} ({baseline:.3f} ms)")
        for name in ("exec/s, 1 session", "exec/s, 2 sessions", "idle memory MiB"):
            value = rows[name]
            assert isinstance(value, float)
            print(f"{name:<20} {value:9.1f}")


if __name__ == "__main__":
    main()
