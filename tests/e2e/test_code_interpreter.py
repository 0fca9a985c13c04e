"""The code interpreter through a real ``switchboard serve``: the bedrock-agentcore SDK's
``code_session`` unchanged (Python state kept across calls, files up and down, a command, no
package from the internet, a matplotlib chart as an image), boto3's control plane, and clear
errors for bad input."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import boto3
import httpx2
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.e2e.harness import Served, create_tenant, serve

pytestmark = pytest.mark.anyio

REGION = "us-west-2"
T = TypeVar("T")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("interpreter")
    env = {"SWITCHBOARD_CODE_INTERPRETER_WARM": "1", "SWITCHBOARD_CODE_INTERPRETER_WALL_SECONDS": "20"}
    with serve(root / "data", env=env) as served:
        yield served


@pytest.fixture(scope="module")
def key(live: Served) -> dict[str, str]:
    made = httpx2.post(f"{live.base}/admin/v1/aws-keys", json={"subject": "ci"}, headers=live.admin_headers)
    assert made.status_code == 201, made.text
    body = made.json()
    return {"AWS_ACCESS_KEY_ID": body["access_key_id"], "AWS_SECRET_ACCESS_KEY": body["secret_access_key"]}


def _env(live: Served, key: dict[str, str]) -> dict[str, str]:
    return {
        **key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": f"{live.base}/aws/agentcore",
        "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL": f"{live.base}/aws/agentcore-control",
    }


async def _run(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


def _texts(response: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The text of every result event's content, and the events' results."""
    results = [event["result"] for event in response["stream"] if "result" in event]
    text = "".join(b.get("text", "") for r in results for b in r["content"] if b["type"] == "text")
    return text, results


SDK_SCRIPT = textwrap.dedent(
    r"""
    import base64, json
    from bedrock_agentcore.tools.code_interpreter_client import code_session

    def texts(response):
        results = [event["result"] for event in response["stream"] if "result" in event]
        text = "".join(b.get("text", "") for r in results for b in r["content"] if b["type"] == "text")
        for r in results:
            for b in r["content"]:
                if isinstance(b.get("data"), bytes):
                    b["data"] = base64.b64encode(b["data"]).decode()
        return text, results

    def plain(value):
        return {"bytes": base64.b64encode(value).decode()} if isinstance(value, bytes) else value

    seen = {}
    with code_session("us-west-2") as client:
        first = "import statistics\ndata = [3, 1, 4, 1, 5]\nprint(len(data))"
        seen["first"] = texts(client.execute_code(first))
        seen["kept"] = texts(client.execute_code("print(statistics.mean(data))"))
        client.upload_file("inputs/data.csv", "a,b\n1,2\n3,4\n")
        client.upload_file("inputs/raw.bin", b"\x00\x01\xff")
        seen["csv"] = texts(client.execute_code(
            "import csv\nrows = list(csv.DictReader(open('inputs/data.csv')))\nprint(rows[1]['b'])"
        ))
        client.execute_code("open('out.txt', 'w').write('made inside')")
        seen["download"] = client.download_file("out.txt")
        both = client.download_files(["out.txt", "inputs/raw.bin"])
        seen["downloads"] = {k: plain(v) for k, v in both.items()}
        seen["command"] = texts(client.execute_command("ls inputs && echo $HOME && id -u"))
        seen["install"] = texts(client.install_packages(["requests-toolbelt"]))
        seen["chart"] = texts(client.execute_code(
            "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [2, 4, 1])\nplt.title('t')\nplt.show()"
        ))
        seen["error"] = texts(client.execute_code("1 / 0"))
        client.clear_context()
        seen["cleared"] = texts(client.execute_code("print('data' in globals())"))
        js = "console.log([1, 2, 3].map(x => x * 2).join(','))"
        seen["js"] = texts(client.execute_code(js, "javascript"))
        seen["session"] = client.session_id
        seen["identifier"] = client.identifier
        seen["listed"] = [
            {"sessionId": i["sessionId"], "status": i["status"]} for i in client.list_sessions()["items"]
        ]
    print("SEEN=" + json.dumps(seen))
    """
)


