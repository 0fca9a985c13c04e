"""AgentCore's gateway and target configurations, read into Switchboard's own (ADR 0031)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.agentcore._call import AwsError
from gateway.agentcore._gateways import API_KEY_SCHEME, _gateway_spec, _target, page
from gateway.config import JwtAuth, LambdaTarget, McpTarget, NoAuth, OpenApiTarget

pytestmark = pytest.mark.anyio

ARN = "arn:aws:acps:us-west-2:123456789012:token-vault/default/apikeycredentialprovider/pets-key"
DOC = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {"/x": {"get": {"responses": {}}}},
}


def _api_key(**provider: Any) -> dict[str, Any]:
    return {
        "credentialProviderType": "API_KEY",
        "credentialProvider": {"apiKeyCredentialProvider": {"providerArn": ARN, **provider}},
    }


def _openapi(*configs: dict[str, Any]) -> dict[str, Any]:
    return {
        "targetConfiguration": {"mcp": {"openApiSchema": {"inlinePayload": json.dumps(DOC)}}},
        "credentialProviderConfigurations": list(configs),
    }


async def test_an_api_key_in_a_header_becomes_the_documents_only_security_scheme() -> None:
    target, providers = await _target(
        _openapi(_api_key(credentialParameterName="x-api-key", credentialLocation="HEADER")), "pets"
    )
    assert isinstance(target, OpenApiTarget) and isinstance(target.spec, dict)
    assert target.spec["components"]["securitySchemes"][API_KEY_SCHEME] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    assert target.spec["security"] == [{API_KEY_SCHEME: []}]
    assert target.credentials[API_KEY_SCHEME].provider == "pets-key"
    assert [(p.name, p.vault) for p in providers] == [("pets-key", "tenant")]


async def test_a_bearer_prefix_in_authorization_is_a_bearer_scheme_and_a_query_key_stays_in_the_query() -> (
    None
):
    bearer, _ = await _target(_openapi(_api_key(credentialPrefix="Bearer")), "t")
    assert isinstance(bearer, OpenApiTarget) and isinstance(bearer.spec, dict)
    assert bearer.spec["components"]["securitySchemes"][API_KEY_SCHEME] == {
        "type": "http",
        "scheme": "bearer",
    }
    query, _ = await _target(
        _openapi(_api_key(credentialParameterName="key", credentialLocation="QUERY_PARAMETER")), "t"
    )
    assert isinstance(query, OpenApiTarget) and isinstance(query.spec, dict)
    assert query.spec["components"]["securitySchemes"][API_KEY_SCHEME]["in"] == "query"


async def test_an_mcp_server_and_a_lambda_become_targets_of_those_kinds() -> None:
    server, _ = await _target(
        {"targetConfiguration": {"mcp": {"mcpServer": {"endpoint": "https://mcp.example.com/mcp"}}}}, "m"
    )
    assert isinstance(server, McpTarget) and server.url == "https://mcp.example.com/mcp"
    tool = {"name": "add", "description": "adds", "inputSchema": {"type": "object", "properties": {}}}
    fn = {
        "lambdaArn": "arn:aws:lambda:us-west-2:123456789012:function:add",
        "toolSchema": {"inlinePayload": [tool]},
    }
    made, _ = await _target({"targetConfiguration": {"mcp": {"lambda": fn}}}, "l")
    assert isinstance(made, LambdaTarget) and made.function_name == fn["lambdaArn"]
    assert [(t.name, t.description) for t in made.tools] == [("add", "adds")]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"targetConfiguration": {"http": {}}}, "targetConfiguration.mcp"),
        ({"targetConfiguration": {"mcp": {"openApiSchema": {"s3": {}}}}}, "inlinePayload or s3.uri"),
        ({"targetConfiguration": {"mcp": {"smithyModel": {"inlinePayload": "{}"}}}}, "smithyModel"),
        (
            {**_openapi(), "credentialProviderConfigurations": [{"credentialProviderType": "OAUTH"}]},
            "OAUTH",
        ),
        (_openapi(_api_key(credentialPrefix="Token")), "credentialPrefix"),
        (
            {"targetConfiguration": {"mcp": {"openApiSchema": {"inlinePayload": "[1, 2"}}}},
            "inlinePayload",
        ),
    ],
)
async def test_what_switchboard_cannot_serve_is_refused_by_name(params: dict[str, Any], says: str) -> None:
    with pytest.raises(AwsError) as refused:
        await _target(params, "t")
    assert refused.value.code == "ValidationException" and says in refused.value.message


def _yaml(text: str) -> dict[str, Any]:
    return {"targetConfiguration": {"mcp": {"openApiSchema": {"inlinePayload": text}}}}


async def test_a_yaml_document_whose_aliases_would_expand_it_is_refused_unexpanded() -> None:
    lines = [
        "openapi: 3.0.3",
        "info: {title: t, version: '1'}",
        "paths: {}",
        "x-0: &a0 [lol, lol, lol, lol, lol]",
    ]
    lines += [
        f"x-{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
        for i in range(1, 12)
    ]
    with pytest.raises(AwsError, match="expands to more than"):
        await _target(_yaml("\n".join(lines)), "t")


async def test_odd_yaml_values_and_shapes_are_refusals_not_failures() -> None:
    dated = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nx-when: 2024-01-01\npaths: {}\ncomponents: []\n"
    with pytest.raises(AwsError, match="securitySchemes"):
        await _target({**_yaml(dated), "credentialProviderConfigurations": [_api_key()]}, "t")
    deep = "a: " + "[" * 5000 + "]" * 5000
    with pytest.raises(AwsError) as refused:
        await _target(_yaml(deep), "t")
    assert refused.value.code == "ValidationException"
    with pytest.raises(AwsError, match="larger than"):
        await _target(_yaml("x" * (3 * 1024 * 1024)), "t")


def test_authorizers_map_to_gateway_auth_and_iam_is_refused() -> None:
    base = {"name": "g", "roleArn": "arn:aws:iam::123456789012:role/r"}
    assert isinstance(_gateway_spec({**base, "authorizerType": "NONE"}, None).auth, NoAuth)
    jwt = {
        "discoveryUrl": "https://idp.example.com/.well-known/openid-configuration",
        "allowedAudience": ["a"],
    }
    spec = _gateway_spec(
        {**base, "authorizerType": "CUSTOM_JWT", "authorizerConfiguration": {"customJWTAuthorizer": jwt}},
        None,
    )
    assert isinstance(spec.auth, JwtAuth) and spec.auth.audiences == ["a"]
    with pytest.raises(AwsError, match="AWS_IAM"):
        _gateway_spec({**base, "authorizerType": "AWS_IAM"}, None)
    with pytest.raises(AwsError, match="name"):
        _gateway_spec({**base, "name": "n" * 80, "authorizerType": "NONE"}, None)


def test_pages_follow_each_other_and_a_forged_token_is_refused() -> None:
    items = [{"name": f"g{i:02d}"} for i in range(5)]
    first, token = page(items, {"maxResults": 2})
    second, token2 = page(items, {"maxResults": 2, "nextToken": token})
    last, end = page(items, {"maxResults": 2, "nextToken": token2})
    assert [i["name"] for i in first + second + last] == [f"g{i:02d}" for i in range(5)] and end is None
    with pytest.raises(AwsError, match="nextToken"):
        page(items, {"nextToken": "not-ours"})


async def test_a_document_in_s3_is_the_operators_to_name() -> None:
    s3 = {"targetConfiguration": {"mcp": {"openApiSchema": {"s3": {"uri": "s3://b/k"}}}}}
    with pytest.raises(AwsError) as refused:
        await _target(s3, "t", "acme")
    assert (
        refused.value.code == "AccessDeniedException" and "send the document inline" in refused.value.message
    )


async def test_an_api_key_on_a_target_that_cannot_carry_it_is_refused_not_dropped() -> None:
    server = {"mcp": {"mcpServer": {"endpoint": "https://mcp.example.com/mcp"}}}
    with pytest.raises(AwsError, match="API_KEY is served"):
        await _target({"targetConfiguration": server, "credentialProviderConfigurations": [_api_key()]}, "m")
