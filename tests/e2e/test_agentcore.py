"""AgentCore's own clients against a real ``switchboard serve``: boto3's bedrock-agentcore-control
and bedrock-agentcore clients, unchanged, and the bedrock-agentcore SDK's identity decorator."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import anyio
import boto3
import httpx2
import mcp_types as types
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.harness import ROOT, Served, create_tenant, serve
from tests.support.moto import moto_service
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio

REGION = "us-west-2"
PET_KEY = "pet-secret-42"
ROLE = "arn:aws:iam::123456789012:role/agentcore"
T = TypeVar("T")


async def _pet(request: Request) -> JSONResponse:
    if request.headers.get("x-api-key") != PET_KEY:
        return JSONResponse({"message": "no key"}, 401)
    return JSONResponse({"id": request.path_params["pet_id"], "name": "Rex"})


def _document(server: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "pets", "version": "1"},
        "servers": [{"url": server}],
        "paths": {
            "/pets/{pet_id}": {
                "get": {
                    "operationId": "getPet",
                    "summary": "One pet",
                    "parameters": [
                        {"name": "pet_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "the pet"}},
                }
            }
        },
    }


@pytest.fixture(scope="module")
def pets() -> Iterator[str]:
    with serve_app(Starlette(routes=[Route("/pets/{pet_id}", _pet)])) as url:
        yield url


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("agentcore")
    with serve(root / "data") as served:
        yield served


def _access_key(live: Served, headers: dict[str, str] | None = None) -> dict[str, str]:
    made = httpx2.post(
        f"{live.base}/admin/v1/aws-keys", json={"subject": "ci"}, headers=headers or live.admin_headers
    )
    assert made.status_code == 201, made.text
    body = made.json()
    return {"aws_access_key_id": body["access_key_id"], "aws_secret_access_key": body["secret_access_key"]}


def _clients(live: Served, key: dict[str, str], *, validate: bool = True) -> tuple[Any, Any]:
    config = Config(parameter_validation=validate, retries={"max_attempts": 1})
    session = boto3.Session(region_name=REGION, **key)
    control = session.client(
        "bedrock-agentcore-control", endpoint_url=f"{live.base}/aws/agentcore-control", config=config
    )
    data = session.client("bedrock-agentcore", endpoint_url=f"{live.base}/aws/agentcore", config=config)
    return control, data


async def _run(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


async def test_boto3_builds_a_gateway_whose_tools_mcp_clients_call(live: Served, pets: str) -> None:
    control, _ = _clients(live, _access_key(live))
    provider = await _run(lambda: control.create_api_key_credential_provider(name="pets-key", apiKey=PET_KEY))
    assert provider["credentialProviderArn"].endswith(
        ":token-vault/default/apikeycredentialprovider/pets-key"
    )
    made = await _run(
        lambda: control.create_gateway(
            name="pets",
            roleArn="arn:aws:iam::123456789012:role/agentcore",
            protocolType="MCP",
            authorizerType="NONE",
            description="pets through AgentCore's API",
        )
    )
    assert made["status"] == "READY" and made["gatewayUrl"] == live.gateway("pets")
    gateway_id = made["gatewayId"]
    target = await _run(
        lambda: control.create_gateway_target(
            gatewayIdentifier=gateway_id,
            name="store",
            targetConfiguration={"mcp": {"openApiSchema": {"inlinePayload": json.dumps(_document(pets))}}},
            credentialProviderConfigurations=[
                {
                    "credentialProviderType": "API_KEY",
                    "credentialProvider": {
                        "apiKeyCredentialProvider": {
                            "providerArn": provider["credentialProviderArn"],
                            "credentialParameterName": "x-api-key",
                            "credentialLocation": "HEADER",
                        }
                    },
                }
            ],
        )
    )
    listed = await _run(lambda: control.list_gateways())
    assert "pets" in [g["name"] for g in listed["items"]]
    got = await _run(lambda: control.get_gateway(gatewayIdentifier=gateway_id))
    assert got["roleArn"] == "arn:aws:iam::123456789012:role/agentcore" and got["authorizerType"] == "NONE"
    assert got["createdAt"] <= got["updatedAt"]
    targets = await _run(lambda: control.list_gateway_targets(gatewayIdentifier=gateway_id))
    assert [(t["name"], t["targetId"]) for t in targets["items"]] == [("store", target["targetId"])]
    one = await _run(
        lambda: control.get_gateway_target(gatewayIdentifier=gateway_id, targetId=target["targetId"])
    )
    assert one["targetConfiguration"]["mcp"]["openApiSchema"]["inlinePayload"]

    # What boto3 made is the gateway the admin API shows.
    shown = httpx2.get(f"{live.base}/admin/v1/gateways/pets", headers=live.admin_headers).json()
    assert [t["name"] for t in shown["targets"]] == ["store"]

    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with Client(made["gatewayUrl"], mode="legacy", message_handler=on_message) as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        assert tools == ["store___getPet"]
        result = await client.call_tool("store___getPet", {"pet_id": "7"})
        assert not result.is_error, result
        assert json.loads(result.content[0].text) == {"id": "7", "name": "Rex"}  # the upstream got the key

        await _run(
            lambda: control.delete_gateway_target(gatewayIdentifier=gateway_id, targetId=target["targetId"])
        )
        with anyio.fail_after(10):
            await changed.wait()
        assert (await client.list_tools()).tools == []

    await _run(lambda: control.delete_gateway(gatewayIdentifier=gateway_id))
    with pytest.raises(ClientError) as gone:
        await _run(lambda: control.get_gateway(gatewayIdentifier=gateway_id))
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"


SDK_AGENT = textwrap.dedent(
    """
    import asyncio
    from bedrock_agentcore.identity.auth import requires_api_key

    @requires_api_key(provider_name="sdk-key")
    async def call(*, api_key: str) -> str:
        return api_key

    print("KEY=" + asyncio.run(call()))
    """
)


async def test_the_sdks_requires_api_key_gets_the_stored_key(live: Served, tmp_path: Path) -> None:
    key = _access_key(live)
    control, _ = _clients(live, key)
    await _run(lambda: control.create_api_key_credential_provider(name="sdk-key", apiKey="sdk-secret-1"))
    env = {
        "AWS_ACCESS_KEY_ID": key["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": key["aws_secret_access_key"],
        "AWS_REGION": REGION,
        "BEDROCK_AGENTCORE_CP_ENDPOINT": f"{live.base}/aws/agentcore-control",
        "BEDROCK_AGENTCORE_DP_ENDPOINT": f"{live.base}/aws/agentcore",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }
    done = await anyio.run_process([sys.executable, "-c", SDK_AGENT], cwd=tmp_path, env=env, check=False)
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, out
    assert "KEY=sdk-secret-1" in out
    # The SDK made a workload identity through the control plane and remembered it.
    remembered = json.loads((tmp_path / ".agentcore.json").read_text())
    made = await _run(lambda: control.get_workload_identity(name=remembered["workload_identity_name"]))
    assert made["name"] == remembered["workload_identity_name"]


def _signed(
    url: str,
    key: dict[str, str],
    *,
    service: str = "bedrock-agentcore",
    at: datetime | None = None,
    method: str = "GET",
    body: bytes = b"",
) -> None:
    """``method url`` with ``body``, signed by botocore's own signer, for ``service``, at time
    ``at``; a refusal is raised as botocore raises it."""
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    credentials = Credentials(key["aws_access_key_id"], key["aws_secret_access_key"])
    with mock.patch("botocore.auth.get_current_datetime", lambda: at or datetime.now(UTC)):
        SigV4Auth(credentials, service, REGION).add_auth(request)
    answer = httpx2.request(method, url, headers=dict(request.headers.items()), content=body)
    if answer.status_code >= 300:
        got = answer.json()
        code = answer.headers.get("x-amzn-errortype", "").split(":")[0]
        error = {"Code": code, "Message": got.get("message") or got.get("Message", "")}
        raise ClientError(
            {"Error": error, "ResponseMetadata": {"HTTPStatusCode": answer.status_code}}, method
        )


def _code(call: Callable[[], Any]) -> tuple[str, int, str]:
    try:
        call()
    except ClientError as exc:
        error = exc.response["Error"]
        return error["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"], error.get("Message", "")
    raise AssertionError(f"the call was not refused: {call}")


async def test_bad_requests_get_the_right_aws_errors(live: Served) -> None:
    key = _access_key(live)
    control, data = _clients(live, key, validate=False)
    wrong_secret, _ = _clients(live, {**key, "aws_secret_access_key": "x" * 40})
    unknown, _ = _clients(
        live, {"aws_access_key_id": "SBAKUNKNOWNKEY000000", "aws_secret_access_key": "y" * 40}
    )
    url = f"{live.base}/aws/agentcore-control/gateways/"

    cases: list[tuple[str, Callable[[], Any], str, str]] = [
        (
            "missing member",
            lambda: control.create_gateway(name="x", authorizerType="NONE"),
            "ValidationException",
            "roleArn",
        ),
        (
            "bad enum",
            lambda: control.create_gateway(name="x", roleArn=ROLE, authorizerType="SOMETIMES"),
            "ValidationException",
            "authorizerType",
        ),
        (
            "bad pattern",
            lambda: control.create_gateway(name="no spaces", roleArn=ROLE, authorizerType="NONE"),
            "ValidationException",
            "name",
        ),
        (
            "too long",
            lambda: control.get_api_key_credential_provider(name="k" * 200),
            "ValidationException",
            "name",
        ),
        (
            "unknown id",
            lambda: control.get_gateway(gatewayIdentifier="nothing-abcdefghij"),
            "ResourceNotFoundException",
            "nothing-abcdefghij",
        ),
        (
            "not served",
            lambda: control.delete_browser(browserId="b-0123456789"),
            "ValidationException",
            "DeleteBrowser",
        ),
        (
            "IAM authorizer",
            lambda: control.create_gateway(name="iam", roleArn=ROLE, authorizerType="AWS_IAM"),
            "ValidationException",
            "AWS_IAM",
        ),
        ("bad signature", lambda: wrong_secret.list_gateways(), "InvalidSignatureException", "signature"),
        ("unknown key", lambda: unknown.list_gateways(), "UnrecognizedClientException", "security token"),
        (
            "wrong service",
            lambda: _signed(url, key, service="lambda"),
            "InvalidSignatureException",
            "service",
        ),
        (
            "old date",
            lambda: _signed(url, key, at=datetime.now(UTC) - timedelta(minutes=20)),
            "InvalidSignatureException",
            "expired",
        ),
        (
            "bad token",
            lambda: data.get_resource_api_key(
                workloadIdentityToken="x" * 20, resourceCredentialProviderName="k"
            ),
            "AccessDeniedException",
            "workload",
        ),
    ]
    for name, call, code, mentions in cases:
        try:
            got_code, status, message = await _run(lambda call=call: _code(call))  # type: ignore[misc]
        except AssertionError:
            raise AssertionError(f"{name}: the call was not refused") from None
        assert got_code == code, (name, got_code, message)
        assert mentions.lower() in message.lower(), (name, message)
        assert status < 500, (name, status)


async def test_a_tenants_resources_are_invisible_to_another_tenants_keys(
    live: Served, tmp_path: Path
) -> None:
    control, _ = _clients(live, _access_key(live))
    made = await _run(lambda: control.create_gateway(name="mine", roleArn=ROLE, authorizerType="NONE"))
    await _run(lambda: control.create_api_key_credential_provider(name="mine-key", apiKey="k"))
    other_admin = await create_tenant(_data_dir(live), "acme")
    other, _ = _clients(live, _access_key(live, other_admin))
    assert "mine" not in [g["name"] for g in (await _run(lambda: other.list_gateways()))["items"]]
    for call in (
        lambda: other.get_gateway(gatewayIdentifier=made["gatewayId"]),
        lambda: other.get_api_key_credential_provider(name="mine-key"),
        lambda: other.delete_gateway(gatewayIdentifier=made["gatewayId"]),
    ):
        code, _, _ = await _run(lambda call=call: _code(call))  # type: ignore[misc]
        assert code == "ResourceNotFoundException"
    mine = await _run(lambda: control.get_gateway(gatewayIdentifier=made["gatewayId"]))
    assert mine["name"] == "mine"


def _data_dir(live: Served) -> Path:
    cmd = live.proc.args
    assert isinstance(cmd, list)
    return Path(cmd[cmd.index("--data-dir") + 1])


async def test_every_served_operation_answers_a_minimal_request_in_the_models_terms(live: Served) -> None:
    """For each operation Switchboard serves, boto3 sends the model's minimal valid request (made
    from the model alone) and botocore parses the answer: a result, or one of the operation's own
    modelled errors (a made-up id is not found); never a 5xx, never an unmodelled error."""
    from gateway.agentcore import _gateways, _identity, _limits
    from gateway.agentcore._examples import example_input

    control, data = _clients(live, _access_key(live))
    served = [
        (control, name) for name in sorted({**_gateways.HANDLERS, **_limits.HANDLERS, **_identity.CONTROL})
    ]
    served += [(data, name) for name in sorted(_identity.DATA)]
    problems = []
    for client, name in served:
        operation = client.meta.service_model.operation_model(name)
        params = example_input(operation)
        method = getattr(client, _snake(name))
        try:
            await _run(lambda method=method, params=params: method(**params))  # type: ignore[misc]
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            modelled = {e.name for e in operation.error_shapes}
            if status >= 500 or code not in modelled:
                problems.append((name, code, status, exc.response["Error"].get("Message")))
    assert problems == []


def _snake(name: str) -> str:
    from botocore import xform_name

    return str(xform_name(name))


async def test_rate_limits_made_through_boto3_limit_mcp_calls(live: Served, pets: str) -> None:
    control, _ = _clients(live, _access_key(live))
    made = await _run(lambda: control.create_gateway(name="limited", roleArn=ROLE, authorizerType="NONE"))
    gid = made["gatewayId"]
    doc = json.dumps(_document(pets))
    await _run(
        lambda: control.create_gateway_target(
            gatewayIdentifier=gid,
            name="store",
            targetConfiguration={"mcp": {"openApiSchema": {"inlinePayload": doc}}},
        )
    )
    per_caller = {"dimensions": {"$.context.jwt.sub": "*"}, "requests": [{"rate": 2, "period": "minute"}]}
    limit = await _run(
        lambda: control.create_gateway_rate_limit(
            gatewayIdentifier=gid,
            rateLimitId="per-caller",
            dimensionKeys=["$.context.jwt.sub"],
            entries=[per_caller],
        )
    )
    assert limit["status"] == "ACTIVE" and limit["entries"] == [per_caller]
    listed = await _run(lambda: control.list_gateway_rate_limits(gatewayIdentifier=gid))
    assert [r["rateLimitId"] for r in listed["rateLimits"]] == ["per-caller"]
    # The admin API sees the same limit, as the gateway's own rules.
    shown = httpx2.get(f"{live.base}/admin/v1/gateways/limited", headers=live.admin_headers).json()
    rules = [(r["limit"], r.get("per", "caller"), r["group"]) for r in shown["rate_limits"]]
    assert rules == [("2/minute", "caller", "per-caller")]

    async with Client(made["gatewayUrl"], mode="legacy") as client:
        answers = [await client.call_tool("store___getPet", {"pet_id": "1"}) for _ in range(3)]
        assert [a.is_error for a in answers] == [
            True,
            True,
            True,
        ]  # the upstream wants a key: errors, counted
        assert "Rate limit reached" in answers[2].content[0].text
        await _run(
            lambda: control.update_gateway_rate_limit(
                gatewayIdentifier=gid,
                rateLimitId="per-caller",
                entries=[{**per_caller, "requests": [{"rate": 0, "period": "second"}]}],
            )
        )
        blocked = await client.call_tool("store___getPet", {"pet_id": "1"})
        assert "blocked" in blocked.content[0].text
        await _run(lambda: control.delete_gateway_rate_limit(gatewayIdentifier=gid, rateLimitId="per-caller"))
        freed = await client.call_tool("store___getPet", {"pet_id": "1"})
        assert "Rate limit" not in freed.content[0].text and "blocked" not in freed.content[0].text

    refused_code, _, message = await _run(
        lambda: _code(
            lambda: control.create_gateway_rate_limit(
                gatewayIdentifier=gid,
                dimensionKeys=["$.context.jwt.team"],
                entries=[
                    {"dimensions": {"$.context.jwt.team": "*"}, "requests": [{"rate": 1, "period": "second"}]}
                ],
            )
        )
    )
    assert refused_code == "ValidationException" and "$.context.jwt.team" in message


async def test_a_create_sent_again_with_its_client_token_gets_the_same_answer(
    live: Served, pets: str
) -> None:
    control, _ = _clients(live, _access_key(live))
    token = "retry-" + "0" * 40

    def make_gateway() -> Any:
        return control.create_gateway(name="retried", roleArn=ROLE, authorizerType="NONE", clientToken=token)

    first, again = await _run(make_gateway), await _run(make_gateway)
    assert again["gatewayId"] == first["gatewayId"]
    target = {"mcp": {"openApiSchema": {"inlinePayload": json.dumps(_document(pets))}}}

    def make_target() -> Any:
        return control.create_gateway_target(
            gatewayIdentifier=first["gatewayId"], name="t", targetConfiguration=target, clientToken=token
        )

    one, two = await _run(make_target), await _run(make_target)
    assert one["targetId"] == two["targetId"]
    listed = await _run(lambda: control.list_gateway_targets(gatewayIdentifier=first["gatewayId"]))
    assert [t["name"] for t in listed["items"]] == ["t"]
    other = await _run(
        lambda: _code(lambda: control.create_gateway(name="retried", roleArn=ROLE, authorizerType="NONE"))
    )
    assert other[0] == "ConflictException"  # the same name without the token: a conflict


async def test_unsigned_requests_from_loopback_only_when_the_operator_says_so(
    live: Served, tmp_path: Path
) -> None:
    from botocore import UNSIGNED

    def unsigned(served: Served) -> Any:
        config = Config(signature_version=UNSIGNED, retries={"max_attempts": 1})
        return boto3.client(
            "bedrock-agentcore-control",
            region_name=REGION,
            endpoint_url=f"{served.base}/aws/agentcore-control",
            config=config,
        )

    refused = await _run(lambda: _code(lambda: unsigned(live).list_gateways()))
    assert refused[0] == "MissingAuthenticationTokenException"
    with serve(tmp_path / "data", env={"SWITCHBOARD_AGENTCORE_UNSIGNED_LOOPBACK": "true"}) as local:
        made = await _run(
            lambda: unsigned(local).create_gateway(name="mine", roleArn=ROLE, authorizerType="NONE")
        )
        assert made["gatewayUrl"] == local.gateway("mine")  # the operator's gateway
        gateways = f"{local.base}/aws/agentcore-control/gateways/"
        from_a_page = httpx2.get(gateways, headers={"Origin": "http://evil.example"})
        rebound = httpx2.get(gateways, headers={"Host": "evil.example:80"})
        assert from_a_page.status_code == rebound.status_code == 403  # a web page is not the operator
        assert httpx2.get(gateways).status_code == 200
        signed_wrong, _ = _clients(
            local, {"aws_access_key_id": "SBAKNOPE", "aws_secret_access_key": "x" * 40}
        )
        wrong = await _run(lambda: _code(lambda: signed_wrong.list_gateways()))
        assert wrong[0] == "UnrecognizedClientException"  # a signature, when sent, is still checked


async def test_agentcore_requests_are_traced_as_the_callers_tenant(tmp_path: Path) -> None:
    from tests.fixtures.otlp_receiver import OtlpReceiver

    with OtlpReceiver() as receiver:
        env = receiver.env
        with serve(tmp_path / "data", env=env) as traced:
            key = _access_key(traced)
            control, _ = _clients(traced, key)
            await _run(lambda: control.list_gateways())

            def listed(spans: list[Any]) -> bool:
                return any(s.attributes.get("rpc.method") == "ListGateways" for s in spans)

            spans = await _run(lambda: receiver.wait_for(listed))
    span = next(s for s in spans if s.attributes.get("rpc.method") == "ListGateways")
    assert span.attributes["rpc.service"] == "bedrock-agentcore-control"
    assert span.attributes["enduser.id"] == "ci"
    assert span.attributes["switchboard.access_key_id"] == key["aws_access_key_id"]
    assert span.attributes["switchboard.tenant"] == "default"


async def test_a_keys_planes_limit_what_it_may_do(live: Served) -> None:
    made = httpx2.post(
        f"{live.base}/admin/v1/aws-keys",
        json={"subject": "agent", "planes": ["data"]},
        headers=live.admin_headers,
    )
    assert made.status_code == 201 and made.json()["planes"] == ["data"]
    key = {
        "aws_access_key_id": made.json()["access_key_id"],
        "aws_secret_access_key": made.json()["secret_access_key"],
    }
    control, data = _clients(live, key)
    code, status, message = await _run(lambda: _code(lambda: control.list_gateways()))
    assert (code, status) == ("AccessDeniedException", 403) and "control plane" in message
    refused = await _run(lambda: _code(lambda: data.get_workload_access_token(workloadName="nobody-here")))
    assert refused[0] == "ResourceNotFoundException"  # the data plane answers it


async def test_revoking_an_access_key_revokes_nothing_else(live: Served) -> None:
    with httpx2.Client(base_url=live.base, headers=live.admin_headers) as admin:
        made = admin.post("/admin/v1/gateways", json={"name": "keyed-aws", "auth": {"kind": "api_key"}})
        assert made.status_code == 201, made.text
        gateway_key = admin.post("/admin/v1/gateways/keyed-aws/keys", json={"subject": "x"}).json()["key_id"]
        assert admin.delete(f"/admin/v1/aws-keys/{gateway_key}").status_code == 404
        listed = admin.get("/admin/v1/gateways/keyed-aws/keys").json()["keys"]
        assert [k["key_id"] for k in listed] == [gateway_key]
        key = _access_key(live)
        assert admin.delete(f"/admin/v1/aws-keys/{key['aws_access_key_id']}").status_code == 204
    control, _ = _clients(live, key)
    gone = await _run(lambda: _code(lambda: control.list_gateways()))
    assert gone[0] == "UnrecognizedClientException"


async def test_a_request_nested_too_deeply_is_refused_not_failed(live: Served) -> None:
    key = _access_key(live)
    made = await _run(
        lambda: _clients(live, key)[0].create_gateway(name="deep", roleArn=ROLE, authorizerType="NONE")
    )
    schema = "{}"
    for _ in range(3000):
        schema = '{"type": "object", "properties": {"a": ' + schema + "}}"
    tool = '{"name": "t", "description": "d", "inputSchema": ' + schema + "}"
    config = '{"mcp": {"lambda": {"lambdaArn": "arn:aws:lambda:us-west-2:123456789012:function:f", '
    config += '"toolSchema": {"inlinePayload": [' + tool + "]}}}}"
    body = ('{"name": "deep", "targetConfiguration": ' + config + "}").encode()
    url = f"{live.base}/aws/agentcore-control/gateways/{made['gatewayId']}/targets/"
    code, status, _ = await _run(lambda: _code(lambda: _signed(url, key, method="POST", body=body)))
    assert status == 400 and code in ("SerializationException", "ValidationException")


async def test_a_workload_token_from_the_agentcore_api_reaches_no_gateways_credentials(live: Served) -> None:
    """An access key is not a gateway's administrator: the workload tokens it mints open the
    tenant's token vault (GetResourceApiKey), not the gateways' own credentials."""
    control, data = _clients(live, _access_key(live))
    await _run(lambda: control.create_workload_identity(name="agent-7"))
    token = (
        await _run(lambda: data.get_workload_access_token_for_user_id(workloadName="agent-7", userId="u"))
    )["workloadAccessToken"]
    answer = httpx2.post(
        f"{live.base}/identity/v1/resource-token",
        json={"gateway": "default", "provider": "anything"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 403 and "token vault" in answer.json()["error"]


async def test_the_operators_target_reads_its_document_from_s3(tmp_path: Path, pets: str) -> None:
    """openApiSchema.s3 and lambda toolSchema.s3: read with the host's AWS identity (moto's S3 on
    loopback here), the operator's tenant only."""
    with moto_service("s3", "AWS_ENDPOINT_URL_S3") as (s3_env, s3):
        s3.create_bucket(Bucket="schemas")
        s3.put_object(Bucket="schemas", Key="pets.json", Body=json.dumps(_document(pets)).encode())
        with serve(tmp_path / "data", env=s3_env) as served:
            control, _ = _clients(served, _access_key(served))
            made = await _run(lambda: control.create_gateway(name="s3", roleArn=ROLE, authorizerType="NONE"))
            config = {"mcp": {"openApiSchema": {"s3": {"uri": "s3://schemas/pets.json"}}}}
            await _run(
                lambda: control.create_gateway_target(
                    gatewayIdentifier=made["gatewayId"], name="store", targetConfiguration=config
                )
            )
            async with Client(made["gatewayUrl"], mode="legacy") as client:
                assert [t.name for t in (await client.list_tools()).tools] == ["store___getPet"]
            missing = {"mcp": {"openApiSchema": {"s3": {"uri": "s3://schemas/nope.json"}}}}
            code, _, message = await _run(
                lambda: _code(
                    lambda: control.create_gateway_target(
                        gatewayIdentifier=made["gatewayId"], name="nope", targetConfiguration=missing
                    )
                )
            )
            assert code == "ValidationException" and "nope.json" in message


