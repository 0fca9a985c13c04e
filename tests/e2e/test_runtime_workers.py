"""Hosted agents behind `serve --workers 2`: a session lives in one worker, and every request
naming it reaches that worker, whichever took the connection (its app's memory is kept)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from sandbox import available
from tests.e2e.harness import ROOT, serve
from tests.support.tools import need

AGENT = ROOT / "tests" / "fixtures" / "runtime_agent"
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


@pytest.mark.timeout(900)
def test_a_session_is_reached_in_its_worker(tmp_path: Path) -> None:
    need(available() is None, f"bubblewrap sandboxes: {available()}")
    data = tmp_path / "data"
    command = [sys.executable, "-m", "gateway.cli", "runtime", "deploy", str(AGENT), "--name", "echo"]
    deployed = subprocess.run([*command, "--data-dir", str(data)], cwd=ROOT, capture_output=True, timeout=600)
    assert deployed.returncode == 0, deployed.stderr
    config = tmp_path / "switchboard.yaml"
    config.write_text("gateways:\n  - name: default\n")
    with serve(data, config, env={"SWITCHBOARD_WORKERS": "2"}) as s:
        calls = []
        for session in ("one", "two"):
            headers = {SESSION: session + "-" + "w" * 36}
            for _ in range(6):  # (new connections each time: either worker may take them)
                answer = httpx2.post(
                    f"{s.base}/runtimes/echo/invocations", json={}, headers=headers, timeout=120
                )
                assert answer.status_code == 200, answer.text
                calls.append(answer.json()["calls"])
    assert calls == [1, 2, 3, 4, 5, 6] * 2
