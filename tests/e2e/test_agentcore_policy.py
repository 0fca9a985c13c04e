"""AgentCore's policy engines against a real ``switchboard serve``: unchanged boto3 makes a policy
engine, attaches it to a gateway behind a JWT authorizer, writes Cedar for AgentCore's entity
model (the token's claims as tags, the tool's input under ``context.input``), and an MCP client
holding a token sees only what the policies permit; a LOG_ONLY forbid is in the audit and refuses
nothing; UpdatePolicy changes what connected clients may do."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import boto3
import httpx2
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.harness import Served, serve
from tests.fixtures.oidc_server import Issuer, running
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio

REGION = "us-west-2"
ROLE = "arn:aws:iam::123456789012:role/agentcore"
AUDIENCE = "shop-agents"
T = TypeVar("T")


async def _refund(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"refunded": body["amount"]})


async def _order(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["order_id"], "state": "shipped"})


def _document(server: str) -> dict[str, Any]:
    body = {
        "type": "object",
        "properties": {"amount": {"type": "integer"}, "reason": {"type": "string"}},
        "required": ["amount"],
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "shop", "version": "1"},
        "servers": [{"url": server}],
        "paths": {
            "/refunds": {
                "post": {
                    "operationId": "refund",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                    "responses": {"200": {"description": "refunded"}},
                }
            },
            "/orders/{order_id}": {
                "get": {
                    "operationId": "getOrder",
                    "parameters": [
                        {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "the order"}},
                }
            },
        },
    }


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    app = Starlette(
        routes=[Route("/refunds", _refund, methods=["POST"]), Route("/orders/{order_id}", _order)]
    )
    with serve_app(app) as url:
        yield url


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running() as found:
        yield found


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root: Path = tmp_path_factory.mktemp("agentcore-policy")
    with serve(root / "data") as served:
        yield served


def _control(live: Served, *, validate: bool = True) -> Any:
    made = httpx2.post(f"{live.base}/admin/v1/aws-keys", json={"subject": "ci"}, headers=live.admin_headers)
    assert made.status_code == 201, made.text
    key = made.json()
    session = boto3.Session(
        region_name=REGION,
        aws_access_key_id=key["access_key_id"],
        aws_secret_access_key=key["secret_access_key"],
    )
    config = Config(parameter_validation=validate, retries={"max_attempts": 1})
    return session.client(
        "bedrock-agentcore-control", endpoint_url=f"{live.base}/aws/agentcore-control", config=config
    )


async def _run(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


def _refused(call: Callable[[], Any]) -> tuple[str, str]:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"], exc.response["Error"].get("Message", "")
    raise AssertionError("the call was not refused")


def _token(issuer: Issuer, subject: str, department: str) -> str:
    now = int(time.time())
    claims = {"iss": issuer.url, "sub": subject, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    return issuer.sign({**claims, "department": department, "scope": "shop:refund"})


@asynccontextmanager
async def _client(url: str, token: str) -> AsyncIterator[Client]:
    """An MCP client of ``url`` holding ``token``."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        yield client


def _permit(gateway_arn: str, limit: int) -> str:
    return (
        "permit(principal is AgentCore::OAuthUser, "
        'action == AgentCore::Action::"shop___refund", '
        f'resource == AgentCore::Gateway::"{gateway_arn}") '
        'when { principal.hasTag("department") && principal.getTag("department") == "finance" '
        f"&& context.input.amount < {limit} }};"
    )


def _forbid(gateway_arn: str) -> str:
    return (
        'forbid(principal, action == AgentCore::Action::"shop___refund", '
        f'resource == AgentCore::Gateway::"{gateway_arn}") when {{ context.input.amount > 100 }};'
    )


def _audit(live: Served, **query: str) -> list[dict[str, Any]]:
    answer = httpx2.get(f"{live.base}/admin/v1/audit", params=query, headers=live.admin_headers)
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()["records"]
    return records


