"""The cost of verifying a SigV4-signed request (gateway/agentcore/_sigv4.py), against signing it.

A typical AgentCore call: POST /runtimes/{arn}/invocations?qualifier=DEFAULT with a 1 KB JSON
body and 6 headers (host, content-type, user-agent, x-amz-date, the runtime session id,
authorization), signed by botocore. Rows, each timed with time.perf_counter over many calls, in
rounds that alternate the rows so machine noise hits them alike:

  verify        `verify` with the signing key cached (every request after the first of a key's day)
  verify cold   `verify` with the signing-key cache cleared before each call (4 more HMACs)
  botocore      the baseline: botocore's client-side `SigV4Auth.add_auth` on the same request,
                what signing costs the client (it derives the signing key every time)

Prints each row's best and median microseconds per call and the same as a ratio of the
baseline's in this run.

    python bench/sigv4.py [--calls 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.agentcore._sigv4 import SERVICE, _signing_key, verify

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ARN = "arn%3Aaws%3Abedrock-agentcore%3Aeu-west-1%3A123456789012%3Aruntime%2Fagent-1"
URL = f"http://127.0.0.1:8080/runtimes/{ARN}/invocations?qualifier=DEFAULT"


def _body() -> bytes:
    document = {"prompt": "", "session": "s" * 40, "context": {"user": "u-1"}}
    document["prompt"] = "x" * (1024 - len(json.dumps(document)))  # 1 KB in all
    return json.dumps(document).encode()


def _request(body: bytes) -> AWSRequest:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Boto3/1.44 md/Botocore#1.44 ua/2.1 lang/python#3.11",
        "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "s" * 40,
    }
    return AWSRequest("POST", URL, data=body, headers=headers)


def _time(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()

    body = _body()
    credentials = Credentials("AKIDEXAMPLE", SECRET)
    signer = SigV4Auth(credentials, SERVICE, "eu-west-1")
    request = _request(body)
    signer.add_auth(request)
    parts = urlsplit(URL)
    headers = [(b"host", b"127.0.0.1:8080")] + [
        (name.lower().encode(), value.encode("latin-1")) for name, value in request.headers.items()
    ]
    assert len(headers) == 6 and len(body) == 1024, (len(headers), len(body))
    signed_at = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    now = signed_at.timestamp()  # fixed, so the rounds never leave the clock window

    def verify_one() -> object:
        return verify(
            method="POST",
            raw_path=parts.path.encode(),
            query_string=parts.query.encode(),
            headers=headers,
            body=body,
            secret=SECRET,
            now=now,
        )

    def verify_cold() -> object:
        _signing_key.cache_clear()
        return verify_one()

    baseline_request = _request(body)

    def sign_one() -> object:
        signer.add_auth(baseline_request)
        return None

    verify_one()  # it verifies
    rows: dict[str, Callable[[], object]] = {
        "verify": verify_one,
        "verify cold": verify_cold,
        "botocore": sign_one,
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    names = list(rows)
    for round_ in range(options.rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            times[name].append(_time(rows[name], options.calls))

    base_best = min(times["botocore"])
    base_median = statistics.median(times["botocore"])
    print(
        f"SigV4, POST with a {len(body)} B JSON body and {len(headers)} headers; "
        f"{options.calls} calls x {options.rounds} rounds; Python {sys.version.split()[0]}"
    )
    print(f"{'row':<12} {'best µs':>9} {'median µs':>10} {'best/base':>10} {'median/base':>12}")
    for name in names:
        best, median = min(times[name]), statistics.median(times[name])
        print(
            f"{name:<12} {best:>9.1f} {median:>10.1f} {best / base_best:>10.2f} {median / base_median:>12.2f}"
        )


if __name__ == "__main__":
    main()
