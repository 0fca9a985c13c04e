"""A2A through `switchboard serve` vs the same agent called directly.

Starts the test suite's `a2a-sdk` agent (tests/fixtures/a2a_agent.py) in a process of its own
and one gateway (one worker) whose `a2a` target fronts it; the gateway's A2A front serves it
again at /a2a/helper. The caller sends the same blocking JSON-RPC `SendMessage` ("echo ...")
to both URLs, at 1 and 16 in flight, and prints p50/p99 latency and messages per second,
with the latency the gateway hop adds and its throughput as a share of the direct path's.
A third row sends the message through the gateway's published tools agent to a function
tool, which has no upstream at all: what the front and the pipeline cost on their own.

    python bench/a2a.py [--calls 1000] [--concurrency 1 16]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import anyio
import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.federated_call import print_against  # noqa: E402
from bench.openapi_github import free_port  # noqa: E402
from bench.tools_call import Call, measure  # noqa: E402
from tests.e2e.harness import serve  # noqa: E402
from tests.e2e.test_federation import start_upstream  # noqa: E402

CONFIG = """
gateways:
  - name: default
    a2a_agent: {{name: tools}}
    targets:
      - {{name: helper, kind: a2a, url: "{url}"}}
      - {{name: fx, kind: function, functions: [bench.fixtures:echo]}}
"""
Row = tuple[str, str, int, dict[str, float]]


def sender(http: httpx2.AsyncClient, url: str, text: str, skill: str | None = None) -> Call:
    """A blocking SendMessage to ``url`` that checks the task completed."""
    headers = {"A2A-Version": "1.0"}

    async def call(i: int) -> None:
        message = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}
        if skill is not None:
            message["metadata"] = {"skill": skill}
        body = {"jsonrpc": "2.0", "id": i, "method": "SendMessage", "params": {"message": message}}
        answer = (await http.post(url, json=body, headers=headers)).json()
        state = answer.get("result", {}).get("task", {}).get("status", {}).get("state")
        if state != "TASK_STATE_COMPLETED":
            raise RuntimeError(f"the message was not answered: {answer}")

    return call


async def run(agent: str, gateway: str, calls: int, levels: list[int]) -> list[Row]:
    rows: list[Row] = []
    limits = httpx2.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    async with httpx2.AsyncClient(limits=limits, timeout=60) as http:
        callers = [
            ("direct", sender(http, f"{agent}/agent", "echo hello")),
            ("gateway", sender(http, f"{gateway}/a2a/helper", "echo hello")),
            ("tool", sender(http, f"{gateway}/a2a/tools", '{"text": "hello"}', "fx___echo")),
        ]
        for level in levels:
            for path, call in callers:
                rows.append((path, "a2a 1.0", level, await measure(call, calls, level)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    port = free_port()
    agent = start_upstream(port, "tests.fixtures.a2a_agent")
    try:
        base = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "switchboard.yaml"
            config.write_text(CONFIG.format(url=f"{base}/agent"))
            with serve(Path(tmp) / "data", config) as served:
                rows = anyio.run(run, base, served.base, args.calls, args.concurrency)
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        if agent.stdout is not None:
            agent.stdout.close()
    print(f"A2A SendMessage (blocking), {args.calls} messages per row; one gateway worker, 2 cores")
    print("direct: the agent itself; gateway: the same agent through the gateway's a2a target and A2A front;")
    print("tool: the gateway's published tools agent calling a function tool (no upstream)")
    print_against(rows, "path", "direct", ("gateway", "tool"))


if __name__ == "__main__":
    main()