async def test_an_api_gateway_api_becomes_a_target_with_its_filters_and_overrides(tmp_path: Path) -> None:
    """apiGateway: the stage's exported document (moto's API Gateway on loopback), filtered and
    renamed as the tool configuration says."""
    with moto_service("apigateway", "AWS_ENDPOINT_URL_API_GATEWAY", REGION) as (env, api):
        rest = api.create_rest_api(name="pets")["id"]
        root = next(r for r in api.get_resources(restApiId=rest)["items"] if r["path"] == "/")
        for part in ("pets", "owners"):
            resource = api.create_resource(restApiId=rest, parentId=root["id"], pathPart=part)
            api.put_method(
                restApiId=rest, resourceId=resource["id"], httpMethod="GET", authorizationType="NONE"
            )
            api.put_integration(
                restApiId=rest,
                resourceId=resource["id"],
                httpMethod="GET",
                type="HTTP",
                integrationHttpMethod="GET",
                uri=f"https://pets.example/{part}",
            )
        api.create_deployment(restApiId=rest, stageName="prod")
        with serve(tmp_path / "data", env=env) as served:
            control, _ = _clients(served, _access_key(served))
            made = await _run(
                lambda: control.create_gateway(name="apigw", roleArn=ROLE, authorizerType="NONE")
            )
            tools = {
                "toolFilters": [{"filterPath": "/pets", "methods": ["GET"]}],
                "toolOverrides": [
                    {"name": "list_pets", "path": "/pets", "method": "GET", "description": "All pets"}
                ],
            }
            config = {
                "mcp": {
                    "apiGateway": {"restApiId": rest, "stage": "prod", "apiGatewayToolConfiguration": tools}
                }
            }
            await _run(
                lambda: control.create_gateway_target(
                    gatewayIdentifier=made["gatewayId"], name="api", targetConfiguration=config
                )
            )
            async with Client(made["gatewayUrl"], mode="legacy") as client:
                listed = (await client.list_tools()).tools
            assert [(t.name, t.description) for t in listed] == [("api___list_pets", "All pets")]
            wrong = {**tools, "toolOverrides": [{"name": "x", "path": "/nope", "method": "GET"}]}
            bad = {
                "mcp": {
                    "apiGateway": {"restApiId": rest, "stage": "prod", "apiGatewayToolConfiguration": wrong}
                }
            }
            code, _, message = await _run(
                lambda: _code(
                    lambda: control.create_gateway_target(
                        gatewayIdentifier=made["gatewayId"], name="bad", targetConfiguration=bad
                    )
                )
            )
            assert code == "ValidationException" and "/nope" in message


