"""The call pipeline's cost: tools/call with every stage on vs off, and Cedar with 1,000 policies.

Part 1 starts one `switchboard serve` (one worker) whose store holds two gateways,
made through the admin API, over the same function tool (tests.fixtures.functions:add):
`plain` (no auth, no stages) and `full` (API key auth, a Cedar policy permitting the
tool, a rate limit that never trips, the redact interceptor, resilience defaults; no
cache, no approvals). Audit is on for both (it always is when serving). Prints p50/p99
latency and calls per second at concurrency 1 and 16 in both protocol eras, with what
`full` adds over `plain`. The load generator is the raw JSON-RPC client of
bench/tools_call.py, on the same 2-core machine as the server.

Part 1b, the cost of the durable audit (ADR 0024: a call is answered once its record is
committed, group commit): a second server with SWITCHBOARD_AUDIT=false serves `plain` too,
the two are measured in turns (median of --rounds), and `plain` with the audit is printed
against it.

Part 2, in process: a catalog of 50 tools and 1,000 Cedar policies (per-user permits
and a few forbids on arguments). Prints the time to build the GatewayPolicy (parse and
validate against the catalog's schema), the time per `allows` decision, and the time
of `visible` (what tools/list shows one user) over the 50 tools.

    python bench/pipeline.py [--calls 2000] [--concurrency 1 16] [--decisions 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.federated_call import add_args, print_against  # noqa: E402
from bench.tools_call import Call, legacy_caller, measure, modern_caller  # noqa: E402
from gateway.core.catalog import Catalog  # noqa: E402
from gateway.core.provider import ToolProvider  # noqa: E402
from gateway.core.types import CallContext, Principal, ToolCall, ToolResult, ToolSpec  # noqa: E402
from gateway.stages.policy import GatewayPolicy  # noqa: E402
from tests.e2e.harness import Served, serve  # noqa: E402

TOOL = "fx___add"
TARGET = {"name": "fx", "kind": "function", "functions": ["tests.fixtures.functions:add"]}
PLAIN: dict[str, Any] = {"name": "plain", "targets": [TARGET]}
FULL: dict[str, Any] = {
    "name": "full",
    "auth": {"kind": "api_key"},
    "targets": [TARGET],
    "policies": [f'permit(principal, action == Switchboard::Action::"{TOOL}", resource);'],
    "rate_limits": [{"limit": "1000000/minute", "per": "caller"}],
    "interceptors": [{"kind": "redact"}],
    "resilience": {},
}
LEGACY, MODERN = "2025-11-25", "2026-07-28"
NO_AUDIT = {"SWITCHBOARD_AUDIT": "false"}

Row = tuple[str, str, int, dict[str, float]]


# --- part 1: the pipeline through a real server -------------------------------------------


async def setup(served: Served) -> str:
    """Create both gateways; return an API key for `full`."""
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers, timeout=30) as admin:
        for spec in (PLAIN, FULL):
            put = await admin.put(f"/admin/v1/gateways/{spec['name']}", json=spec)
            if put.status_code not in (200, 201):
                raise RuntimeError(f"PUT {spec['name']}: {put.status_code} {put.text}")
        made = await admin.post("/admin/v1/gateways/full/keys", json={"subject": "bench", "scopes": []})
        if made.status_code not in (200, 201):
            raise RuntimeError(f"POST keys: {made.status_code} {made.text}")
        return str(made.json()["key"])


async def run_calls(served: Served, key: str, calls: int, levels: list[int]) -> list[Row]:
    rows: list[Row] = []
    limits = httpx2.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    # Same callers on both gateways; `full`'s client sends the key with every request.
    bearer = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(limits=limits, timeout=30) as plain_http,
        httpx2.AsyncClient(limits=limits, timeout=30, headers=bearer) as full_http,
    ):
        callers: list[tuple[str, str, Call]] = []
        for name, http in (("plain", plain_http), ("full", full_http)):
            url = served.gateway(name)
            callers.append((name, LEGACY, await legacy_caller(http, url, TOOL, add_args)))
            callers.append((name, MODERN, await modern_caller(http, url, TOOL, add_args)))
        for level in levels:
            for name, era, call in callers:
                rows.append((name, era, level, await measure(call, calls, level)))
    return rows


async def plain_callers(served: Served, http: httpx2.AsyncClient) -> list[tuple[str, Call]]:
    """Callers of the `plain` gateway (made here) in both eras."""
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers, timeout=30) as admin:
        put = await admin.put("/admin/v1/gateways/plain", json=PLAIN)
        if put.status_code not in (200, 201):
            raise RuntimeError(f"PUT plain: {put.status_code} {put.text}")
    url = served.gateway("plain")
    return [
        (LEGACY, await legacy_caller(http, url, TOOL, add_args)),
        (MODERN, await modern_caller(http, url, TOOL, add_args)),
    ]


async def run_audit(
    audited: Served, unaudited: Served, calls: int, levels: list[int], rounds: int
) -> list[Row]:
    """`plain` on a server with the audit and on one without, measured in turns (``rounds`` each,
    medians kept), so that both see the same machine: others' load moves figures between runs."""
    limits = httpx2.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    rows: list[Row] = []
    async with (
        httpx2.AsyncClient(limits=limits, timeout=30) as a,
        httpx2.AsyncClient(limits=limits, timeout=30) as b,
    ):
        sides = [("plain", await plain_callers(audited, a)), ("noaudit", await plain_callers(unaudited, b))]
        for level in levels:
            for i in range(2):  # era
                seen: dict[str, list[dict[str, float]]] = {"plain": [], "noaudit": []}
                for _ in range(rounds):
                    for name, callers in sides:
                        seen[name].append(await measure(callers[i][1], calls, level))
                for name, found in seen.items():
                    median = {k: statistics.median(r[k] for r in found) for k in found[0]}
                    rows.append((name, sides[0][1][i][0], level, median))
    return rows


