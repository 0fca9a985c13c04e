"""Hosted agents on gVisor through a real `switchboard serve` (SWITCHBOARD_RUNTIME_BACKEND=gvisor,
ADR 0043): the same agent, unchanged, keeps its state by session id, reaches the gateway on its
link, and is listed and killed by the admin API."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx2
import pytest

from sandbox import backend_problem
from tests.e2e.harness import ROOT, Served, serve
from tests.support.tools import need

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]

AGENT = ROOT / "tests" / "fixtures" / "runtime_agent"
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    need(backend_problem("gvisor") is None, f"gVisor sandboxes: {backend_problem('gvisor')}")
    root = tmp_path_factory.mktemp("runtime-gvisor")
    command = [sys.executable, "-m", "gateway.cli", "runtime", "deploy", str(AGENT), "--name", "echo"]
    deployed = subprocess.run(
        [*command, "--data-dir", str(root / "data")], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert deployed.returncode == 0, deployed.stderr
    (root / "switchboard.yaml").write_text("gateways:\n  - name: default\n    auth: {kind: api_key}\n")
    env = {"SWITCHBOARD_RUNTIME_BACKEND": "gvisor"}
    with serve(root / "data", root / "switchboard.yaml", env=env) as s:
        key = httpx2.post(
            f"{s.base}/admin/v1/gateways/default/keys", json={"subject": "ada"}, headers=s.admin_headers
        )
        yield s, key.json()["key"]


async def test_an_agent_runs_unchanged_in_gvisor(served: tuple[Served, str]) -> None:
    s, key = served
    url = f"{s.base}/runtimes/echo/invocations"
    headers = {"Authorization": f"Bearer {key}", SESSION: "g" * 40}
    async with httpx2.AsyncClient(timeout=120, base_url=s.base) as http:
        first = await http.post(url, json={"write": "kept"}, headers=headers)
        assert first.status_code == 200, first.text
        again = (await http.post(url, json={}, headers=headers)).json()
        assert again["calls"] == 2 and "note.txt" in again["files"]
        other = (await http.post(url, json={}, headers={**headers, SESSION: "h" * 40})).json()
        assert other["calls"] == 1 and "note.txt" not in other["files"]
        linked = await http.post(
            url, json={"fetch": "SWITCHBOARD_GATEWAY_URL", "path": "/healthz"}, headers=headers
        )
        assert linked.status_code == 200 and '"status"' in linked.json()["fetched"], linked.text
        listed = (await http.get("/admin/v1/runtime-sessions", headers=s.admin_headers)).json()["sessions"]
        mine = next(x for x in listed if x["id"] == "g" * 40)
        assert mine["memory_bytes"] > 0
        assert (
            await http.delete(f"/admin/v1/runtime-sessions/{'g' * 40}", headers=s.admin_headers)
        ).status_code == 204
        fresh = (await http.post(url, json={}, headers=headers)).json()
        assert fresh["calls"] == 1  # (killed: a new box)
