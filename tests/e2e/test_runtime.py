"""Hosted agents through a real `switchboard serve` (ADR 0039): `switchboard runtime deploy`
makes a version of an agent written with the bedrock-agentcore SDK; callers of the tenant's
default gateway invoke it over HTTP, each session id its own sandbox with its state; streamed
answers come as they are made; bad input gets a clear error."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import boto3
import httpx2
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from runtime import Endpoint
from sandbox import available
from tests.e2e.harness import ROOT, Served, serve
from tests.support.tools import need

pytestmark = pytest.mark.anyio

AGENT = ROOT / "tests" / "fixtures" / "runtime_agent"
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


def _cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway.cli", *args, "--data-dir", str(data)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    need(available() is None, f"bubblewrap sandboxes: {available()}")
    root = tmp_path_factory.mktemp("runtime")
    deployed = _cli("runtime", "deploy", str(AGENT), "--name", "echo", data=root / "data")
    assert deployed.returncode == 0, deployed.stderr
    assert "deployed echo:1" in deployed.stdout
    refused = _cli("runtime", "deploy", str(root / "nowhere"), "--name", "echo", data=root / "data")
    assert (
        refused.returncode != 0 and "not a directory" in refused.stderr and "Traceback" not in refused.stderr
    )
    assert "echo:1  HTTP  main.py" in _cli("runtime", "list", data=root / "data").stdout
    # `gone` comes from the file serve starts with (ADR 0041): deployed as it starts.
    config = "gateways:\n  - name: default\n    auth: {kind: api_key}\n"
    config += f"runtimes:\n  - {{name: gone, path: {AGENT}}}\n"
    (root / "switchboard.yaml").write_text(config)
    with serve(root / "data", root / "switchboard.yaml") as s:
        assert any("runtime gone deployed gone:1" in line for line in s.output)
        key = httpx2.post(
            f"{s.base}/admin/v1/gateways/default/keys", json={"subject": "ada"}, headers=s.admin_headers
        )
        yield s, key.json()["key"]


async def test_an_agent_answers_each_session_from_its_own_sandbox(served: tuple[Served, str]) -> None:
    s, key = served
    url = f"{s.base}/runtimes/echo/invocations"
    headers = {"Authorization": f"Bearer {key}", SESSION: "a" * 40}
    async with httpx2.AsyncClient(timeout=120) as http:
        first = await http.post(url, json={"write": "kept"}, headers=headers)
        assert first.status_code == 200, first.text
        assert first.json()["session"] == "a" * 40 and first.headers[SESSION] == "a" * 40
        again = (await http.post(url, json={}, headers=headers)).json()
        assert again["calls"] == 2 and "note.txt" in again["files"]
        other = (await http.post(url, json={}, headers={**headers, SESSION: "b" * 40})).json()
        assert other["calls"] == 1 and "note.txt" not in other["files"]
        fresh = await http.post(url, json={}, headers={"Authorization": f"Bearer {key}"})
        assert len(fresh.headers[SESSION]) >= 33  # a new session, its id said
        async with http.stream("POST", url, json={"stream": True}, headers=headers) as streamed:
            assert streamed.headers["content-type"].startswith("text/event-stream")
            events = [
                json.loads(line[5:]) async for line in streamed.aiter_lines() if line.startswith("data:")
            ]
        assert events == [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]


async def test_the_agent_reaches_the_gateway_from_its_sandbox(served: tuple[Served, str]) -> None:
    s, key = served
    headers = {"Authorization": f"Bearer {key}", SESSION: "g" * 40}
    payload = {"fetch": "SWITCHBOARD_GATEWAY_URL", "path": "/healthz"}
    async with httpx2.AsyncClient(timeout=120) as http:
        found = await http.post(f"{s.base}/runtimes/echo/invocations", json=payload, headers=headers)
    assert found.status_code == 200, found.text
    assert found.json()["url"] == "http://127.0.0.1:7070/healthz"
    assert json.loads(found.json()["fetched"]) == httpx2.get(f"{s.base}/healthz").json()
    # It comes from a sandbox, not from this machine: what loopback clients may do, it may not
    # (found in review: the link made every agent a loopback client of every tenant's gateways).
    assert httpx2.get(f"{s.base}/metrics").status_code == 200  # (this test is a loopback client)
    async with httpx2.AsyncClient(timeout=120) as http:
        payload = {"fetch": "SWITCHBOARD_GATEWAY_URL", "path": "/metrics"}
        metrics = await http.post(f"{s.base}/runtimes/echo/invocations", json=payload, headers=headers)
    assert metrics.status_code == 500 and "403" in metrics.text, metrics.text


async def test_bad_calls_get_clear_errors(served: tuple[Served, str]) -> None:
    s, key = served
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(timeout=60) as http:
        assert (await http.post(f"{s.base}/runtimes/echo/invocations", json={})).status_code == 401
        unknown = await http.post(f"{s.base}/runtimes/nope/invocations", json={}, headers=auth)
        assert unknown.status_code == 404 and "no runtime 'nope'" in unknown.json()["error"]
        version = await http.post(f"{s.base}/runtimes/echo/invocations?version=7", json={}, headers=auth)
        assert version.status_code == 404 and "has no version 7" in version.json()["error"]
        short = await http.post(
            f"{s.base}/runtimes/echo/invocations", json={}, headers={**auth, SESSION: "x"}
        )
        assert short.status_code == 400 and "33 to 256 characters" in short.json()["error"]
        tenant = await http.post(f"{s.base}/tenants/nobody/runtimes/echo/invocations", json={}, headers=auth)
        assert tenant.status_code == 404
        # A session is its first caller's: another caller naming it is refused (review 20b).
        mine = await http.post(
            f"{s.base}/runtimes/echo/invocations", json={}, headers={**auth, SESSION: "n" * 40}
        )
        assert mine.status_code == 200
        bob = httpx2.post(
            f"{s.base}/admin/v1/gateways/default/keys", json={"subject": "bob"}, headers=s.admin_headers
        ).json()["key"]
        theirs = await http.post(
            f"{s.base}/runtimes/echo/invocations",
            json={},
            headers={"Authorization": f"Bearer {bob}", SESSION: "n" * 40},
        )
        assert theirs.status_code == 403 and "another caller's" in theirs.json()["error"]
        await http.delete(f"{s.base}/admin/v1/runtime-sessions/{'n' * 40}", headers=s.admin_headers)
        # DNS rebinding: another name for this host, or a web page of another origin, is refused.
        for foreign in ({"Host": "evil.example"}, {"Origin": "http://evil.example"}):
            refused = await http.post(
                f"{s.base}/runtimes/echo/invocations", json={}, headers={**auth, **foreign}
            )
            assert refused.status_code in (403, 421), refused.text


async def test_the_admin_lists_and_kills_live_sessions(served: tuple[Served, str]) -> None:
    s, key = served
    url = f"{s.base}/runtimes/echo/invocations"
    headers = {"Authorization": f"Bearer {key}", SESSION: "k" * 40}
    async with httpx2.AsyncClient(timeout=120, base_url=s.base) as http:
        assert (await http.post(url, json={}, headers=headers)).status_code == 200
        listed = (await http.get("/admin/v1/runtime-sessions", headers=s.admin_headers)).json()["sessions"]
        mine = next(x for x in listed if x["id"] == "k" * 40)
        assert mine["runtime_version"] == "echo:1" and mine["memory_bytes"] > 0 and mine["age_seconds"] >= 0
        killed = await http.delete(f"/admin/v1/runtime-sessions/{'k' * 40}", headers=s.admin_headers)
        assert killed.status_code == 204
        gone = await http.delete(f"/admin/v1/runtime-sessions/{'k' * 40}", headers=s.admin_headers)
        assert gone.status_code == 404
        after = (await http.post(url, json={}, headers=headers)).json()
        assert after["calls"] == 1  # a new sandbox: the killed one kept nothing


def _data_client(s: Served) -> Any:
    made = httpx2.post(f"{s.base}/admin/v1/aws-keys", json={"subject": "ci"}, headers=s.admin_headers)
    assert made.status_code == 201, made.text
    body = made.json()
    session = boto3.Session(
        region_name="us-east-1",
        aws_access_key_id=body["access_key_id"],
        aws_secret_access_key=body["secret_access_key"],
    )
    config = Config(retries={"max_attempts": 1}, read_timeout=120)
    return session.client("bedrock-agentcore", endpoint_url=f"{s.base}/aws/agentcore", config=config)


async def test_boto3_invokes_the_agent_and_streams_its_answer_unchanged(served: tuple[Served, str]) -> None:
    s, _ = served
    data = _data_client(s)
    arn = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/echo"

    def invoke(payload: dict[str, object], session_id: str) -> Any:
        return data.invoke_agent_runtime(
            agentRuntimeArn=arn, runtimeSessionId=session_id, payload=json.dumps(payload)
        )

    session_id = "boto3-session-" + "z" * 30
    first = await anyio.to_thread.run_sync(lambda: invoke({"hello": "aws"}, session_id))
    assert first["runtimeSessionId"] == session_id and first["contentType"] == "application/json"
    answered = json.loads(first["response"].read())
    assert (
        answered["echo"] == {"hello": "aws"} and answered["session"] == session_id and answered["calls"] == 1
    )
    streamed = await anyio.to_thread.run_sync(lambda: invoke({"stream": True}, session_id))
    assert streamed["contentType"].startswith("text/event-stream")
    lines = await anyio.to_thread.run_sync(
        lambda: [line for line in streamed["response"].iter_lines() if line]
    )
    assert [json.loads(line[5:]) for line in lines] == [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]
    stopped = await anyio.to_thread.run_sync(
        lambda: data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session_id)
    )
    assert stopped["runtimeSessionId"] == session_id
    again = json.loads((await anyio.to_thread.run_sync(lambda: invoke({}, session_id)))["response"].read())
    assert again["calls"] == 1  # stopped: a new sandbox
    with pytest.raises(ClientError) as unknown:
        nope = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/nope"
        await anyio.to_thread.run_sync(lambda: data.invoke_agent_runtime(agentRuntimeArn=nope, payload=b"{}"))
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"


async def test_the_control_plane_lists_describes_and_deletes_deployed_runtimes(
    served: tuple[Served, str],
) -> None:
    s, _ = served
    control = _control_client(s)
    listed = await anyio.to_thread.run_sync(control.list_agent_runtimes)
    echo = next(r for r in listed["agentRuntimes"] if r["agentRuntimeName"] == "echo")
    assert echo["agentRuntimeId"].startswith("echo-") and echo["status"] == "READY"
    assert echo["agentRuntimeArn"].endswith(f":runtime/{echo['agentRuntimeId']}")
    got = await anyio.to_thread.run_sync(
        lambda: control.get_agent_runtime(agentRuntimeId=echo["agentRuntimeId"])
    )
    assert (
        got["agentRuntimeVersion"] == "1"
        and got["lifecycleConfiguration"]["idleRuntimeSessionTimeout"] == 900
    )
    versions = await anyio.to_thread.run_sync(
        lambda: control.list_agent_runtime_versions(agentRuntimeId=echo["agentRuntimeId"])
    )
    assert [v["agentRuntimeVersion"] for v in versions["agentRuntimes"]] == ["1"]
    data = _data_client(s)  # the ARN the control plane gave works for invocations
    answer = await anyio.to_thread.run_sync(
        lambda: data.invoke_agent_runtime(agentRuntimeArn=echo["agentRuntimeArn"], payload=b'{"via": "arn"}')
    )
    assert json.loads(answer["response"].read())["echo"] == {"via": "arn"}
    with pytest.raises(ClientError) as missing:
        await anyio.to_thread.run_sync(lambda: control.get_agent_runtime(agentRuntimeId="nope-0123456789"))
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    gone = next(r for r in listed["agentRuntimes"] if r["agentRuntimeName"] == "gone")
    await anyio.to_thread.run_sync(
        lambda: data.invoke_agent_runtime(agentRuntimeArn=gone["agentRuntimeArn"], payload=b"{}")
    )
    deleted = await anyio.to_thread.run_sync(
        lambda: control.delete_agent_runtime(agentRuntimeId=gone["agentRuntimeId"])
    )
    assert deleted["status"] == "DELETING" and deleted["agentRuntimeId"] == gone["agentRuntimeId"]
    after = await anyio.to_thread.run_sync(control.list_agent_runtimes)
    assert "gone" not in {r["agentRuntimeName"] for r in after["agentRuntimes"]}
    with pytest.raises(ClientError) as removed:
        await anyio.to_thread.run_sync(
            lambda: data.invoke_agent_runtime(agentRuntimeArn=gone["agentRuntimeArn"], payload=b"{}")
        )
    assert removed.value.response["Error"]["Code"] == "ResourceNotFoundException"


def _control_client(s: Served) -> Any:
    made = httpx2.post(f"{s.base}/admin/v1/aws-keys", json={"subject": "ci"}, headers=s.admin_headers)
    body = made.json()
    session = boto3.Session(
        region_name="us-east-1",
        aws_access_key_id=body["access_key_id"],
        aws_secret_access_key=body["secret_access_key"],
    )
    return session.client(
        "bedrock-agentcore-control",
        endpoint_url=f"{s.base}/aws/agentcore-control",
        config=Config(retries={"max_attempts": 1}),
    )


async def test_invocations_are_audited_and_carry_the_callers_trace(served: tuple[Served, str]) -> None:
    s, key = served
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {
        "Authorization": f"Bearer {key}",
        SESSION: "t" * 40,
        "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
    }
    async with httpx2.AsyncClient(timeout=120, base_url=s.base) as http:
        answered = (
            await http.post("/runtimes/echo/invocations", json={"audited": 1}, headers=headers)
        ).json()
        assert answered["traceparent"].split("-")[1] == trace_id  # the app's request is in the caller's trace
        records = (
            await http.get("/admin/v1/audit", params={"gateway": "runtime"}, headers=s.admin_headers)
        ).json()
    mine = [r for r in records["records"] if r["subject"] == "ada"]
    assert mine and mine[0]["tool"] == "runtime/echo:1" and mine[0]["outcome"] == "ok"


async def test_a_websocket_is_relayed_both_ways_to_the_apps(served: tuple[Served, str]) -> None:
    s, key = served
    url = s.base.replace("http://", "ws://") + "/runtimes/echo/ws"
    headers = {"Authorization": f"Bearer {key}", SESSION: "w" * 40}
    async with connect(url, additional_headers=headers) as ws:
        for text in ("hello", "again"):
            await ws.send(text)
            assert json.loads(await ws.recv()) == {"echo": text, "session": "w" * 40}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers={SESSION: "w" * 40}):
            pass
    assert refused.value.response.status_code == 403


async def test_boto3_runs_a_command_in_the_sessions_sandbox(served: tuple[Served, str]) -> None:
    s, _ = served
    data = _data_client(s)
    session_id = "command-session-" + "q" * 30
    await anyio.to_thread.run_sync(
        lambda: data.invoke_agent_runtime(
            agentRuntimeArn="echo", runtimeSessionId=session_id, payload=b'{"write": "from the app"}'
        )
    )

    def run(command: str, timeout: int = 30) -> list[dict[str, Any]]:
        answer = data.invoke_agent_runtime_command(
            agentRuntimeArn="echo", runtimeSessionId=session_id, body={"command": command, "timeout": timeout}
        )
        return [event["chunk"] for event in answer["stream"]]

    events = await anyio.to_thread.run_sync(lambda: run("cat /work/note.txt; ls /app; id -u; exit 3"))
    assert events[0] == {"contentStart": {}}
    out = events[1]["contentDelta"]["stdout"]
    assert out.startswith("from the app") and "main.py" in out and "65534" in out  # its files, its user
    assert events[-1]["contentStop"] == {"exitCode": 3, "status": "COMPLETED"}
    slow = await anyio.to_thread.run_sync(lambda: run("sleep 10", timeout=1))
    assert slow[-1]["contentStop"]["status"] == "TIMED_OUT"


def _zipped(folder: Path, requirements: str | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        for path in folder.iterdir():
            if path.is_file() and not (requirements is not None and path.name == "requirements.txt"):
                zipped.write(path, path.name)
        if requirements is not None:
            zipped.writestr("requirements.txt", requirements)
    return out.getvalue()


async def test_versions_from_the_admin_api_and_a_canary_endpoint_split_by_weight(
    served: tuple[Served, str],
) -> None:
    s, key = served
    root = s.admin_headers
    async with httpx2.AsyncClient(timeout=600, base_url=s.base) as http:
        bad = await http.post(
            "/admin/v1/runtimes/canary/versions",
            content=_zipped(AGENT, "bedrock-agentcore\n-e .\n"),
            headers=root,
        )
        assert bad.status_code == 422 and "requirements.txt line 2" in bad.json()["error"], bad.text
        for number in (1, 2):
            made = await http.post(
                f"/admin/v1/runtimes/canary/versions?env=SECRET_V={number}&description=v{number}",
                content=_zipped(AGENT),
                headers=root,
            )
            assert made.status_code == 201, made.text
            assert made.json()["number"] == number and made.json()["environment"] == ["SECRET_V"]
        weight = await http.put(
            "/admin/v1/runtimes/canary/endpoints/live",
            json={"version": 1, "canary": 2, "weight": 101},
            headers=root,
        )
        assert weight.status_code == 422 and "weight" in weight.text
    # The CLI sets the same files a running serve reads.
    cli = _cli(
        "runtime",
        "endpoint",
        "canary",
        "live",
        "--version",
        "1",
        "--canary",
        "2",
        "--weight",
        "50",
        data=s.data_dir,
    )
    assert cli.returncode == 0 and "version 2 for 50% of new sessions" in cli.stdout, cli.stderr
    assert "endpoint live -> 1 + 2 (50%)" in _cli("runtime", "list", data=s.data_dir).stdout
    ids = [f"canary-{i}-{'c' * 34}" for i in range(6)]
    expected = [Endpoint("live", 1, 2, 50).pick(i, 2) for i in ids]
    assert set(expected) == {1, 2}  # (these ids fall on both sides)
    served_by = []
    async with httpx2.AsyncClient(timeout=120, base_url=s.base) as http:
        for session_id in ids:
            headers = {"Authorization": f"Bearer {key}", SESSION: session_id}
            answer = await http.post("/runtimes/canary/invocations?endpoint=live", json={}, headers=headers)
            assert answer.status_code == 200, answer.text
            served_by.append(int(answer.json()["env"]["SECRET_V"]))
            await http.delete(f"/admin/v1/runtime-sessions/{session_id}", headers=root)
        assert served_by == expected
        listed = (await http.get("/admin/v1/runtimes/canary", headers=root)).json()
        assert [v["description"] for v in listed["versions"]] == ["v1", "v2"]
        assert [(e["name"], e["version"], e["canary"], e["weight"]) for e in listed["endpoints"]] == [
            ("DEFAULT", 2, None, 0),
            ("live", 1, 2, 50),
        ]
        assert (
            await http.delete("/admin/v1/runtimes/canary/endpoints/live", headers=root)
        ).status_code == 204
        unknown = await http.post(
            "/runtimes/canary/invocations?endpoint=live", json={}, headers={"Authorization": f"Bearer {key}"}
        )
        assert unknown.status_code == 404 and "has no endpoint 'live'" in unknown.json()["error"]
        assert (await http.delete("/admin/v1/runtimes/canary", headers=root)).status_code == 204


async def test_a_versions_secret_comes_from_the_tenants_vault(served: tuple[Served, str]) -> None:
    s, key = served
    async with httpx2.AsyncClient(timeout=600, base_url=s.base) as http:
        made = await http.post(
            "/admin/v1/runtimes/keyed/versions?secret=SECRET_KEY=openai",
            content=_zipped(AGENT),
            headers=s.admin_headers,
        )
        assert made.status_code == 201 and made.json()["secrets"] == {"SECRET_KEY": "openai"}, made.text
        headers = {"Authorization": f"Bearer {key}", SESSION: "v" * 40}
        missing = await http.post("/runtimes/keyed/invocations", json={}, headers=headers)
        assert missing.status_code == 502
        assert "API key credential provider 'openai', which tenant 'default' does not have" in missing.text
    control = _control_client(s)
    await anyio.to_thread.run_sync(
        lambda: control.create_api_key_credential_provider(name="openai", apiKey="sk-from-the-vault")
    )
    async with httpx2.AsyncClient(timeout=120, base_url=s.base) as http:
        answer = await http.post("/runtimes/keyed/invocations", json={}, headers=headers)
        assert answer.json()["env"] == {"SECRET_KEY": "sk-from-the-vault"}, answer.text
        # The SDK's @requires_api_key: the workload access token the invocation carried, and the
        # runtime's own key, signing for AgentCore's token vault through the gateway's link.
        fetched = await http.post("/runtimes/keyed/invocations", json={"api_key": "openai"}, headers=headers)
        assert fetched.json() == {"api_key": "sk-from-the-vault"}, fetched.text
        other = await http.post("/runtimes/keyed/invocations", json={"api_key": "nope"}, headers=headers)
        assert "ResourceNotFoundException" in other.json()["refused"]
        url = "/runtimes/keyed/invocations"
        itself = await http.post(url, json={"invoke_self": "keyed"}, headers=headers)
        assert "AccessDeniedException" in itself.json()["refused"] and "workload" in itself.json()["refused"]
        await http.delete(f"/admin/v1/runtime-sessions/{'v' * 40}", headers=s.admin_headers)
    keys = httpx2.get(f"{s.base}/admin/v1/aws-keys", headers=s.admin_headers).json()
    own = [k for k in keys["access_keys"] if k["subject"] == "runtime:keyed"]
    assert len(own) == 1 and own[0]["planes"] == ["workload"]  # (one key, kept, for the token vault only)


async def test_the_cli_lists_and_kills_live_sessions(served: tuple[Served, str]) -> None:
    s, key = served
    headers = {"Authorization": f"Bearer {key}", SESSION: "q" * 40}
    async with httpx2.AsyncClient(timeout=120, base_url=s.base) as http:
        assert (await http.post("/runtimes/echo/invocations", json={}, headers=headers)).status_code == 200
    admin = ["--url", s.base, "--admin-key", s.admin_key or ""]
    listed = _cli_remote("runtime", "sessions", *admin)
    assert listed.returncode == 0 and any(
        line.startswith("q" * 40) and "echo:1" in line and "MiB" in line
        for line in listed.stdout.splitlines()
    ), listed.stdout
    assert _cli_remote("runtime", "kill", "q" * 40, *admin).stdout.strip() == f"killed {'q' * 40}"
    again = _cli_remote("runtime", "kill", "q" * 40, *admin)
    assert again.returncode == 1 and "no hosted agent session" in again.stderr
    refused = _cli_remote("runtime", "sessions", "--url", s.base, "--admin-key", "sb_admin_wrong")
    assert refused.returncode == 1 and "invalid admin key" in refused.stderr


def _cli_remote(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway.cli", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