def _sdk_session(live: Served, key: dict[str, str]) -> dict[str, Any]:
    """The SDK's code_session, unchanged, in a program of its own pointed at this gateway."""
    env = {**os.environ, **_env(live, key)}
    ran = subprocess.run(
        [sys.executable, "-c", SDK_SCRIPT], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    line = next(line for line in ran.stdout.splitlines() if line.startswith("SEEN="))
    seen: dict[str, Any] = json.loads(line[len("SEEN=") :])
    return seen


async def test_the_sdk_code_session_runs_unchanged(live: Served, key: dict[str, str]) -> None:
    seen = await _run(lambda: _sdk_session(live, key))
    assert seen["identifier"] == "aws.codeinterpreter.v1"
    assert seen["first"][0] == "5\n"
    assert seen["kept"][0] == "2.8\n"  # the Python state was kept between calls
    assert seen["csv"][0] == "4\n"
    assert seen["download"] == "made inside"
    raw = base64.b64encode(b"\x00\x01\xff").decode()
    assert seen["downloads"] == {"/out.txt": "made inside", "/inputs/raw.bin": {"bytes": raw}}
    text, results = seen["command"]
    assert text.split() == ["data.csv", "raw.bin", "/work", "65534"]
    assert results[0]["structuredContent"]["exitCode"] == 0
    text, results = seen["install"]
    assert results[0]["isError"] is True  # no network: nothing comes from the internet
    assert "Failed to establish a new connection" in text  # (no name resolves; nothing leaves)
    text, results = seen["chart"]
    images = [b for b in results[0]["content"] if b["type"] == "image"]
    assert len(images) == 1 and images[0]["mimeType"] == "image/png"
    assert base64.b64decode(images[0]["data"]).startswith(b"\x89PNG")  # (botocore gave bytes)
    text, results = seen["error"]
    assert results[0]["isError"] is True and "ZeroDivisionError" in text
    assert seen["cleared"][0] == "False\n"
    assert seen["js"][0] == "2,4,6\n"
    listed = seen["listed"]
    assert any(i["sessionId"] == seen["session"] and i["status"] == "READY" for i in listed)


def _clients(live: Served, key: dict[str, str]) -> tuple[Any, Any]:
    config = Config(retries={"max_attempts": 1})
    session = boto3.Session(
        region_name=REGION,
        aws_access_key_id=key["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=key["AWS_SECRET_ACCESS_KEY"],
    )
    control = session.client(
        "bedrock-agentcore-control", endpoint_url=f"{live.base}/aws/agentcore-control", config=config
    )
    data = session.client("bedrock-agentcore", endpoint_url=f"{live.base}/aws/agentcore", config=config)
    return control, data


async def test_boto3_makes_an_interpreter_and_bad_input_gets_clear_errors(
    live: Served, key: dict[str, str]
) -> None:
    control, data = _clients(live, key)
    made = await _run(
        lambda: control.create_code_interpreter(
            name="analysis", networkConfiguration={"networkMode": "SANDBOX"}, description="for tests"
        )
    )
    identifier = made["codeInterpreterId"]
    assert identifier.startswith("analysis-") and made["status"] == "READY"
    assert made["codeInterpreterArn"].endswith(f":code-interpreter-custom/{identifier}")
    got = await _run(lambda: control.get_code_interpreter(codeInterpreterId=identifier))
    assert got["name"] == "analysis" and got["networkConfiguration"] == {"networkMode": "SANDBOX"}
    listed = await _run(lambda: control.list_code_interpreters())
    ids = [s["codeInterpreterId"] for s in listed["codeInterpreterSummaries"]]
    assert ids == ["aws.codeinterpreter.v1", identifier]
    with pytest.raises(ClientError) as refused:
        await _run(
            lambda: control.create_code_interpreter(name="vpc", networkConfiguration={"networkMode": "VPC"})
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "SANDBOX" in refused.value.response["Error"]["Message"]

    started = await _run(
        lambda: data.start_code_interpreter_session(
            codeInterpreterIdentifier=identifier, sessionTimeoutSeconds=60
        )
    )
    session = started["sessionId"]

    def invoke(name: str, arguments: dict[str, Any], session_id: str = session) -> dict[str, Any]:
        return data.invoke_code_interpreter(
            codeInterpreterIdentifier=identifier, sessionId=session_id, name=name, arguments=arguments
        )

    text, _ = _texts(await _run(lambda: invoke("executeCode", {"code": "x = 6 * 7\nx"})))
    assert text == "42\n"

    async def refusal(fn: Callable[[], Any]) -> tuple[str, str]:
        with pytest.raises(ClientError) as caught:
            await _run(fn)
        error = caught.value.response["Error"]
        return error["Code"], error["Message"]

    code, message = await refusal(lambda: invoke("executeCode", {"code": "1"}, "NOSUCHSESSION"))
    assert code == "ResourceNotFoundException" and "NOSUCHSESSION" in message
    code, message = await refusal(lambda: invoke("formatDisk", {}))
    assert code == "ValidationException" and "executeCode" in message
    code, message = await refusal(lambda: invoke("readFiles", {"paths": ["../../etc/passwd"]}))
    assert code == "ValidationException" and "inside the work directory" in message
    code, message = await refusal(
        lambda: invoke("writeFiles", {"content": [{"path": "big.bin", "blob": b"x" * (65 * 1024 * 1024)}]})
    )
    assert code in ("ValidationException", "RequestEntityTooLargeException")
    code, message = await refusal(lambda: invoke("readFiles", {"paths": ["missing.txt"]}))
    assert code == "ValidationException" and "no file 'missing.txt'" in message
    code, message = await refusal(lambda: invoke("getTask", {"taskId": "task-99"}))
    assert code == "ValidationException" and "no task" in message

    stopped = await _run(
        lambda: data.stop_code_interpreter_session(codeInterpreterIdentifier=identifier, sessionId=session)
    )
    assert stopped["sessionId"] == session
    after = await _run(
        lambda: data.get_code_interpreter_session(codeInterpreterIdentifier=identifier, sessionId=session)
    )
    assert after["status"] == "TERMINATED"
    code, message = await refusal(lambda: invoke("executeCode", {"code": "1"}))
    assert code == "ResourceNotFoundException" and "ended" in message

    audit = httpx2.get(
        f"{live.base}/admin/v1/audit",
        params={"gateway": f"code-interpreter/{identifier}"},
        headers=live.admin_headers,
    ).json()
    tools = [r["tool"] for r in audit["records"]]
    assert "executeCode" in tools and "readFiles" in tools  # every execution audited, refusals too

    deleted = await _run(lambda: control.delete_code_interpreter(codeInterpreterId=identifier))
    assert deleted["status"] == "DELETING"
    code, _ = await refusal(lambda: control.get_code_interpreter(codeInterpreterId=identifier))
    assert code == "ResourceNotFoundException"


async def test_another_tenant_cannot_see_or_use_a_session(live: Served, key: dict[str, str]) -> None:
    _, data = _clients(live, key)
    builtin = "aws.codeinterpreter.v1"
    started = await _run(lambda: data.start_code_interpreter_session(codeInterpreterIdentifier=builtin))
    session = started["sessionId"]
    cmd = live.proc.args
    assert isinstance(cmd, list)
    acme_admin = await create_tenant(Path(cmd[cmd.index("--data-dir") + 1]), "acme")
    made = httpx2.post(f"{live.base}/admin/v1/aws-keys", json={"subject": "acme"}, headers=acme_admin)
    acme = {
        "AWS_ACCESS_KEY_ID": made.json()["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": made.json()["secret_access_key"],
    }
    _, theirs = _clients(live, acme)
    for call in (
        lambda: theirs.get_code_interpreter_session(codeInterpreterIdentifier=builtin, sessionId=session),
        lambda: theirs.invoke_code_interpreter(
            codeInterpreterIdentifier=builtin, sessionId=session, name="executeCode", arguments={"code": "1"}
        ),
        lambda: theirs.stop_code_interpreter_session(codeInterpreterIdentifier=builtin, sessionId=session),
    ):
        with pytest.raises(ClientError) as refused:
            await _run(call)
        assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
    listed = await _run(lambda: theirs.list_code_interpreter_sessions(codeInterpreterIdentifier=builtin))
    assert session not in [i["sessionId"] for i in listed["items"]]
    sessions = httpx2.get(f"{live.base}/admin/v1/code-interpreter-sessions", headers=acme_admin).json()
    assert session not in [s["session_id"] for s in sessions["sessions"]]
    still = await _run(
        lambda: data.get_code_interpreter_session(codeInterpreterIdentifier=builtin, sessionId=session)
    )
    assert still["status"] == "READY"  # untouched by the other tenant's attempts
    await _run(
        lambda: data.stop_code_interpreter_session(codeInterpreterIdentifier=builtin, sessionId=session)
    )
