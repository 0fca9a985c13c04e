"""Tracing's cost on tools/call: the same gateway served with tracing off, on (trace store), on (OTLP).

Starts three `switchboard serve` processes (one worker each) on the config of
bench/tools_call.py (a function target, `bench___echo`), each with its own data dir:

  off    SWITCHBOARD_TRACING=false: no spans at all (the baseline)
  store  tracing on, spans kept in the gateway's own database (the default)
  otlp   tracing on, the trace store off, spans exported over OTLP/HTTP (protobuf) to a
         local sink (a subprocess that counts the spans and answers 200)

Tool arguments and results are recorded on spans (SWITCHBOARD_TRACE_CONTENT, the default).
The load is the raw JSON-RPC client of bench/tools_call.py, in both protocol eras, at
concurrency 1 and 16, on the same 2-core machine as the servers (the idle ones wait). Each
row's calls are split in rounds, and each round measures the three servers back to back, in
an order that rotates, so machine noise hits them alike; the figures are each row's median
over its rounds. Prints p50/p99 latency and calls per second, what `store` and `otlp` add
over `off`, and how many spans each server wrote (rows of sb_spans; spans the sink got).

    python bench/tracing.py [--calls 1200] [--rounds 6] [--concurrency 1 16]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import anyio
import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.federated_call import LEGACY, MODERN, Row, print_against  # noqa: E402
from bench.openapi_github import free_port  # noqa: E402
from bench.tools_call import CONFIG, Call, legacy_caller, measure, modern_caller  # noqa: E402
from tests.e2e.harness import Served, serve  # noqa: E402

# What every server is told, so that OTEL_* or SWITCHBOARD_TRACE_* set in the shell change nothing.
COMMON = {
    "SWITCHBOARD_TRACE_CONTENT": "true",
    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    "OTEL_TRACES_EXPORTER": "none",
}
VARIANTS: dict[str, dict[str, str]] = {
    "off": {"SWITCHBOARD_TRACING": "false", "SWITCHBOARD_TRACE_STORE": "true"},
    "store": {"SWITCHBOARD_TRACING": "true", "SWITCHBOARD_TRACE_STORE": "true"},
    "otlp": {
        "SWITCHBOARD_TRACING": "true",
        "SWITCHBOARD_TRACE_STORE": "false",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:{port}/v1/traces",
    },
}
WARM_UP = 50  # calls `measure` makes before it starts the clock

# The OTLP collector stand-in: POST /v1/traces counts the spans and answers 200; GET tells the count.
SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

spans = 0

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global spans
        request = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
        spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        self.answer(b"")

    def do_GET(self):
        self.answer(str(spans).encode())

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""


def start_sink(port: int) -> subprocess.Popen[bytes]:
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], cwd=ROOT)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx2.get(f"http://127.0.0.1:{port}/", timeout=1)
            return sink
        except httpx2.TransportError:
            if sink.poll() is not None or time.monotonic() > deadline:
                sink.kill()
                raise RuntimeError("the OTLP sink did not start") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def run(served: dict[str, Served], calls: int, rounds: int, levels: list[int]) -> tuple[list[Row], int]:
    """Rows of medians over the rounds, and how many MCP requests each server was sent."""
    limits = httpx2.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    per_round = max(1, calls // rounds)
    async with httpx2.AsyncClient(limits=limits, timeout=30) as http:
        callers: dict[tuple[str, str], Call] = {}
        for name, s in served.items():
            callers[(name, LEGACY)] = await legacy_caller(http, s.mcp)
            callers[(name, MODERN)] = await modern_caller(http, s.mcp)
        names = list(served)
        rows: list[Row] = []
        for level in levels:
            for era in (LEGACY, MODERN):
                runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
                for r in range(rounds):
                    for name in names[r % len(names) :] + names[: r % len(names)]:
                        runs[name].append(await measure(callers[(name, era)], per_round, level))
                for name in names:
                    medians = {k: statistics.median(m[k] for m in runs[name]) for k in runs[name][0]}
                    rows.append((name, era, level, medians))
    # initialize + notifications/initialized, then warm-up and measured tools/call per measurement
    requests = 2 + len(levels) * 2 * rounds * (min(WARM_UP, per_round) + per_round)
    return rows, requests


def stored_spans(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "switchboard.db") as db:
        return int(db.execute("SELECT count(*) FROM sb_spans").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1200, help="measured calls per row, over all rounds")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--no-otlp", action="store_true", help="leave out the OTLP server")
    args = parser.parse_args()
    variants = {k: v for k, v in VARIANTS.items() if not (args.no_otlp and k == "otlp")}
    began = time.monotonic()
    port = free_port()
    sink = start_sink(port) if "otlp" in variants else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "switchboard.yaml"
            config.write_text(CONFIG)
            with ExitStack() as stack:
                served = {
                    name: stack.enter_context(
                        serve(
                            Path(tmp) / name,
                            config,
                            env={**COMMON, **{k: v.format(port=port) for k, v in env.items()}},
                        )
                    )
                    for name, env in variants.items()
                }
                rows, requests = anyio.run(run, served, args.calls, args.rounds, args.concurrency)
            # The servers have stopped: the store's writer and the exporter have flushed.
            spans = {name: stored_spans(Path(tmp) / name) for name in variants}
        if sink is not None:
            spans["otlp"] = int(httpx2.get(f"http://127.0.0.1:{port}/", timeout=10).text)
    finally:
        if sink is not None:
            stop(sink)
    per_round = max(1, args.calls // args.rounds)
    print(
        f"tools/call `echo`, {per_round * args.rounds} calls per row ({args.rounds} rounds of {per_round},"
        f" the {len(variants)} servers alternating; medians of the rounds); one gateway worker each, 2 cores"
    )
    print("off: SWITCHBOARD_TRACING=false; store: spans in the gateway's database (the default);")
    print("otlp: trace store off, OTLP/HTTP export to a local sink; arguments/results on spans for both")
    print()
    print_against(rows, "tracing", "off", tuple(name for name in variants if name != "off"))
    print()
    print(f"spans written, for {requests} MCP requests to each server:")
    where = {"off": "rows of sb_spans", "store": "rows of sb_spans", "otlp": "spans the OTLP sink received"}
    for name in variants:
        print(f"  {name:<6} {spans[name]:>7} ({spans[name] / requests:.2f} a request; {where[name]})")
    print(f"(whole run: {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
