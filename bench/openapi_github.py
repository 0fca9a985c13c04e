"""OpenAPI targets: what GitHub's REST document costs `serve` and `tools`, and the call overhead.

For GitHub's document (npm @octokit/openapi, installed by `make tools`), each figure
the median of fresh processes, beside a baseline measured in the same run:

- `switchboard serve`: time from launch to its first complete tools/list (all pages),
  and its peak RSS; baseline: the same with a one-operation document (specs/items.yaml),
  i.e. the gateway's own start-up, which the catalog's cost comes on top of;
- reload: an admin API change answered and its tools/list served, for a target added to
  GitHub's gateway (the GitHub target kept as it was) and for the GitHub target itself
  changed (its document compiled again);
- `switchboard tools`: wall and CPU time; baselines: `python -c pass`, and parsing the
  document's JSON alone;
- importing the app alone (`python -c 'import gateway.app'`), most of serve's own start-up;
- compiling the document alone, and warm tools/list through a running gateway.

Then tools/call through the gateway (both eras) vs a direct HTTP GET to the same local
upstream (bench/upstream.py), p50/p99 and calls/s at each concurrency.

    python bench/openapi_github.py [--runs 3] [--calls 2000] [--github-only]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tools_call import ACCEPT, META, MODERN, legacy_caller, measure, modern_caller, parse  # noqa: E402
from tests.e2e.harness import Served, serve  # noqa: E402

GITHUB = ROOT / ".tools" / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
ITEMS = ROOT / "specs" / "items.yaml"

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
PARSE_ONLY = "import orjson, sys; orjson.loads(open(sys.argv[1], 'rb').read())"
INLINE_TARGET = {
    "name": "extra",
    "kind": "openapi",
    "base_url": "http://127.0.0.1:9",
    "spec": {
        "openapi": "3.0.3",
        "info": {"title": "extra", "version": "1"},
        "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "ok"}}}}},
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed_process(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh process run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def process_figures(cmd: list[str], runs: int) -> tuple[float, float]:
    results = [timed_process(cmd) for _ in range(runs)]
    return median([w for w, _ in results]), median([c for _, c in results])


def compile_figures(runs: int) -> tuple[float, float, int]:
    out = []
    for _ in range(runs):
        cmd = [sys.executable, "-c", COMPILE_ONLY, str(GITHUB)]
        fields = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        out.append((float(fields[0]), float(fields[1]), int(fields[2])))
    out.sort()
    return out[len(out) // 2]


def write_config(path: Path, spec: Path, name: str) -> Path:
    path.write_text(
        f"gateways:\n  - name: default\n    targets:\n"
        f"      - {{name: {name}, kind: openapi, spec: {spec}, base_url: 'http://127.0.0.1:9'}}\n"
    )
    return path


async def list_all(http: httpx2.AsyncClient, url: str) -> list[dict[str, Any]]:
    headers = {**ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}
    tools: list[dict[str, Any]] = []
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


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def timed(step: Callable[[], Any]) -> float:
    start = time.perf_counter()
    await step()
    return time.perf_counter() - start


class ServeRun:
    """One `switchboard serve` from launch: ready time, peak RSS, and (optionally) reloads."""

    def __init__(self, tmp: Path, config: Path, reloads: bool) -> None:
        self.tmp, self.config, self.reloads = tmp, config, reloads
        self.ready = self.rss = self.rss_end = self.reload_added = self.reload_changed = float("nan")
        self.tools = self.listing_bytes = 0
        self.warm_list = float("nan")

    async def run(self, index: int) -> None:
        start = time.perf_counter()
        with serve(self.tmp / f"data-{self.config.stem}-{index}", self.config) as served:
            async with httpx2.AsyncClient(timeout=120) as http:
                tools = await list_all(http, served.mcp)
                self.ready = time.perf_counter() - start
                self.rss = peak_rss_mb(served.proc.pid)
                self.tools, self.listing_bytes = len(tools), len(orjson.dumps(tools))
                warm = [await timed(lambda: list_all(http, served.mcp)) for _ in range(3)]
                self.warm_list = median(warm)
                if self.reloads:
                    await self._reloads(http, served, len(tools))
            self.rss_end = peak_rss_mb(served.proc.pid)

    async def _reloads(self, http: httpx2.AsyncClient, served: Served, count: int) -> None:
        admin = f"{served.base}/admin/v1/gateways/default/targets"
        headers = served.admin_headers

        async def add() -> None:
            answer = await http.post(admin, json=INLINE_TARGET, headers=headers)
            answer.raise_for_status()
            assert len(await list_all(http, served.mcp)) == count + 1

        self.reload_added = await timed(add)
        target = (await http.get(f"{admin}/gh", headers=headers)).json()

        async def change() -> None:
            changed = {**target, "timeout_seconds": 45.0}
            answer = await http.put(f"{admin}/gh", json=changed, headers=headers)
            answer.raise_for_status()
            assert len(await list_all(http, served.mcp)) == count + 1

        self.reload_changed = await timed(change)


async def serve_figures(tmp: Path, config: Path, runs: int, reloads: bool) -> list[ServeRun]:
    out = []
    for index in range(runs):
        one = ServeRun(tmp, config, reloads)
        await one.run(index)
        out.append(one)
    return out


def github_report(runs: int) -> None:
    python = [sys.executable]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gh = write_config(tmp / "github.yaml", GITHUB, "gh")
        small = write_config(tmp / "items.yaml", ITEMS, "items")
        pass_wall, pass_cpu = process_figures([*python, "-c", "pass"], runs)
        parse_wall, parse_cpu = process_figures([*python, "-c", PARSE_ONLY, str(GITHUB)], runs)
        import_wall, _ = process_figures([*python, "-c", "import gateway.app"], runs)
        tools_cmd = [*python, "-m", "gateway.cli", "tools", "--json", "--config"]
        small_tools = process_figures([*tools_cmd, str(small)], runs)
        gh_tools = process_figures([*tools_cmd, str(gh)], runs)
        seconds, compile_rss, count = compile_figures(runs)
        base = anyio.run(serve_figures, tmp, small, runs, False)
        github = anyio.run(serve_figures, tmp, gh, runs, True)

    def m(rows: list[ServeRun], field: str) -> float:
        return median([getattr(r, field) for r in rows])

    size = GITHUB.stat().st_size / 1e6
    print(
        f"GitHub REST API ({size:.1f} MB JSON, {count} operations), median of {runs} fresh processes each\n"
    )
    print(f"{'':44} {'GitHub':>9} {'baseline':>9} {'ratio':>6}  baseline")
    rows = [
        (
            "serve: launch to first full tools/list, s",
            m(github, "ready"),
            m(base, "ready"),
            "serve, one-operation document",
        ),
        ("serve: peak RSS when ready, MB", m(github, "rss"), m(base, "rss"), "serve, one-operation document"),
        ("tools: wall, s", gh_tools[0], small_tools[0], "tools, one-operation document"),
        ("tools: CPU, s", gh_tools[1], small_tools[1], "tools, one-operation document"),
        ("tools: wall, s (vs python -c pass)", gh_tools[0], pass_wall, "python -c pass"),
        ("tools: CPU, s (vs parsing the JSON alone)", gh_tools[1], parse_cpu, "orjson.loads of the document"),
    ]
    for label, value, baseline, what in rows:
        print(f"{label:<44} {value:>9.3f} {baseline:>9.3f} {value / baseline:>6.2f}  {what}")
    print(
        f"\n  the catalog's own share of serve's time to ready: {m(github, 'ready') - m(base, 'ready'):.3f} s"
        f"  (python -c pass: {pass_wall:.3f} s wall, {pass_cpu:.3f} s CPU;"
        f" parsing the JSON alone: {parse_wall:.3f} s wall)"
    )
    print(
        f"  reload, a target added to GitHub's gateway (admin API answered + tools/list): "
        f"{m(github, 'reload_added'):.3f} s"
    )
    print(
        f"  reload, the GitHub target itself changed (its document compiled again):      "
        f"{m(github, 'reload_changed'):.3f} s"
    )
    print(f"  serve's peak RSS after both reloads: {m(github, 'rss_end'):.0f} MB")
    print(f"  importing the app alone (python -c 'import gateway.app'): {import_wall:.3f} s wall")
    print(f"  compile alone (load + compile): {seconds:.3f} s, peak RSS {compile_rss:.0f} MB")
    print(
        f"  tools/list through the gateway: {github[0].tools} tools, {github[0].listing_bytes / 1e6:.2f} MB"
        f" of tool definitions, warm full listing (all pages) {m(github, 'warm_list') * 1000:.1f} ms"
    )


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
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 32])
    parser.add_argument("--github-only", action="store_true", help="skip the tools/call overhead table")
    args = parser.parse_args()
    if not GITHUB.exists():
        sys.exit("GitHub's REST document is missing: run `make tools`")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print("load average (1, 5, 15 min) at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    github_report(args.runs)
    print(
        "load average (1, 5, 15 min) after the GitHub figures: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    )
    if args.github_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
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