def report_calls(rows: list[Row], calls: int) -> None:
    print(f"tools/call `add`, {calls} calls per row; one gateway worker, 2 cores")
    print("plain: no auth, no stages; full: api_key + Cedar policy + rate limit + redact + resilience")
    print("(audit on for both)")
    print_against(rows, "gateway", "plain", "full")


# --- part 2: Cedar in process -------------------------------------------------------------

TOOLS = 50
POLICIES = 1000
FORBIDS = 10
AMOUNT = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer"},
        "note": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


class ManyTools(ToolProvider):
    kind = "bench"

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return [ToolSpec(name=f"tool{i}", input_schema=AMOUNT) for i in range(TOOLS)]

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        return ToolResult.text(f"ran {call.name}")


def policies() -> list[str]:
    users = POLICIES - FORBIDS
    out = [
        f'permit(principal == Switchboard::User::"u{i}",'
        f' action == Switchboard::Action::"t___tool{i % TOOLS}", resource);'
        for i in range(users)
    ]
    out += [
        f'forbid(principal, action == Switchboard::Action::"t___tool{j}", resource)'
        f" when {{ context has amount && context.amount > {100 * (j + 1)}"
        ' && !principal.scopes.contains("admin") };'
        for j in range(FORBIDS)
    ]
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


async def run_cedar(decisions: int) -> None:
    catalog = Catalog({"t": ManyTools("t")})
    await catalog.refresh(CallContext())
    sources = policies()
    users = POLICIES - FORBIDS

    began = time.perf_counter()
    policy = GatewayPolicy("bench", sources, "enforce", catalog)
    built = time.perf_counter() - began

    rng = random.Random(7)
    requests = []
    for _ in range(decisions):
        u = rng.randrange(users)
        # half the calls to the user's own tool (permitted unless a forbid matches), half elsewhere
        n = u % TOOLS if rng.random() < 0.5 else rng.randrange(TOOLS)
        args = {"amount": rng.randrange(2000), "note": "x", "tags": ["a", "b"]}
        requests.append((Principal(subject=f"u{u}"), f"t___tool{n}", args))
    for principal, tool, args in requests[:50]:  # warm up
        policy.allows(principal, tool, "t", args)
    latencies: list[float] = []
    allowed = 0
    began = time.perf_counter()
    for principal, tool, args in requests:
        start = time.perf_counter()
        ok, _ = policy.allows(principal, tool, "t", args)
        latencies.append(time.perf_counter() - start)
        allowed += ok
    elapsed = time.perf_counter() - began
    latencies.sort()

    tools = [(f"t___tool{i}", "t") for i in range(TOOLS)]
    someone = Principal(subject="u3")
    shown = policy.visible(someone, tools)  # warm up
    rounds = 10
    visible: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        policy.visible(someone, tools)
        visible.append(time.perf_counter() - start)
    visible.sort()

    print(
        f"Cedar: {len(sources)} policies ({users} per-user permits, {FORBIDS} forbids on arguments),"
        f" {TOOLS} tools"
    )
    print(f"{'GatewayPolicy() parse + validate':<34} {built * 1000:>10.1f} ms (once)")
    print(
        f"{'allows()':<34} p50 {statistics.median(latencies) * 1e6:>8.1f} us"
        f"  p99 {percentile(latencies, 0.99) * 1e6:>8.1f} us"
        f"  {decisions / elapsed:>8.0f} decisions/s  ({decisions} decisions, {allowed} allowed)"
    )
    print(
        f"{'visible() one user, 50 tools':<34} p50 {statistics.median(visible) * 1000:>8.2f} ms"
        f"  max {visible[-1] * 1000:>8.2f} ms"
        f"  {statistics.median(visible) * 1e6 / TOOLS:>8.1f} us/tool  ({rounds} rounds, {len(shown)} shown)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="turns of the audit comparison")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(Path(tmp) / "data") as served,
        serve(Path(tmp) / "noaudit", env=NO_AUDIT) as unaudited,
    ):
        key = anyio.run(setup, served)
        rows = anyio.run(run_calls, served, key, args.calls, args.concurrency)
        audit_rows = anyio.run(run_audit, served, unaudited, args.calls, args.concurrency, args.rounds)
    report_calls(rows, args.calls)
    print()
    print(
        f"the durable audit: `plain` with the audit against `noaudit` (SWITCHBOARD_AUDIT=false), in turns,"
        f" median of {args.rounds} rounds of {args.calls} calls"
    )
    print("(a call is answered once its audit record is committed; concurrent calls share a commit)")
    print_against(audit_rows, "gateway", "noaudit", "plain")
    print()
    anyio.run(run_cedar, args.decisions)


if __name__ == "__main__":
    main()
