"""tools/call latency and throughput: through `switchboard serve` vs the function in-process.

Prints p50/p99 latency and calls per second at concurrency 1 and 32, for the
2025-11-25 era (session, SSE responses) and the 2026-07-28 era (stateless),
with ratios against the in-process call measured in the same run. The load
generator is a raw JSON-RPC client on httpx2 (no SDK client overhead), on the
same 2-core machine as the server: figures are the gateway hop plus the client.

    python bench/tools_call.py [--calls 2000] [--concurrency 1 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fixtures import echo
from tests.e2e.harness import serve

CONFIG = """
gateways:
  - name: default
    targets:
      - {name: bench, kind: function, functions: ["bench.fixtures:echo"]}
"""
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}

Call = Callable[[int], Awaitable[None]]


def parse(response: httpx2.Response) -> dict[str, Any]:
    body = response.content
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in body.splitlines() if line.startswith(b"data:")]
        body = data[-1]
    message: dict[str, Any] = orjson.loads(body)
    if "result" not in message or message["result"].get("isError"):
        raise RuntimeError(f"call failed: {message}")
    return message


Arguments = Callable[[int], dict[str, Any]]


def _echo_args(i: int) -> dict[str, Any]:
    return {"text": "hi", "n": i}


async def legacy_caller(
    http: httpx2.AsyncClient, url: str, tool: str = "bench___echo", args: Arguments = _echo_args
) -> Call:
    """tools/call on a 2025-11-25 session (initialised here), as a raw JSON-RPC client."""
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    r = await http.post(url, json=init, headers=ACCEPT)
    headers = {**ACCEPT, "Mcp-Session-Id": r.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)

    async def call(i: int) -> None:
        body = {
            "jsonrpc": "2.0",
            "id": i + 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": args(i)},
        }
        parse(await http.post(url, content=orjson.dumps(body), headers=headers))

    return call


async def modern_caller(
    http: httpx2.AsyncClient, url: str, tool: str = "bench___echo", args: Arguments = _echo_args
) -> Call:
    """tools/call in the stateless 2026-07-28 era, as a raw JSON-RPC client."""
    headers = {**ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": tool}

    async def call(i: int) -> None:
        params = {"name": tool, "arguments": args(i), "_meta": META}
        body = {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": params}
        parse(await http.post(url, content=orjson.dumps(body), headers=headers))

    return call


async def in_process(i: int) -> None:
    await echo("hi", i)


async def measure(call: Call, calls: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < calls:
            i = next_index
            next_index += 1
            start = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - start)

    for i in range(min(50, calls)):  # warm up
        await call(i)
    began = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "rps": calls / elapsed,
    }


async def run(url: str, calls: int, levels: list[int]) -> list[tuple[str, int, dict[str, float]]]:
    rows = []
    limits = httpx2.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    async with httpx2.AsyncClient(limits=limits, timeout=30) as http:
        for concurrency in levels:
            rows.append(
                ("in-process function", concurrency, await measure(in_process, calls * 5, concurrency))
            )
            for label, make in (("gateway 2025-11-25", legacy_caller), ("gateway 2026-07-28", modern_caller)):
                rows.append((label, concurrency, await measure(await make(http, url), calls, concurrency)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "switchboard.yaml"
        config.write_text(CONFIG)
        with serve(Path(tmp) / "data", config) as served:
            rows = anyio.run(run, served.mcp, args.calls, args.concurrency)
    print(
        f"tools/call, {args.calls} calls per row (in-process: {args.calls * 5}); one gateway worker, 2 cores"
    )
    print(
        f"{'path':<22} {'conc':>4} {'p50 ms':>9} {'p99 ms':>9} {'added p50 ms':>13} {'calls/s':>10}"
        f" {'x in-process p50':>17}"
    )
    base: dict[int, dict[str, float]] = {c: r for label, c, r in rows if label == "in-process function"}
    for label, concurrency, r in rows:
        b = base[concurrency]
        print(
            f"{label:<22} {concurrency:>4} {r['p50_ms']:>9.4f} {r['p99_ms']:>9.4f}"
            f" {r['p50_ms'] - b['p50_ms']:>13.3f} {r['rps']:>10.0f} {r['p50_ms'] / b['p50_ms']:>17.0f}"
        )


if __name__ == "__main__":
    main()