async def test_the_operator_sets_a_tenants_account_id_and_region(tmp_path: Path) -> None:
    env = {
        "SWITCHBOARD_AWS_ACCOUNTS": '{"default": "111122223333"}',
        "SWITCHBOARD_AWS_REGIONS": '{"default": "eu-west-1"}',
    }
    with serve(tmp_path / "data", env=env) as served:
        key = _access_key(served)
        elsewhere, _ = _clients(served, key)  # signs for us-west-2
        code, _, message = await _run(lambda: _code(lambda: elsewhere.list_gateways()))
        assert code == "InvalidSignatureException" and "eu-west-1" in message
        control = boto3.Session(region_name="eu-west-1", **key).client(
            "bedrock-agentcore-control", endpoint_url=f"{served.base}/aws/agentcore-control"
        )
        made = await _run(lambda: control.create_gateway(name="here", roleArn=ROLE, authorizerType="NONE"))
        assert made["gatewayArn"].startswith("arn:aws:bedrock-agentcore:eu-west-1:111122223333:gateway/")


async def test_an_access_key_over_its_request_rate_is_throttled(tmp_path: Path) -> None:
    with serve(tmp_path / "data", env={"SWITCHBOARD_AGENTCORE_RATE": "3/minute"}) as served:
        control, _ = _clients(served, _access_key(served))
        for _ in range(3):
            await _run(lambda: control.list_gateways())
        code, status, message = await _run(lambda: _code(lambda: control.list_gateways()))
        assert (code, status) == ("ThrottlingException", 429) and "try again in" in message
        other, _ = _clients(served, _access_key(served))
        assert "items" in await _run(lambda: other.list_gateways())  # another key counts apart


