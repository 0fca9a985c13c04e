"""Runtimes in switchboard.yaml (ADR 0041) through `switchboard apply`: a folder deployed as a new
version only when its files or settings change, its endpoints set as the file says (the others
deleted), and what is wrong said with the file and the runtime it is about."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _apply(config: Path, data: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway.cli", "apply", "-f", str(config), "--data-dir", str(data)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _list(data: Path) -> str:
    command = [sys.executable, "-m", "gateway.cli", "runtime", "list", "--data-dir", str(data)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60).stdout


def test_a_files_runtimes_deploy_when_they_change(tmp_path: Path) -> None:
    agent = tmp_path / "agents" / "bot"
    agent.mkdir(parents=True)
    (agent / "main.py").write_text("print('v1')\n")
    config, data = tmp_path / "switchboard.yaml", tmp_path / "data"
    head = "gateways: []\nruntimes:\n  - name: bot\n    path: agents/bot\n    environment: {MODE: one}\n"
    config.write_text(head)
    first = _apply(config, data)
    assert first.returncode == 0 and "runtime bot deployed bot:1" in first.stdout, first.stderr
    again = _apply(config, data)
    assert "runtime bot unchanged (bot:1)" in again.stdout
    (agent / "main.py").write_text("print('v2')\n")
    assert "runtime bot deployed bot:2" in _apply(config, data).stdout
    config.write_text(head.replace("one", "two"))  # (a setting changed: a new version too)
    assert "runtime bot deployed bot:3" in _apply(config, data).stdout
    canary = "    endpoints:\n      - {name: live, version: 1, canary: 3, weight: 25}\n"
    config.write_text(head.replace("one", "two") + canary)
    assert "runtime bot unchanged (bot:3)" in _apply(config, data).stdout
    assert "endpoint live -> 1 + 3 (25%)" in _list(data)
    config.write_text(head.replace("one", "two"))
    _apply(config, data)
    assert "endpoint live" not in _list(data)  # (the file no longer names it)


def test_bad_runtimes_are_refused_naming_the_file_and_the_runtime(tmp_path: Path) -> None:
    config, data = tmp_path / "switchboard.yaml", tmp_path / "data"
    config.write_text("runtimes:\n  - name: bot\n    path: nowhere\n")
    missing = _apply(config, data)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "runtimes[0]" in missing.stderr and "nowhere: not a directory" in missing.stderr
    config.write_text("runtimes:\n  - name: bot\n    path: .\n    endpoints:\n      - {name: x, weight: 5}\n")
    weight = _apply(config, data)
    assert weight.returncode == 1 and "needs a canary" in weight.stderr
    assert "switchboard.yaml:5: runtimes[0].endpoints[0]" in weight.stderr
    config.write_text("runtimes:\n  - {name: bot, path: .}\n  - {name: bot, path: .}\n")
    assert "two runtimes are named 'bot'" in _apply(config, data).stderr
    (tmp_path / "main.py").write_text("print(1)\n")
    config.write_text("runtimes:\n  - name: bot\n    path: .\n    environment: {PATH: /evil}\n")
    reserved = _apply(config, data)
    assert reserved.returncode == 1 and "one of the runtime's own" in reserved.stderr
    assert _list(data) == ""  # (nothing was deployed)
