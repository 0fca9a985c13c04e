"""Hosted agents (ADR 0039) through `switchboard serve`, against the same app called directly.

Deploys the test suite's agent (tests/fixtures/runtime_agent: bedrock-agentcore's
BedrockAgentCoreApp) with `switchboard runtime deploy`, runs the same version's app on the host
(its venv, uvicorn on a free port) as the baseline, and serves it through one gateway (one
worker) twice: without a warm pool and with one. Prints, p50 and p99 where they are times:

  invoke            POST /invocations in a live session, through the gateway     [overhead <= 2 ms p50]
      baseline:     the same POST to the app run directly on the host, in turns of ten with it
  start cold        the first call of a new session (a sandbox and the app started)
  start warm        the same with SWITCHBOARD_RUNTIME_WARM=2 (an app started ahead)  [<= 50 ms]
      baseline:     a call in a live session (what a start adds is the difference)
  sessions per GB   idle sessions that fit in a GiB (the admin API's memory figure)

    python bench/runtime.py [--calls 300] [--starts 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.openapi_github import free_port  # noqa: E402
from tests.e2e.harness import serve  # noqa: E402

AGENT = ROOT / "tests" / "fixtures" / "runtime_agent"
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
CONFIG = "gateways:\n  - name: default\n"


def _stats(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, int(len(values) * 0.99))]


def _timed(http: httpx2.Client, url: str, headers: dict[str, str], calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        began = time.perf_counter()
        answer = http.post(url, json={"n": 1}, headers=headers)
        out.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
    return out


@contextlib.contextmanager
def _direct(venv: Path, code: Path) -> Iterator[str]:
    """The app on the host: its own venv, uvicorn on a free port; its /invocations URL."""
    port = free_port()
    run = f"import sys; sys.path.insert(0, {str(code)!r}); import main, uvicorn; "
    run += f"uvicorn.run(main.app, port={port}, log_level='warning')"
    quiet = subprocess.DEVNULL
    app = subprocess.Popen([str(venv / "bin" / "python"), "-c", run], cwd=code, stdout=quiet, stderr=quiet)
    try:
        with httpx2.Client(timeout=30) as http:
            for _ in range(300):
                try:
                    http.get(f"http://127.0.0.1:{port}/ping").raise_for_status()
                    break
                except httpx2.HTTPError:
                    time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        app.terminate()
        app.wait(10)


def _served(
    data: Path, calls: int, starts: int, warm: int, admin: dict[str, str], direct: str
) -> dict[str, list[float] | float]:
    """Rows through a gateway on ``data``, the invocations taken in turn with the same call to
    the app run directly (``direct``: both rows see the machine as it is at that moment);
    ``admin`` is filled with its admin key's headers (the key is printed on the first start)."""
    rows: dict[str, list[float] | float] = {}
    config = data.parent / f"switchboard-{warm}.yaml"
    config.write_text(CONFIG)
    with (
        serve(data, config, env={"SWITCHBOARD_RUNTIME_WARM": str(warm)}) as served,
        httpx2.Client(timeout=120) as http,
    ):
        url = f"{served.base}/runtimes/echo/invocations"
        live = {SESSION: "l" * 40}
        _timed(http, url, live, 20)
        _timed(http, direct, {SESSION: "d" * 40}, 20)
        invoked: list[float] = []
        baseline: list[float] = []
        for _ in range(calls // 10):  # (in turns of ten)
            baseline += _timed(http, direct, {SESSION: "d" * 40}, 10)
            invoked += _timed(http, url, live, 10)
        rows["invoke"], rows["direct"] = invoked, baseline
        started = []
        for _ in range(starts):
            time.sleep(1.0 if warm else 0)  # (the pool refills between starts)
            started += _timed(http, url, {SESSION: secrets.token_hex(20)}, 1)
        rows["start"] = started
        if not admin:
            admin.update(served.admin_headers)
        sessions = http.get(f"{served.base}/admin/v1/runtime-sessions", headers=admin).json()["sessions"]
        memory = [s["memory_bytes"] for s in sessions if s["memory_bytes"]]
        rows["sessions per GB"] = (1 << 30) / statistics.median(memory) if memory else 0.0
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--starts", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        deploy = [sys.executable, "-m", "gateway.cli", "runtime", "deploy", str(AGENT), "--name", "echo"]
        subprocess.run([*deploy, "--data-dir", str(data)], cwd=ROOT, check=True, capture_output=True)
        version = json.loads(
            next((data / "runtimes" / "default" / "echo").glob("v*/version.json")).read_text()
        )
        admin: dict[str, str] = {}
        with _direct(Path(version["venv"]), Path(version["code"])) as url:
            cold = _served(data, args.calls, args.starts, 0, admin, url)
            warm = _served(data, args.calls, args.starts, 2, admin, url)
    direct = cold["direct"]
    assert isinstance(direct, list)
    base50, base99 = _stats(direct)
    print(f"hosted agent calls: {args.calls} a row, {args.starts} session starts a row; 1 worker, 2 cores")
    print(f"{'row':<26} {'p50 ms':>8} {'p99 ms':>8} {'p50 - baseline':>15} {'p50 x':>7}")
    print(f"{'direct (baseline)':<26} {base50:>8.2f} {base99:>8.2f}")
    for label, rows in (
        ("invoke", cold["invoke"]),
        ("start cold", cold["start"]),
        ("start warm", warm["start"]),
    ):
        assert isinstance(rows, list)
        p50, p99 = _stats(rows)
        print(f"{label:<26} {p50:>8.2f} {p99:>8.2f} {p50 - base50:>15.2f} {p50 / base50:>7.2f}")
    print(f"{'sessions per GB (idle)':<26} {cold['sessions per GB']:>8.1f}")
    os.environ.pop("SWITCHBOARD_RUNTIME_WARM", None)


if __name__ == "__main__":
    main()
