"""A control-plane round trip through AgentCore's API (boto3, SigV4) against the same through the
admin API (httpx, an admin key), both on one `switchboard serve`.

Rows, timed per call over many calls, in rounds that alternate them so machine noise hits them
alike:

  admin get       GET /admin/v1/gateways/bench with the admin key (the baseline)
  boto3 get       bedrock-agentcore-control GetGateway (SigV4 signed and verified, botocore parse)
  admin list      GET /admin/v1/gateways
  boto3 list      ListGateways

Prints each row's median and p95 milliseconds and its median as a ratio of the admin API's for
the same operation. The boto3 rows include the client's own cost (signing, serialising,
parsing), which is what code written for AgentCore pays.

    python bench/agentcore.py [--calls 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import httpx2
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]


def _serve(data_dir: Path) -> tuple[subprocess.Popen[str], str, str]:
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--port", "0", "--data-dir", str(data_dir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SWITCHBOARD_TRACING": "false"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = key = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if found := re.search(r"admin key .*: (sb_admin_\S+)", line):
            key = found.group(1)
        if found := re.search(r"serving on (\S+)", line):
            base = found.group(1)
        if base and "admin API" in line:
            break
    if not (base and key):
        proc.kill()
        raise SystemExit("switchboard serve did not start")
    stream = proc.stdout
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()  # keep the pipe drained
    return proc, base, key


def _times(call: Callable[[], object], calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, base, admin_key = _serve(Path(tmp) / "data")
        try:
            admin = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {admin_key}"})
            made = admin.post("/admin/v1/aws-keys", json={"subject": "bench"}).json()
            control = boto3.client(
                "bedrock-agentcore-control",
                region_name="us-east-1",
                endpoint_url=f"{base}/aws/agentcore-control",
                aws_access_key_id=made["access_key_id"],
                aws_secret_access_key=made["secret_access_key"],
                config=Config(retries={"max_attempts": 1}),
            )
            gateway = control.create_gateway(
                name="bench", roleArn="arn:aws:iam::123456789012:role/bench", authorizerType="NONE"
            )
            rows: dict[str, Callable[[], object]] = {
                "admin get": lambda: admin.get("/admin/v1/gateways/bench").raise_for_status(),
                "boto3 get": lambda: control.get_gateway(gatewayIdentifier=gateway["gatewayId"]),
                "admin list": lambda: admin.get("/admin/v1/gateways").raise_for_status(),
                "boto3 list": lambda: control.list_gateways(),
            }
            for call in rows.values():  # warm: the models load on the first AgentCore request
                _times(call, 20)
            samples: dict[str, list[float]] = {name: [] for name in rows}
            for _ in range(args.rounds):
                for name, call in rows.items():
                    samples[name] += _times(call, args.calls)
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"{args.rounds} rounds of {args.calls} calls, alternating; one `switchboard serve`, SQLite")
    print(f"{'row':<12} {'p50 ms':>8} {'p95 ms':>8} {'x admin':>8}")
    for name, values in samples.items():
        p50 = statistics.median(values)
        p95 = statistics.quantiles(values, n=20)[18]
        baseline = statistics.median(samples["admin " + name.split()[1]])
        print(f"{name:<12} {p50:8.3f} {p95:8.3f} {p50 / baseline:8.2f}")


if __name__ == "__main__":
    main()
