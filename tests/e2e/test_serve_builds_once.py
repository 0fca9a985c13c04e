"""`switchboard serve` builds each target once: its pre-flight check used to build the whole
configuration in a scratch hub, again to count the tools, and start-up a third time (a stdio
server was started three times; GitHub's document compiled three times)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import Client

from tests.e2e.harness import ROOT, serve

pytestmark = pytest.mark.anyio


async def test_serve_starts_each_target_once_and_a_refused_file_is_never_stored(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    config = tmp_path / "switchboard.yaml"
    command = f"[{sys.executable}, -m, tests.fixtures.start_counting_stdio]"
    config.write_text(
        "gateways:\n  - name: default\n    targets:\n"
        f"      - {{name: counted, kind: mcp, command: {command},"
        f" cwd: '{ROOT}', env: {{STARTS_FILE: '{starts}', PYTHONPATH: '{ROOT}'}}}}\n"
    )
    with serve(tmp_path / "data", config) as served:
        async with Client(served.mcp, mode="legacy") as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["counted___ping"]
        assert len(starts.read_text().splitlines()) == 1
    # A file start-up refuses (a target that cannot be built) is worded once, and not stored:
    # the next start without it serves the configuration that was there before.
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "gateways:\n  - name: default\n    targets:\n"
        f"      - {{name: api, kind: openapi, spec: '{tmp_path / 'missing.yaml'}', base_url: 'http://x'}}\n"
    )
    with pytest.raises(RuntimeError) as refused, serve(tmp_path / "data", broken):
        pass
    output = str(refused.value)
    assert "exited (1)" in output and "Traceback" not in output
    assert f"the configuration was refused:\n{broken}: gateways.default.targets.api: cannot read" in output
    with serve(tmp_path / "data") as served:
        async with Client(served.mcp, mode="legacy") as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["counted___ping"]
