"""AgentCore Runtime's control plane through a real `switchboard serve` (ADR 0041): boto3's
`create_agent_runtime` / `update_agent_runtime` make versions from a zip in S3 (moto's S3 on
loopback stands in for AWS), built in the background while `get_agent_runtime` says CREATING,
then READY; a failed update says why and leaves the versions before it serving; endpoints point
at versions and `invoke_agent_runtime`'s qualifier picks one."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import boto3
import httpx2
import pytest
from botocore.exceptions import ClientError

from sandbox import available
from tests.e2e.harness import ROOT, Served, serve
from tests.e2e.test_runtime import _control_client, _data_client
from tests.support.moto import moto_service
from tests.support.tools import need

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]

AGENT = ROOT / "tests" / "fixtures" / "runtime_agent"
ROLE = "arn:aws:iam::123456789012:role/agent"


def _zip(folder: Path, requirements: str | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        for path in folder.iterdir():
            if path.is_file():
                text = requirements if path.name == "requirements.txt" and requirements else path.read_text()
                zipped.writestr(path.name, text)
    return out.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Any]]:
    need(available() is None, f"bubblewrap sandboxes: {available()}")
    with moto_service("s3", "AWS_ENDPOINT_URL_S3") as (env, s3):
        s3.create_bucket(Bucket="agents")
        with serve(tmp_path_factory.mktemp("control") / "data", env=env) as s:
            yield s, s3


def _artifact(key: str) -> dict[str, Any]:
    code = {"s3": {"bucket": "agents", "prefix": key}}
    return {"codeConfiguration": {"code": code, "runtime": "PYTHON_3_11", "entryPoint": ["main.py"]}}


async def _run(call: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(call)


async def _settled(control: Any, runtime_id: str) -> dict[str, Any]:
    """GetAgentRuntime until the build in the background has ended."""
    for _ in range(600):
        got = await _run(lambda: control.get_agent_runtime(agentRuntimeId=runtime_id))
        if got["status"] not in ("CREATING", "UPDATING"):
            return dict(got)
        await anyio.sleep(0.5)
    raise AssertionError("the runtime never settled")


def _invoke(data: Any, arn: str, session: str, qualifier: str | None = None) -> dict[str, Any]:
    extra = {"qualifier": qualifier} if qualifier else {}
    answer = data.invoke_agent_runtime(agentRuntimeArn=arn, runtimeSessionId=session, payload=b"{}", **extra)
    found: dict[str, Any] = json.loads(answer["response"].read())
    return found


async def test_boto3_creates_updates_and_routes_a_runtime_by_its_endpoints(
    served: tuple[Served, Any],
) -> None:
    s, s3 = served
    control, data = _control_client(s), _data_client(s)
    s3.put_object(Bucket="agents", Key="echo/v1.zip", Body=_zip(AGENT))
    made = await _run(
        lambda: control.create_agent_runtime(
            agentRuntimeName="made",
            agentRuntimeArtifact=_artifact("echo/v1.zip"),
            roleArn=ROLE,
            networkConfiguration={"networkMode": "PUBLIC"},
            environmentVariables={"SECRET_MODE": "one"},
            description="first",
        )
    )
    assert made["status"] == "CREATING" and made["agentRuntimeVersion"] == "1"
    ready = await _settled(control, made["agentRuntimeId"])
    assert ready["status"] == "READY", ready.get("failureReason")
    assert ready["roleArn"] == ROLE and ready["environmentVariables"] == {"SECRET_MODE": "one"}
    arn = made["agentRuntimeArn"]
    assert (await _run(lambda: _invoke(data, arn, "a" * 40)))["env"] == {"SECRET_MODE": "one"}

    updated = await _run(
        lambda: control.update_agent_runtime(
            agentRuntimeId=made["agentRuntimeId"],
            agentRuntimeArtifact=_artifact("echo/v1.zip"),
            roleArn=ROLE,
            networkConfiguration={"networkMode": "PUBLIC"},
            environmentVariables={"SECRET_MODE": "two"},
        )
    )
    assert updated["status"] == "UPDATING" and updated["agentRuntimeVersion"] == "2"
    assert (await _settled(control, made["agentRuntimeId"]))["agentRuntimeVersion"] == "2"
    assert (await _run(lambda: _invoke(data, arn, "a" * 40)))["env"] == {"SECRET_MODE": "one"}  # (affinity)
    assert (await _run(lambda: _invoke(data, arn, "b" * 40)))["env"] == {"SECRET_MODE": "two"}  # (DEFAULT)

    endpoint = await _run(
        lambda: control.create_agent_runtime_endpoint(
            agentRuntimeId=made["agentRuntimeId"], name="stable", agentRuntimeVersion="1"
        )
    )
    assert endpoint["targetVersion"] == "1" and endpoint["status"] == "READY"
    assert (await _run(lambda: _invoke(data, arn, "c" * 40, "stable")))["env"] == {"SECRET_MODE": "one"}
    assert (await _run(lambda: _invoke(data, arn, "d" * 40, "2")))["env"] == {"SECRET_MODE": "two"}
    listed = await _run(lambda: control.list_agent_runtime_endpoints(agentRuntimeId=made["agentRuntimeId"]))
    assert [(e["name"], e["targetVersion"]) for e in listed["runtimeEndpoints"]] == [
        ("DEFAULT", "2"),
        ("stable", "1"),
    ]
    await _run(
        lambda: control.update_agent_runtime_endpoint(
            agentRuntimeId=made["agentRuntimeId"], endpointName="stable", agentRuntimeVersion="2"
        )
    )
    got = await _run(
        lambda: control.get_agent_runtime_endpoint(
            agentRuntimeId=made["agentRuntimeId"], endpointName="stable"
        )
    )
    assert got["targetVersion"] == "2"
    await _run(
        lambda: control.delete_agent_runtime_endpoint(
            agentRuntimeId=made["agentRuntimeId"], endpointName="stable"
        )
    )
    with pytest.raises(ClientError) as gone:
        await _run(lambda: _invoke(data, arn, "e" * 40, "stable"))
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "no endpoint 'stable'" in gone.value.response["Error"]["Message"]

    # A failed update says why, and the versions before it serve on.
    s3.put_object(Bucket="agents", Key="echo/bad.zip", Body=_zip(AGENT, "bedrock-agentcore\n--index-url x\n"))
    await _run(
        lambda: control.update_agent_runtime(
            agentRuntimeId=made["agentRuntimeId"],
            agentRuntimeArtifact=_artifact("echo/bad.zip"),
            roleArn=ROLE,
            networkConfiguration={"networkMode": "PUBLIC"},
        )
    )
    failed = await _settled(control, made["agentRuntimeId"])
    assert failed["status"] == "UPDATE_FAILED" and "requirements.txt line 2" in failed["failureReason"]
    versions = await _run(lambda: control.list_agent_runtime_versions(agentRuntimeId=made["agentRuntimeId"]))
    assert [v["agentRuntimeVersion"] for v in versions["agentRuntimes"]] == ["1", "2"]
    assert (await _run(lambda: _invoke(data, arn, "f" * 40)))["env"] == {"SECRET_MODE": "two"}


async def test_bad_creates_are_refused_saying_why(served: tuple[Served, Any]) -> None:
    s, _ = served
    control = _control_client(s)

    async def code(**params: Any) -> tuple[str, str]:
        base = {"agentRuntimeName": "bad", "roleArn": ROLE, "networkConfiguration": {"networkMode": "PUBLIC"}}
        with pytest.raises(ClientError) as refused:
            await _run(lambda: control.create_agent_runtime(**{**base, **params}))
        error = refused.value.response["Error"]
        return error["Code"], error["Message"]

    container = {
        "containerConfiguration": {"containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/a:1"}
    }
    assert await code(agentRuntimeArtifact=container) == (
        "ValidationException",
        "agentRuntimeArtifact.containerConfiguration: container images cannot run here (no container "
        "engine); send codeConfiguration (a zip of the agent's folder) or deploy the folder with "
        "switchboard runtime deploy",
    )
    no_entry = _artifact("x.zip")
    no_entry["codeConfiguration"]["entryPoint"] = ["opentelemetry-instrument"]
    assert "name the .py file" in (await code(agentRuntimeArtifact=no_entry))[1]
    reserved = await code(agentRuntimeArtifact=_artifact("x.zip"), environmentVariables={"PATH": "/x"})
    assert reserved[0] == "ValidationException" and "one of the runtime's own" in reserved[1]
    protocol = await code(
        agentRuntimeArtifact=_artifact("x.zip"), protocolConfiguration={"serverProtocol": "AGUI"}
    )
    assert "HTTP, MCP or A2A" in protocol[1]
    await _run(
        lambda: control.create_agent_runtime(
            agentRuntimeName="twice", agentRuntimeArtifact=_artifact("missing.zip"), roleArn=ROLE
        )
    )
    twice = await code(agentRuntimeName="twice", agentRuntimeArtifact=_artifact("missing.zip"))
    assert twice[0] == "ConflictException" and "already exists" in twice[1]
    failed = await _settled(
        control, (await _run(control.list_agent_runtimes))["agentRuntimes"][-1]["agentRuntimeId"]
    )
    assert failed["status"] == "CREATE_FAILED" and "missing.zip cannot be read" in failed["failureReason"]


async def test_the_sdks_runtime_client_drives_it_unchanged(
    served: tuple[Served, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """bedrock-agentcore's AgentCoreRuntimeClient, pointed here the way boto3 is (its endpoint
    variables): create and wait, an endpoint and wait, invoke through it, delete and wait."""
    with warnings.catch_warnings():  # (the SDK declares a pydantic model the old way)
        warnings.simplefilter("ignore", DeprecationWarning)
        from bedrock_agentcore.runtime import AgentCoreRuntimeClient, WaitConfig

    s, s3 = served
    s3.put_object(Bucket="agents", Key="sdk/v1.zip", Body=_zip(AGENT))
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", f"{s.base}/aws/agentcore")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL", f"{s.base}/aws/agentcore-control")
    made = httpx2.post(f"{s.base}/admin/v1/aws-keys", json={"subject": "sdk"}, headers=s.admin_headers).json()
    session = boto3.Session(
        aws_access_key_id=made["access_key_id"], aws_secret_access_key=made["secret_access_key"]
    )
    client = AgentCoreRuntimeClient(region="us-east-1", session=session)
    fast = WaitConfig(max_wait=600, poll_interval=1)
    ready = await _run(
        lambda: client.create_agent_runtime_and_wait(
            wait_config=fast,
            agent_runtime_name="sdk",
            agent_runtime_artifact=_artifact("sdk/v1.zip"),
            role_arn=ROLE,
            network_configuration={"networkMode": "PUBLIC"},
        )
    )
    assert ready["status"] == "READY" and ready["agentRuntimeName"] == "sdk"
    endpoint = await _run(
        lambda: client.create_agent_runtime_endpoint_and_wait(
            wait_config=fast, agent_runtime_id=ready["agentRuntimeId"], name="prod", agent_runtime_version="1"
        )
    )
    assert endpoint["status"] == "READY" and endpoint["targetVersion"] == "1"
    answer = await _run(
        lambda: client.invoke_agent_runtime(
            agent_runtime_arn=ready["agentRuntimeArn"],
            qualifier="prod",
            runtime_session_id="sdk-" + "s" * 36,
            payload=json.dumps({"from": "sdk"}),
        )
    )
    assert json.loads(answer["response"].read())["echo"] == {"from": "sdk"}
    await _run(
        lambda: client.delete_agent_runtime_and_wait(
            wait_config=fast, agent_runtime_id=ready["agentRuntimeId"]
        )
    )
    listed = await _run(client.list_agent_runtimes)
    assert "sdk" not in {r["agentRuntimeName"] for r in listed["agentRuntimes"]}