async def test_policies_written_for_agentcore_govern_a_gateway(
    live: Served, shop: str, issuer: Issuer
) -> None:
    control = _control(live)
    engine = await _run(lambda: control.create_policy_engine(name="shop_rules", description="who may refund"))
    assert engine["status"] == "ACTIVE" and engine["policyEngineArn"].endswith(
        f"policy-engine/{engine['policyEngineId']}"
    )
    engine_id = engine["policyEngineId"]
    attachment = {"arn": engine["policyEngineArn"], "mode": "ENFORCE"}
    gateway = await _run(
        lambda: control.create_gateway(
            name="shop",
            roleArn=ROLE,
            protocolType="MCP",
            authorizerType="CUSTOM_JWT",
            authorizerConfiguration={
                "customJWTAuthorizer": {
                    "discoveryUrl": f"{issuer.url}/.well-known/openid-configuration",
                    "allowedAudience": [AUDIENCE],
                }
            },
            policyEngineConfiguration=attachment,
        )
    )
    assert gateway["policyEngineConfiguration"] == attachment
    gateway_id, gateway_arn, url = gateway["gatewayId"], gateway["gatewayArn"], gateway["gatewayUrl"]
    inline = json.dumps(_document(shop))
    await _run(
        lambda: control.create_gateway_target(
            gatewayIdentifier=gateway_id,
            name="shop",
            targetConfiguration={"mcp": {"openApiSchema": {"inlinePayload": inline}}},
        )
    )
    alice = _token(issuer, "alice", "finance")
    bob = _token(issuer, "bob", "sales")

    async with _client(url, alice) as client:
        # An engine attached in ENFORCE mode with no policy yet: nothing is permitted, as in AgentCore.
        assert (await client.list_tools()).tools == []

        permit = await _run(
            lambda: control.create_policy(
                policyEngineId=engine_id,
                name="small_refunds",
                description="finance refunds under 500",
                definition={"cedar": {"statement": _permit(gateway_arn, 500)}},
            )
        )
        assert permit["status"] == "ACTIVE" and permit["enforcementMode"] == "ACTIVE"
        watch = await _run(
            lambda: control.create_policy(
                policyEngineId=engine_id,
                name="watch_big_refunds",
                definition={"cedar": {"statement": _forbid(gateway_arn)}},
                enforcementMode="LOG_ONLY",
            )
        )
        assert watch["enforcementMode"] == "LOG_ONLY"

        # A policy that does not fit the gateway is refused by name, and nothing is stored.
        bad = _permit(gateway_arn, 500).replace("shop___refund", "shop___delete_all")
        code, message = await _run(
            lambda: _refused(
                lambda: control.create_policy(
                    policyEngineId=engine_id, name="broken", definition={"cedar": {"statement": bad}}
                )
            )
        )
        assert (
            code == "ValidationException"
            and "shop___delete_all" in message
            and "nothing was stored" in message
        )
        listed = await _run(lambda: control.list_policies(policyEngineId=engine_id))
        assert sorted(p["name"] for p in listed["policies"]) == ["small_refunds", "watch_big_refunds"]

        # The permitted tool runs; the other is hidden and refused; the log-only forbid refuses nothing.
        assert [t.name for t in (await client.list_tools()).tools] == ["shop___refund"]
        small = await client.call_tool("shop___refund", {"amount": 50})
        assert not small.is_error and json.loads(small.content[0].text) == {"refunded": 50}  # type: ignore[union-attr]
        watched = await client.call_tool("shop___refund", {"amount": 300})
        assert not watched.is_error and json.loads(watched.content[0].text) == {"refunded": 300}  # type: ignore[union-attr]
        order = await client.call_tool("shop___getOrder", {"order_id": "7"})
        assert order.is_error and "does not allow shop___getOrder" in order.content[0].text  # type: ignore[union-attr]
        too_big = await client.call_tool("shop___refund", {"amount": 900})
        assert too_big.is_error

        records = _audit(live, gateway="shop", tool="shop___refund")
        by_outcome = {(r["decision"], r["outcome"]) for r in records}
        assert ("allowed", "ok") in by_outcome and ("denied", "refused") in by_outcome
        (would,) = [r for r in records if r["decision"] == "would_deny"]
        assert would["outcome"] == "ok" and watch["policyId"] in would["error"], would

        # Another department: nothing listed, nothing runs.
        async with _client(url, bob) as other:
            assert (await other.list_tools()).tools == []
            assert (await other.call_tool("shop___refund", {"amount": 5})).is_error

        # UpdatePolicy changes the outcome for the client already connected.
        await _run(
            lambda: control.update_policy(
                policyEngineId=engine_id,
                policyId=permit["policyId"],
                definition={"cedar": {"statement": _permit(gateway_arn, 200)}},
            )
        )
        assert (await client.call_tool("shop___refund", {"amount": 300})).is_error
        assert not (await client.call_tool("shop___refund", {"amount": 150})).is_error
        await _run(
            lambda: control.update_policy(
                policyEngineId=engine_id, policyId=watch["policyId"], enforcementMode="ACTIVE"
            )
        )
        refused = await client.call_tool("shop___refund", {"amount": 150})
        assert refused.is_error and watch["policyId"] in refused.content[0].text  # type: ignore[union-attr]
        assert not (await client.call_tool("shop___refund", {"amount": 50})).is_error

    # What governs the gateway is its configuration, as the admin API shows it.
    shown = httpx2.get(f"{live.base}/admin/v1/gateways/shop", headers=live.admin_headers).json()
    written = {p["id"]: p for p in shown["policies"]}
    assert set(written) == {engine_id, permit["policyId"], watch["policyId"]}
    assert all(
        p["dialect"] == "agentcore" and p["engine"] == engine["policyEngineArn"] for p in written.values()
    )
    got = await _run(lambda: control.get_policy(policyEngineId=engine_id, policyId=permit["policyId"]))
    assert got["definition"]["cedar"]["statement"] == _permit(gateway_arn, 200)

    # An engine in use is not deleted; detached and emptied, it is.
    code, _ = await _run(lambda: _refused(lambda: control.delete_policy_engine(policyEngineId=engine_id)))
    assert code == "ConflictException"
    for policy_id in (permit["policyId"], watch["policyId"]):

        def delete(policy_id: str = policy_id) -> Any:
            return control.delete_policy(policyEngineId=engine_id, policyId=policy_id)

        await _run(delete)
    detached = await _run(
        lambda: control.update_gateway(
            gatewayIdentifier=gateway_id,
            name="shop",
            roleArn=ROLE,
            protocolType="MCP",
            authorizerType="CUSTOM_JWT",
            authorizerConfiguration=gateway["authorizerConfiguration"],
        )
    )
    assert "policyEngineConfiguration" not in detached
    assert (
        httpx2.get(f"{live.base}/admin/v1/gateways/shop", headers=live.admin_headers)
        .json()
        .get("policies", [])
        == []
    )
    async with _client(url, bob) as other:
        assert len((await other.list_tools()).tools) == 2  # no policy: everything is served again
    gone = await _run(lambda: control.delete_policy_engine(policyEngineId=engine_id))
    assert gone["status"] == "DELETING"


