"""The `switchboard` command, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(ROOT.glob("examples/**/switchboard.yaml"))


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_passes_check(example: Path) -> None:
    result = run("check", str(example))
    assert result.returncode == 0, result.stderr
    assert ": OK (" in result.stdout


def test_examples_exist() -> None:
    names = {p.parent.name for p in EXAMPLES}
    assert {"quickstart", "conformance"} <= names


def test_check_reports_file_line_field_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "gateways:\n  - name: g\n    targets:\n      - {name: a, kind: function, functions: [x:y]}\n"
    )
    result = run("check", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"{bad}: gateways.g.targets.a.functions[0]: "
        "function 'x:y': cannot import module 'x': No module named 'x'"
    )


def test_apply_is_idempotent_and_prints_changes(tmp_path: Path) -> None:
    config = tmp_path / "sw.yaml"
    config.write_text(
        "gateways:\n  - name: g\n    targets:\n"
        "      - {name: a, kind: function, functions: ['tests.fixtures.functions:add']}\n"
    )
    data = str(tmp_path / "data")
    first = run("apply", "-f", str(config), "--data-dir", data)
    assert first.returncode == 0, first.stderr
    assert "gateway g created" in first.stdout and "target g/a created" in first.stdout
    second = run("apply", "-f", str(config), "--data-dir", data)
    assert "0 created, 0 updated, 0 deleted, 2 unchanged" in second.stdout
    tools = run("tools", "--data-dir", data, "--json")
    assert [t["name"] for t in json.loads(tools.stdout)["g"]] == ["a___add"]


def test_tools_json_prints_mcp_tool_objects() -> None:
    result = run(
        "tools", "--config", "examples/quickstart/switchboard.yaml", "--json", "--gateway", "default"
    )
    assert result.returncode == 0, result.stderr
    tools = {t["name"]: t for t in json.loads(result.stdout)}
    assert tools["tickets___open_tickets"]["inputSchema"]["type"] == "object"
    assert tools["units___celsius_to_fahrenheit"]["annotations"] == {"readOnlyHint": True}


def test_schema_is_json_schema() -> None:
    result = run("schema")
    schema = json.loads(result.stdout)
    assert schema["$schema"].endswith("2020-12/schema") and "gateways" in schema["properties"]


def test_serve_refuses_a_bad_config_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateways:\n  - name: g\n    targetz: []\n")
    result = run("serve", "--config", str(bad), "--port", "0", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert "bad.yaml:3: gateways[0].targetz: unknown field" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_unknown_trace_exporter_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "otlp,zipkin"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "d")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'; use otlp, console or none" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_warns_about_skipped_operations(tmp_path: Path) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\nservers: [{url: 'http://127.0.0.1:9'}]\npaths:\n"
        "  /ok: {get: {operationId: ok, responses: {}}}\n"
        "  /bad: {post: {operationId: bad, requestBody: {content: {application/json: "
        "{schema: {$ref: '#/components/schemas/Missing'}}}}, responses: {}}}\n"
    )
    config = tmp_path / "sw.yaml"
    config.write_text(
        f"gateways:\n  - name: g\n    targets:\n      - {{name: api, kind: openapi, spec: {spec}}}\n"
    )
    result = run("check", str(config))
    assert result.returncode == 0, result.stderr
    assert "warning: g/api: skipped POST /bad (#/paths/~1bad/post)" in result.stderr
    assert "$ref target #/components/schemas/Missing does not exist" in result.stderr


def test_vault_rotate_audit_and_a_missing_key_refuses_to_start(tmp_path: Path) -> None:
    import anyio

    from gateway.store import Store, StoreSecrets
    from identity.vault import LocalKeyring, Owner, Vault

    data = tmp_path / "d"

    async def seal() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{data / 'switchboard.db'}")
        try:
            await Vault(LocalKeyring(data / "vault.keys"), StoreSecrets(store)).put(
                Owner("default", "u1", "gh"), "s3"
            )
        finally:
            await store.close()

    data.mkdir(mode=0o700)
    anyio.run(seal)
    rotated = run("vault", "rotate", "--data-dir", str(data))
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == "re-wrapped 1 data keys under master key 'k2'"
    audit = run("vault", "audit", "--data-dir", str(data))
    assert [line.split()[1:3] for line in audit.stdout.splitlines()] == [["store", "ok"], ["rewrap", "ok"]]
    (data / "vault.keys").unlink()
    refused = run("serve", "--port", "0", "--data-dir", str(data))
    assert refused.returncode == 1
    assert (
        "vault key file" in refused.stderr
        and "is missing but the store holds sealed secrets" in refused.stderr
    )
    assert "Traceback" not in refused.stderr


def test_a_setting_the_process_cannot_use_is_named_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "SWITCHBOARD_PORT": "notaport", "SWITCHBOARD_AGENTCORE_RATE": "lots"}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "SWITCHBOARD_PORT: Input should be a valid integer" in done.stderr
    assert "SWITCHBOARD_AGENTCORE_RATE:" in done.stderr and "'1200/minute'" in done.stderr
    assert "Traceback" not in done.stderr