async def test_a_hosted_agents_key_takes_only_its_own_workload_tokens(live: Served) -> None:
    """A runtime's own key (subject runtime:NAME, ADR 0041) fetching from the token vault with
    another workload's token is refused; with its own, it gets the key."""
    control, data = _clients(live, _access_key(live))
    for workload in ("bot", "other"):
        await _run(lambda workload=workload: control.create_workload_identity(name=workload))  # type: ignore[misc]
    await _run(lambda: control.create_api_key_credential_provider(name="bot-key", apiKey="sk-bot"))
    tokens = {
        w: (await _run(lambda w=w: data.get_workload_access_token(workloadName=w)))["workloadAccessToken"]  # type: ignore[misc]
        for w in ("bot", "other")
    }
    made = httpx2.post(
        f"{live.base}/admin/v1/aws-keys",
        json={"subject": "runtime:bot", "planes": ["data"]},
        headers=live.admin_headers,
    ).json()
    _, agent = _clients(
        live, {"aws_access_key_id": made["access_key_id"], "aws_secret_access_key": made["secret_access_key"]}
    )

    def fetch(token: str) -> Any:
        return agent.get_resource_api_key(
            workloadIdentityToken=token, resourceCredentialProviderName="bot-key"
        )

    assert (await _run(lambda: fetch(tokens["bot"])))["apiKey"] == "sk-bot"
    code, status, message = await _run(lambda: _code(lambda: fetch(tokens["other"])))
    assert (code, status) == ("AccessDeniedException", 403) and "not runtime bot's own" in message