async def test_a_log_only_attachment_decides_nothing_and_records_everything(
    live: Served, shop: str, issuer: Issuer
) -> None:
    control = _control(live)
    engine = await _run(lambda: control.create_policy_engine(name="trial_rules"))
    gateway = await _run(
        lambda: control.create_gateway(
            name="trial",
            roleArn=ROLE,
            authorizerType="CUSTOM_JWT",
            authorizerConfiguration={
                "customJWTAuthorizer": {
                    "discoveryUrl": f"{issuer.url}/.well-known/openid-configuration",
                    "allowedAudience": [AUDIENCE],
                }
            },
            policyEngineConfiguration={"arn": engine["policyEngineArn"], "mode": "LOG_ONLY"},
        )
    )
    inline = json.dumps(_document(shop))
    await _run(
        lambda: control.create_gateway_target(
            gatewayIdentifier=gateway["gatewayId"],
            name="shop",
            targetConfiguration={"mcp": {"openApiSchema": {"inlinePayload": inline}}},
        )
    )
    await _run(
        lambda: control.create_policy(
            policyEngineId=engine["policyEngineId"],
            name="small_refunds",
            definition={"cedar": {"statement": _permit(gateway["gatewayArn"], 500)}},
        )
    )
    async with _client(gateway["gatewayUrl"], _token(issuer, "carol", "sales")) as client:
        assert len((await client.list_tools()).tools) == 2  # a LOG_ONLY engine hides nothing
        answer = await client.call_tool("shop___getOrder", {"order_id": "1"})
        assert not answer.is_error
    (record,) = _audit(live, gateway="trial", tool="shop___getOrder")
    assert record["decision"] == "would_deny" and "no policy permits it" in record["error"]


