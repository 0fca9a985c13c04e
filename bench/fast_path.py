"""The fast path's table (issue 9): direct call, mcp-SDK reference, Switchboard off and on, both eras.

Starts the local REST upstream (bench/upstream.py, GET /items/{id}), the reference proxy
on the `mcp` SDK's own Streamable HTTP server (bench/sdk_proxy.py) and `switchboard serve`
processes over an OpenAPI target on specs/items.yaml pointed at that upstream:

  direct   GET /items/{id} to the upstream, on an httpx2 client like the MCP rows' ones
  sdk      the reference proxy, tool `items___getItem`, in both protocol eras
  off      one worker; SWITCHBOARD_TRACING=false, SWITCHBOARD_AUDIT=false, no auth, no policy
  on       one worker; tracing on (embedded trace store), call audit on, `auth: {kind: api_key}`
           and one Cedar policy permitting the tool; called with an API key made through the
           admin API (sent as `Authorization: Bearer`)
  on x2    the `on` configuration served with `--workers 2`, in the 2026-07-28 era only (a
           2025-era session lives in one worker, and requests reaching the other take a detour
           through it: ADR 0019); also at concurrency 32, where direct, sdk, off and on of that
           era are measured too

The load is the raw JSON-RPC client of bench/tools_call.py, on the same machine as every
server (the idle ones wait), with one httpx2 client per server, all alike (one shared pool
would slow every row: httpcore2 polls each idle connection whenever it hands one out). Each
row's calls are split in rounds; each round measures every row of its concurrency back to
back, in an order that rotates, so machine noise hits them alike; the figures are each row's
median over its rounds. Prints p50/p99 latency, calls per second, the p50/p99 added over the
direct call, calls/s as a share of the direct call's and of the SDK reference's in the same
era, for `on` rows calls/s on/off (against `off` of the same era), and for the multi-worker
rows calls/s against one worker's (`on`). Then how many audit records and spans each server
wrote, as a check of the settings.

    python bench/fast_path.py [--calls 1200] [--rounds 6] [--workers 2] [--concurrency 1 16]

`--workers 0` leaves the multi-worker rows out. Under wrk, each server row also shows the CPU
its processes used (cores = CPU seconds a second, the workers' together) and calls per
core-second, and the multi-worker row that rate over one worker's: 1.0 means throughput grows
in step with the cores the workers get.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.federated_call import LEGACY, MODERN, Row  # noqa: E402
from bench.openapi_github import free_port  # noqa: E402
from bench.tools_call import ACCEPT, META, Call, legacy_caller, measure, modern_caller  # noqa: E402
from bench.tracing import COMMON, VARIANTS, stop  # noqa: E402
from tests.e2e.harness import Served, serve  # noqa: E402

TOOL = "items___getItem"
WIDE = 32  # the extra concurrency of the multi-worker rows
OFF_ENV = {**COMMON, **VARIANTS["off"], "SWITCHBOARD_AUDIT": "false"}
ON_ENV = {**COMMON, **VARIANTS["store"], "SWITCHBOARD_AUDIT": "true"}
ROWS = {
    "direct": "GET /items/{id} straight to the upstream (httpx2; every row its own client, all alike)",
    "sdk": "bench/sdk_proxy.py: one tool on the mcp SDK's Streamable HTTP server (one uvicorn worker)",
    "off": "switchboard serve, 1 worker: tracing off, audit off, no auth, no policy",
    "on": "switchboard serve, 1 worker: tracing (trace store) + audit + api_key auth + 1 Cedar permit",
    "on x{n}": "the `on` server with --workers {n} (2026-07-28 only; also at concurrency 32)",
}


def item(i: int) -> dict[str, Any]:
    return {"id": i % 1000 + 1}


def gateway_config(path: Path, upstream: str, *, guarded: bool) -> Path:
    """The one gateway over specs/items.yaml; `guarded` adds API-key auth and a Cedar permit."""
    gateway: dict[str, Any] = {
        "name": "default",
        "targets": [
            {
                "name": "items",
                "kind": "openapi",
                "spec": str(ROOT / "specs" / "items.yaml"),
                "base_url": upstream,
            }
        ],
    }
    if guarded:
        gateway["auth"] = {"kind": "api_key"}
        gateway["policies"] = [f'permit(principal, action == Switchboard::Action::"{TOOL}", resource);']
    path.write_bytes(orjson.dumps({"gateways": [gateway]}))  # JSON is YAML
    return path


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def helper(port: int, *argv: str) -> Iterator[None]:
    """A process of ours (the upstream, the reference proxy) that listens on `port`, until the block ends."""
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(argv)} did not start")
            time.sleep(0.05)
        yield
    finally:
        stop(proc)


async def api_key(served: Served) -> str:
    async with httpx2.AsyncClient(base_url=served.base, timeout=30) as admin:
        response = await admin.post(
            "/admin/v1/gateways/default/keys",
            json={"subject": "bench", "scopes": []},
            headers=served.admin_headers,
        )
    response.raise_for_status()
    return str(response.json()["key"])


async def run(
    upstream: str, sdk: str, served: dict[str, Served], calls: int, rounds: int, levels: list[int]
) -> list[Row]:
    """Rows of medians over the rounds; `served` holds `off`, `on` and maybe `on xN`."""
    widest = max([*levels, WIDE])
    limits = httpx2.Limits(max_connections=widest, max_keepalive_connections=widest)
    per_round = max(1, calls // rounds)
    async with AsyncExitStack() as clients:

        async def client(key: str | None = None) -> httpx2.AsyncClient:
            """A client of its own for one server (see the docstring), sending `key` if given."""
            headers = {"Authorization": f"Bearer {key}"} if key else None  # as bench/pipeline.py sends it
            return await clients.enter_async_context(
                httpx2.AsyncClient(limits=limits, timeout=30, headers=headers)
            )

        http = await client()

        async def direct(i: int) -> None:
            (await http.get(f"{upstream}/items/{i % 1000 + 1}")).raise_for_status()

        to_sdk = await client()
        callers: dict[tuple[str, str], Call] = {
            ("direct", ""): direct,
            ("sdk", LEGACY): await legacy_caller(to_sdk, sdk, TOOL, item),
            ("sdk", MODERN): await modern_caller(to_sdk, sdk, TOOL, item),
        }
        for name, s in served.items():
            to_gateway = await client(None if name == "off" else await api_key(s))
            if not name.startswith("on x"):  # 2025-era sessions: see the docstring
                callers[(name, LEGACY)] = await legacy_caller(to_gateway, s.mcp, TOOL, item)
            callers[(name, MODERN)] = await modern_caller(to_gateway, s.mcp, TOOL, item)
        rows: list[Row] = []
        multi = any(name.startswith("on x") for name in served)
        for level in [*levels, *([WIDE] if multi and WIDE not in levels else [])]:
            group = [k for k in callers if level in levels or k[1] in ("", MODERN)]
            runs: dict[tuple[str, str], list[dict[str, float]]] = {k: [] for k in group}
            for r in range(rounds):
                shift = r % len(group)
                for key in group[shift:] + group[:shift]:
                    runs[key].append(await measure(callers[key], per_round, level))
            for (name, era), figures in runs.items():
                medians = {k: statistics.median(m[k] for m in figures) for k in figures[0]}
                rows.append((name, era, level, medians))
        return rows


def wrk_capacity(
    upstream: str, sdk: str, served: dict[str, Served], keys: dict[str, str], seconds: int, rounds: int
) -> list[tuple[str, int, float, float, float, float]]:
    """What each server does when the load generator is not a Python process on the same cores:
    wrk (C, one thread) posting the same 2026-07-28 tools/call. Rows: (name, connections,
    calls/s, p50 ms, p99 ms, cores the server's processes used), medians of `rounds`
    alternating runs."""
    body = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": TOOL, "arguments": {"id": 7}, "_meta": META},
        }
    ).decode()
    routing = {**ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": TOOL}
    targets: dict[str, tuple[str, dict[str, str] | None]] = {"direct": (f"{upstream}/items/7", None)}
    targets["sdk"] = (sdk, routing)
    for name, s in served.items():
        key = keys.get(name)
        targets[name] = (s.mcp, {**routing, **({"Authorization": f"Bearer {key}"} if key else {})})
    results: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as scripts:
        for name, (_, headers) in targets.items():
            if headers is not None:
                lines = ['wrk.method = "POST"', f"wrk.body = [[{body}]]"]
                lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
                Path(scripts, f"{name}.lua").write_text("\n".join(lines) + "\n")
        for connections in (16, WIDE):
            for r in range(rounds):
                names = list(targets)[r % len(targets) :] + list(targets)[: r % len(targets)]
                for name in names:
                    if connections == WIDE and not name.startswith("on"):
                        continue
                    url, headers = targets[name]
                    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
                    if headers is not None:
                        argv += ["-s", str(Path(scripts, f"{name}.lua"))]
                    pid = served[name].proc.pid if name in served else None
                    before = tree_cpu_seconds(pid) if pid else 0.0
                    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
                    cores = (tree_cpu_seconds(pid) - before) / seconds if pid else 0.0
                    if "Non-2xx" in out:
                        raise RuntimeError(f"wrk got errors from {name}:\n{out}")
                    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
                    p50, p99 = (_ms(re.search(rf"\s{q}%\s+(\S+)", out).group(1)) for q in (50, 99))  # type: ignore[union-attr]
                    results.setdefault((name, connections), []).append((rate, p50, p99, cores))
    medians: list[tuple[str, int, float, float, float, float]] = []
    for (name, connections), runs in results.items():
        rate, p50, p99, cores = (statistics.median(r[i] for r in runs) for i in range(4))
        medians.append((name, connections, rate, p50, p99, cores))
    return medians


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its descendants (a server and its workers)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        me = int(stat.parent.name)
        parents[me] = int(fields[1])
        ticks[me] = int(fields[11]) + int(fields[12])
    total = 0
    for candidate, spent in ticks.items():
        node = candidate
        while node > 1 and node != pid:
            node = parents.get(node, 0)
        if node == pid:
            total += spent
    return total / os.sysconf("SC_CLK_TCK")


def _ms(text: str) -> float:
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    number = re.match(r"[0-9.]+", text)
    assert number is not None
    return float(number.group(0)) * unit[text[number.end() :]]


def report_capacity(rows: list[tuple[str, int, float, float, float, float]]) -> None:
    """wrk's rows, with the CPU the server's processes used (cores: CPU seconds a second) and
    calls per core-second; `per core x on`: a multi-worker server's calls per core-second over
    the one-worker `on` server's (1.0: throughput grows in step with the cores it gets)."""
    sdk = {c: rate for name, c, rate, *_ in rows if name == "sdk"}
    off = {c: rate for name, c, rate, *_ in rows if name == "off"}
    per_core_on = {c: rate / cores for name, c, rate, _, _, cores in rows if name == "on" and cores}
    print(
        f"{'row':<10} {'conns':>5} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cores':>6}"
        f" {'calls/core-s':>13} {'x sdk':>6} {'x off':>6} {'per core x on':>14}"
    )
    order = [*ROWS, "on x2"]
    for name, connections, rate, p50, p99, cores in sorted(
        rows, key=lambda r: (r[1], order.index(r[0]) if r[0] in order else 9)
    ):
        used = f"{cores:>6.2f} {rate / cores:>13.0f}" if cores else f"{'':>6} {'':>13}"
        x_sdk = x_off = x_on = ""
        if name not in ("direct", "sdk") and connections in sdk:
            x_sdk = f"{rate / sdk[connections]:.2f}"
        if name.startswith("on") and connections in off:
            x_off = f"{rate / off[connections]:.2f}"
        if name.startswith("on x") and cores and connections in per_core_on:
            x_on = f"{rate / cores / per_core_on[connections]:.2f}"
        head = f"{name:<10} {connections:>5} {rate:>8.0f} {p50:>8.2f} {p99:>8.2f}"
        print(f"{head} {used} {x_sdk:>6} {x_off:>6} {x_on:>14}".rstrip())


def report(rows: list[Row]) -> None:
    direct = {level: r for name, _, level, r in rows if name == "direct"}
    sdk = {(era, level): r for name, era, level, r in rows if name == "sdk"}
    off = {(era, level): r for name, era, level, r in rows if name == "off"}
    one = {(era, level): r for name, era, level, r in rows if name == "on"}
    print(
        f"{'row':<20} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>8} {'+p50 ms':>8} {'+p99 ms':>8}"
        f" {'x direct':>9} {'x sdk':>6} {'on/off':>7} {'x on':>5}"
    )
    for name, era, level, r in sorted(rows, key=lambda row: row[2]):
        d = direct[level]
        label = f"{name} {era}".strip()
        line = f"{label:<20} {level:>4} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['rps']:>8.0f}"
        if name != "direct":
            line += f" {r['p50_ms'] - d['p50_ms']:>8.3f} {r['p99_ms'] - d['p99_ms']:>8.3f}"
            line += f" {r['rps'] / d['rps']:>9.2f} {r['rps'] / sdk[(era, level)]['rps']:>6.2f}"
        if name.startswith("on"):
            line += f" {r['rps'] / off[(era, level)]['rps']:>7.2f}"
        if name.startswith("on x"):
            line += f" {r['rps'] / one[(era, level)]['rps']:>5.2f}"
        print(line)


def written(data_dir: Path) -> str:
    with sqlite3.connect(data_dir / "switchboard.db") as db:
        audit, spans = (
            db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("sb_call_audit", "sb_spans")
        )
    return f"{audit} audit records, {spans} spans"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores ({cpu}), {system}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="(and 32 for --workers)")
    parser.add_argument(
        "--workers", type=int, default=2, help="workers of the `on xN` server; 0: no such rows"
    )
    parser.add_argument(
        "--calls", type=int, default=1200, help="measured calls of each row, all rounds together"
    )
    parser.add_argument(
        "--rounds", type=int, default=6, help="the rows of a concurrency take turns this often"
    )
    parser.add_argument("--wrk-seconds", type=int, default=5, help="each wrk run; 0: no wrk table")
    args = parser.parse_args()
    began = time.monotonic()
    port, sdk_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{port}"
    multi = f"on x{args.workers}"
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        stack.enter_context(
            helper(port, "-m", "uvicorn", "bench.upstream:app", "--port", str(port), "--log-level", "warning")
        )
        stack.enter_context(helper(sdk_port, "bench/sdk_proxy.py", str(sdk_port), upstream))
        plain = gateway_config(tmp / "off.yaml", upstream, guarded=False)
        guarded = gateway_config(tmp / "on.yaml", upstream, guarded=True)
        served = {
            "off": stack.enter_context(serve(tmp / "off", plain, env=OFF_ENV)),
            "on": stack.enter_context(serve(tmp / "on", guarded, env=ON_ENV)),
        }
        skipped = ""
        if args.workers:
            try:
                served[multi] = stack.enter_context(
                    serve(
                        tmp / multi.replace(" ", ""),
                        guarded,
                        env=ON_ENV,
                        args=["--workers", str(args.workers)],
                    )
                )
            except RuntimeError as error:
                said = [line for line in str(error).splitlines() if line.strip()][-1]
                skipped = f"switchboard serve refused --workers {args.workers} ({said}): no {multi} rows"
                print(skipped, flush=True)
        rows = anyio.run(
            run,
            upstream,
            f"http://127.0.0.1:{sdk_port}/mcp",
            served,
            args.calls,
            args.rounds,
            args.concurrency,
        )
        capacity = []
        if shutil.which("wrk") and args.wrk_seconds:
            keys = {name: anyio.run(api_key, s) for name, s in served.items() if name != "off"}
            capacity = wrk_capacity(
                upstream, f"http://127.0.0.1:{sdk_port}/mcp", served, keys, args.wrk_seconds, 2
            )
        stack.close()  # the servers stop: their audit and span writers flush
        counts = {name: written(tmp / name.replace(" ", "")) for name in served}
    per_round = max(1, args.calls // args.rounds)
    print(
        f"tools/call `{TOOL}` (GET /items/{{id}} on a local upstream), {per_round * args.rounds} calls"
        f" per row: {args.rounds} rounds of {per_round}, each round every row of its concurrency, in an order"
        " that rotates; medians of the rounds"
    )
    print(f"machine: {machine()}; client, upstream and servers all on it")
    for name, what in ROWS.items():
        if name != "on x{n}":
            print(f"  {name:<8} {what}")
        elif args.workers and not skipped:
            print(f"  {name.format(n=args.workers):<8} {what.format(n=args.workers)}")
    print("  +p50/+p99: added over direct; calls/s ratios: x direct, x sdk (same era), on/off (same era)")
    if args.workers and not skipped:
        print(f"  x on: calls/s of {multi} over the one-worker `on` (same era)")
    if skipped:
        print(f"  ({skipped})")
    print()
    report(rows)
    if capacity:
        print()
        print(
            "the same call, 2026-07-28, with wrk as the load generator (C, one thread: the servers get"
            f" the cores the Python client took); {args.wrk_seconds} s a run, medians of 2 alternating runs"
        )
        report_capacity(capacity)
    else:
        print("\n(no wrk on PATH: `make bench` installs Debian's wrk; --wrk-seconds 0 leaves it out)")
    print()
    for name, count in counts.items():
        print(f"  {name:<8} wrote {count}")
    print(f"(whole run: {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
