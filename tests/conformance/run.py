"""Run the MCP conformance suite's server scenarios against a real `switchboard serve`.

Both requirement sets run: 2025-11-25 (handshake era) and 2026-07-28
(stateless era). Exit status is non-zero if either reports a scored failure
not listed in expected-failures.yaml. Needs Node >= 22 and the suite on PATH
(`make conformance` arranges both).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.e2e.harness import ROOT, serve

REQUIREMENTS = ("2025-11-25", "2026-07-28")
CONFIG = ROOT / "examples" / "conformance" / "switchboard.yaml"
BASELINE = Path(__file__).with_name("expected-failures.yaml")


def main() -> int:
    tool = shutil.which("conformance")
    if tool is None:
        print("conformance: the suite is not on PATH; run `make conformance`", file=sys.stderr)
        return 2
    failed = []
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp) / "data", CONFIG) as served:
        for requirements in REQUIREMENTS:
            cmd = [
                tool,
                "server",
                "--url",
                served.mcp,
                "--requirements",
                requirements,
                "--expected-failures",
                str(BASELINE),
                "-o",
                str(Path(tmp) / requirements),
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            summary = (
                result.stdout[result.stdout.find("=== SUMMARY") :] if "=== SUMMARY" in result.stdout else ""
            )
            print(f"--- conformance --requirements {requirements}: exit {result.returncode}")
            print(summary or result.stdout[-4000:])
            if result.returncode != 0:
                print(result.stderr[-4000:], file=sys.stderr)
                failed.append(requirements)
    if failed:
        print(f"conformance: FAILED for {', '.join(failed)}", file=sys.stderr)
        return 1
    print("conformance: all scored server scenarios passed for " + " and ".join(REQUIREMENTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