async def test_every_policy_operation_answers_in_the_models_terms(live: Served) -> None:
    """Each served policy operation gets the model's minimal valid request (made up ids): a
    result or one of its own modelled errors, never a 5xx."""
    from botocore import xform_name

    from gateway.agentcore import _policy
    from gateway.agentcore._examples import example_input

    control = _control(live)
    problems = []
    for name in sorted(_policy.CONTROL):
        operation = control.meta.service_model.operation_model(name)
        params = example_input(operation)
        method = getattr(control, xform_name(name))
        try:
            await _run(lambda method=method, params=params: method(**params))  # type: ignore[misc]
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            if status >= 500 or code not in {e.name for e in operation.error_shapes}:
                problems.append((name, code, status, exc.response["Error"].get("Message")))
    assert problems == []


async def test_refusals_say_what_switchboard_does_not_serve(live: Served) -> None:
    control = _control(live)
    engine = await _run(lambda: control.create_policy_engine(name="refusals"))
    engine_id = engine["policyEngineId"]
    cases = [
        (
            lambda: control.create_policy(
                policyEngineId=engine_id,
                name="generated",
                definition={
                    "policyGeneration": {
                        "policyGenerationId": "gen-abcdefghij",
                        "policyGenerationAssetId": "a-abcdefghij",
                    }
                },
            ),
            "policyGeneration",
        ),
        (
            lambda: control.create_policy(
                policyEngineId=engine_id,
                name="wild",
                definition={"cedar": {"statement": "permit(principal, action, resource);" + " " * 10}},
            ),
            "wildcard resource",
        ),
        (
            lambda: control.create_policy(
                policyEngineId=engine_id,
                name="garbled",
                definition={
                    "cedar": {"statement": "permit(principal, action, resource is AgentCore::Gateway"}
                },
            ),
            "does not parse",
        ),
        (lambda: control.create_policy_engine(name="refusals"), "exists"),
        (
            lambda: control.create_gateway(
                name="elsewhere",
                roleArn=ROLE,
                authorizerType="NONE",
                policyEngineConfiguration={
                    "arn": engine["policyEngineArn"].replace(REGION, "eu-west-1"),
                    "mode": "ENFORCE",
                },
            ),
            "region",
        ),
    ]
    for call, words in cases:
        code, message = await _run(lambda call=call: _refused(call))  # type: ignore[misc]
        assert code in ("ValidationException", "ConflictException"), (code, message)
        assert words in message, message
    assert (await _run(lambda: control.list_policies(policyEngineId=engine_id)))["policies"] == []
    plain = await _run(lambda: control.create_gateway(name="plain", roleArn=ROLE, authorizerType="NONE"))
    assert "policyEngineConfiguration" not in plain
    assert "elsewhere" not in [g["name"] for g in (await _run(lambda: control.list_gateways()))["items"]]


async def test_policies_created_at_once_all_govern_the_gateway(tmp_path: Path) -> None:
    """Terraform creates resources in parallel: every ACTIVE policy must reach the gateway."""
    from concurrent.futures import ThreadPoolExecutor

    with serve(tmp_path / "data") as live:
        control = _control(live)
        engine = await _run(lambda: control.create_policy_engine(name="e1"))
        made = await _run(
            lambda: control.create_gateway(
                name="shop",
                roleArn=ROLE,
                protocolType="MCP",
                authorizerType="NONE",
                policyEngineConfiguration={"arn": engine["policyEngineArn"], "mode": "ENFORCE"},
            )
        )
        doc = json.dumps(_document("http://127.0.0.1:9"))
        await _run(
            lambda: control.create_gateway_target(
                gatewayIdentifier=made["gatewayId"],
                name="shop",
                targetConfiguration={"mcp": {"openApiSchema": {"inlinePayload": doc}}},
            )
        )
        arn = made["gatewayArn"]

        def create(i: int) -> str:
            effect = "forbid" if i % 2 else "permit"
            statement = (
                f'{effect}(principal, action == AgentCore::Action::"shop___refund", '
                f'resource == AgentCore::Gateway::"{arn}") when {{ context.input.amount > {i} }};'
            )
            answer = control.create_policy(
                policyEngineId=engine["policyEngineId"],
                name=f"p{i}",
                definition={"cedar": {"statement": statement}},
            )
            return str(answer["policyId"])

        with ThreadPoolExecutor(10) as pool:
            created = set(await _run(lambda: list(pool.map(create, range(10)))))
        spec = httpx2.get(f"{live.base}/admin/v1/gateways/shop", headers=live.admin_headers).json()
        governing = {p["id"] for p in spec["policies"] if isinstance(p, dict)}
        assert created <= governing
