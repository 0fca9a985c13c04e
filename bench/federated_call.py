"""Federated tools/call: an MCP server through `switchboard serve` vs the same server called directly.

Starts the Python SDK server of the federation tests (tests/fixtures/upstream_mcp.py)
and one gateway (one process, one worker) that federates it twice: `target` (the
2026-07-28 era, discovered) and `target25` (pinned to the 2025-11-25 handshake), so
each era is measured end to end in that era. Prints p50/p99 latency and calls per
second of `add` at concurrency 1 and 32, directly and through the gateway, with the
latency the gateway adds and its throughput as a share of the direct path's. The
load generator is the raw JSON-RPC client of bench/tools_call.py on both paths, on
the same 2-core machine as both servers.

    python bench/federated_call.py [--calls 2000] [--concurrency 1 32]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.openapi_github import free_port  # noqa: E402
from bench.tools_call import Call, legacy_caller, measure, modern_caller  # noqa: E402
from tests.e2e.harness import serve  # noqa: E402
from tests.e2e.test_federation import start_upstream  # noqa: E402

CONFIG = """
gateways:
  - name: default
    targets:
      - {{name: target, kind: mcp, url: "{url}"}}
      - {{name: target25, kind: mcp, url: "{url}", protocol: legacy}}
"""
LEGACY, MODERN = "2025-11-25", "2026-07-28"

Row = tuple[str, str, int, dict[str, float]]


def add_args(i: int) -> dict[str, Any]:
    return {"a": i, "b": 1}


async def run(upstream: str, gateway: str, calls: int, levels: list[int]) -> list[Row]:
    rows: list[Row] = []
    limits = httpx2.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    async with httpx2.AsyncClient(limits=limits, timeout=30) as http:
        callers: list[tuple[str, str, Call]] = [
            ("direct", LEGACY, await legacy_caller(http, upstream, "add", add_args)),
            ("gateway", LEGACY, await legacy_caller(http, gateway, "target25___add", add_args)),
            ("direct", MODERN, await modern_caller(http, upstream, "add", add_args)),
            ("gateway", MODERN, await modern_caller(http, gateway, "target___add", add_args)),
        ]
        for level in levels:
            for path, era, call in callers:
                rows.append((path, era, level, await measure(call, calls, level)))
    return rows


def print_against(rows: list[Row], label: str, baseline: str, measured: str | tuple[str, ...]) -> None:
    """One table: every row, and each `measured` row against the `baseline` row of its era and level."""
    against = (measured,) if isinstance(measured, str) else measured
    ratio = f"calls/s {measured}/{baseline}" if isinstance(measured, str) else f"calls/s x {baseline}"
    print(
        f"{label:<8} {'era':<10} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>8}"
        f" {'added p50':>10} {'added p99':>10} {'p50 x':>6} {ratio:>20}"
    )
    base = {(era, level): r for name, era, level, r in rows if name == baseline}
    for name, era, level, r in rows:
        line = f"{name:<8} {era:<10} {level:>4} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['rps']:>8.0f}"
        if name in against:
            d = base[(era, level)]
            line += (
                f" {r['p50_ms'] - d['p50_ms']:>10.3f} {r['p99_ms'] - d['p99_ms']:>10.3f}"
                f" {r['p50_ms'] / d['p50_ms']:>6.2f} {r['rps'] / d['rps']:>20.2f}"
            )
        print(line)


def report(rows: list[Row], calls: int) -> None:
    print(f"federated tools/call `add`, {calls} calls per row; one gateway worker, 2 cores")
    print_against(rows, "path", "direct", "gateway")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    port = free_port()
    upstream = start_upstream(port)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "switchboard.yaml"
            config.write_text(CONFIG.format(url=url))
            with serve(Path(tmp) / "data", config) as served:
                rows = anyio.run(run, url, served.mcp, args.calls, args.concurrency)
    finally:
        upstream.terminate()
        try:
            upstream.wait(10)
        except subprocess.TimeoutExpired:
            upstream.kill()
            upstream.wait()
        if upstream.stdout is not None:
            upstream.stdout.close()
    report(rows, args.calls)


if __name__ == "__main__":
    main()
