"""OpenAPI targets: GitHub's REST document, and the call overhead of an OpenAPI target.

Prints, for GitHub's document (npm @octokit/openapi, installed by `make tools`):
compile time, peak RSS of a process that only compiles it, tool count, bytes of
tool definitions, and warm tools/list time through a running gateway. Then
tools/call through the gateway (both eras) vs a direct HTTP GET to the same
local upstream (bench/upstream.py), p50/p99 and calls/s at concurrency 1 and 32.

    python bench/openapi_github.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tools_call import ACCEPT, META, MODERN, legacy_caller, measure, modern_caller, parse  # noqa: E402
from tests.e2e.harness import serve  # noqa: E402

GITHUB = ROOT / ".tools" / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"

COMPILE_ONLY = """
import resource, sys, time
from pathlib import Path
t = time.perf_counter()
from gateway.openapi.document import open_document
from gateway.openapi.compiler import Compiler
imported = time.perf_counter()
compiled = Compiler(open_document(sys.argv[1], base_dir=Path.cwd(), fetch_url=None)).compile()
done = time.perf_counter()
print(done - imported, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(compiled.tools))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def compile_figures() -> tuple[float, float, int]:
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", COMPILE_ONLY, str(GITHUB)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        runs.append((float(out[0]), float(out[1]), int(out[2])))
    runs.sort()
    return runs[1]


async def list_all(http: httpx2.AsyncClient, url: str) -> list[dict[str, object]]:
    headers = {**ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}
    tools: list[dict[str, object]] = []
    cursor = None
    while True:
        params: dict[str, object] = {"_meta": META}
        if cursor:
            params["cursor"] = cursor
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}
        result = parse(await http.post(url, content=orjson.dumps(body), headers=headers))["result"]
        tools += result["tools"]
        cursor = result.get("nextCursor")
        if not cursor:
            return tools


async def github_listing(tmp: Path) -> tuple[int, int, float]:
    config = tmp / "github.yaml"
    config.write_text(
        f"gateways:\n  - name: default\n    targets:\n"
        f"      - {{name: gh, kind: openapi, spec: {GITHUB}, base_url: 'http://127.0.0.1:9'}}\n"
    )
    with serve(tmp / "gh-data", config) as served:
        async with httpx2.AsyncClient(timeout=60) as http:
            tools = await list_all(http, served.mcp)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                await list_all(http, served.mcp)
                times.append(time.perf_counter() - start)
    return len(tools), len(orjson.dumps(tools)), sorted(times)[2]


async def call_overhead(tmp: Path, calls: int, levels: list[int]) -> list[tuple[str, int, dict[str, float]]]:
    port, proxy_port = free_port(), free_port()
    proxy = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [sys.executable, "bench/sdk_proxy.py", str(proxy_port), f"http://127.0.0.1:{port}"], cwd=ROOT
    )
    upstream = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.upstream:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx2.AsyncClient() as probe:
            for _ in range(200):
                try:
                    await probe.get(f"{base}/items/1")
                    break
                except httpx2.ConnectError:
                    await anyio.sleep(0.05)
        config = tmp / "items.yaml"
        config.write_text(
            "gateways:\n  - name: default\n    targets:\n"
            f"      - {{name: items, kind: openapi, spec: {ROOT / 'specs' / 'items.yaml'}, "
            f"base_url: '{base}'}}\n"
        )
        rows = []
        with serve(tmp / "items-data", config) as served:
            limits = httpx2.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
            async with httpx2.AsyncClient(limits=limits, timeout=30) as http:

                async def direct(i: int) -> None:
                    response = await http.get(f"{base}/items/{i % 1000 + 1}")
                    response.raise_for_status()

                def item(i: int) -> dict[str, Any]:
                    return {"id": i % 1000 + 1}

                sdk_url = f"http://127.0.0.1:{proxy_port}/mcp"
                for _ in range(200):  # the reference proxy starts in its own process
                    try:
                        await http.get(f"http://127.0.0.1:{proxy_port}/")
                        break
                    except httpx2.ConnectError:
                        await anyio.sleep(0.05)
                tool = "items___getItem"
                sdk_legacy = await legacy_caller(http, sdk_url, tool, item)
                sdk_modern = await modern_caller(http, sdk_url, tool, item)
                legacy = await legacy_caller(http, served.mcp, tool, item)
                modern = await modern_caller(http, served.mcp, tool, item)

                for level in levels:
                    for label, call in (
                        ("direct HTTP GET", direct),
                        ("SDK proxy 2025-11-25", sdk_legacy),
                        ("SDK proxy 2026-07-28", sdk_modern),
                        ("gateway 2025-11-25", legacy),
                        ("gateway 2026-07-28", modern),
                    ):
                        rows.append((label, level, await measure(call, calls, level)))
        return rows
    finally:
        for process in (upstream, proxy):
            process.terminate()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 32])
    args = parser.parse_args()
    if not GITHUB.exists():
        sys.exit("GitHub's REST document is missing: run `make tools`")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    seconds, rss, count = compile_figures()
    print(f"GitHub REST API ({GITHUB.stat().st_size / 1e6:.1f} MB JSON), median of 3 fresh processes:")
    print(f"  compile (load + compile): {seconds:.3f} s   peak RSS: {rss:.0f} MB   tools: {count}")
    with tempfile.TemporaryDirectory() as tmp:
        listed, size, list_time = anyio.run(github_listing, Path(tmp))
        print(
            f"  tools/list through the gateway: {listed} tools, {size / 1e6:.2f} MB of tool definitions, "
            f"warm full listing (all pages) {list_time * 1000:.1f} ms"
        )
        rows = anyio.run(call_overhead, Path(tmp), args.calls, args.concurrency)
    print(f"\ntools/call GET /items/{{id}} on a local upstream, {args.calls} calls per row; one worker each")
    print(f"{'path':<22} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9} {'added p50 ms':>13}")
    base = {level: r for label, level, r in rows if label == "direct HTTP GET"}
    for label, level, r in rows:
        print(
            f"{label:<22} {level:>4} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['rps']:>9.0f} "
            f"{r['p50_ms'] - base[level]['p50_ms']:>13.3f}"
        )


if __name__ == "__main__":
    main()
