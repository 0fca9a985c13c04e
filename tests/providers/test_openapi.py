"""The OpenAPI provider against a real loopback HTTP upstream that records what reached it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.config import OpenApiTarget
from gateway.core.errors import ConfigError, ToolExecutionError, UpstreamUnavailable
from gateway.core.types import CallContext, ToolCall
from gateway.providers.openapi import OpenApiProvider
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "servers": [{"url": "https://example.invalid/api"}],
    "security": [{"key": []}],
    "paths": {
        "/files/{name}": {
            "get": {
                "operationId": "getFile",
                "tags": ["files"],
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "ok"}},
            },
            "delete": {
                "operationId": "deleteFile",
                "tags": ["admin"],
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"204": {"description": "gone"}},
            },
        },
        "/flaky": {
            "get": {"operationId": "flakyGet", "responses": {"200": {"description": "ok"}}},
            "post": {"operationId": "flakyPost", "responses": {"200": {"description": "ok"}}},
        },
        "/big": {"get": {"operationId": "big", "responses": {"200": {"description": "ok"}}}},
        "/fail": {"get": {"operationId": "fail", "responses": {"200": {"description": "ok"}}}},
        "/image": {
            "get": {"operationId": "image", "security": [], "responses": {"200": {"description": "ok"}}}
        },
        "/search": {
            "get": {
                "operationId": "search",
                "parameters": [
                    {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "tenant", "in": "query", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "ok"}},
            }
        },
    },
    "components": {"securitySchemes": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}}},
}

seen: list[dict[str, Any]] = []
flaky_calls = {"n": 0}


async def record(request: Request) -> Response:
    seen.append(
        {
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "method": request.method,
            "headers": dict(request.headers),
        }
    )
    path = request.url.path
    if path.startswith("/api/flaky"):
        flaky_calls["n"] += 1
        if flaky_calls["n"] % 2:
            return PlainTextResponse("try later", 503)
        return JSONResponse({"ok": True})
    if path == "/api/big":
        return PlainTextResponse("x" * 5000)
    if path == "/api/fail":
        return JSONResponse({"message": "Not Found", "detail": "no such thing"}, 404)
    if path == "/api/image":
        return Response(b"\x89PNG\r\n", media_type="image/png")
    return JSONResponse({"path": request.url.path, "items": [1, 2]})


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TEST_KEY", "s3cret")
    seen.clear()
    flaky_calls["n"] = 0
    app = Starlette(routes=[Route("/{rest:path}", record, methods=["GET", "POST", "DELETE"])])
    with serve_app(app) as url:
        yield url


def target(url: str, **kwargs: Any) -> OpenApiTarget:
    return OpenApiTarget.model_validate(
        {
            "name": "api",
            "kind": "openapi",
            "spec": SPEC,
            "base_url": f"{url}/api",
            "credentials": {"key": {"env": "TEST_KEY"}},
            "max_response_bytes": 1024,
            **kwargs,
        }
    )


async def test_encoded_path_reaches_the_upstream_unchanged(upstream: str) -> None:
    async with OpenApiProvider(target(upstream)) as p:
        result = await p.call_tool(ToolCall("getFile", {"name": "../../etc/passwd"}), CallContext())
        await p.call_tool(ToolCall("getFile", {"name": ".."}), CallContext())
    assert result.structured == {"path": "/api/files/../../etc/passwd", "items": [1, 2]}
    assert seen[0]["raw_path"] == "/api/files/..%2F..%2Fetc%2Fpasswd"
    assert seen[1]["raw_path"] == "/api/files/%2E%2E"
    assert seen[0]["query"] == "api_key=s3cret"  # the apiKey scheme says: in query


async def test_retries_only_idempotent_operations(upstream: str) -> None:
    async with OpenApiProvider(target(upstream)) as p:
        ok = await p.call_tool(ToolCall("flakyGet", {}), CallContext())
        assert ok.structured == {"ok": True} and flaky_calls["n"] == 2
        failed = await p.call_tool(ToolCall("flakyPost", {}), CallContext())
    assert failed.is_error and "HTTP 503" in failed.content[0]["text"]
    assert flaky_calls["n"] == 3  # the POST went out once


async def test_responses_errors_truncation_and_binary(upstream: str) -> None:
    async with OpenApiProvider(target(upstream)) as p:
        big = await p.call_tool(ToolCall("big", {}), CallContext())
        fail = await p.call_tool(ToolCall("fail", {}), CallContext())
        image = await p.call_tool(ToolCall("image", {}), CallContext())
    assert big.content[0]["text"].endswith("[truncated: the response was larger than 1024 bytes]")
    assert fail.is_error and fail.content[0]["text"].startswith("HTTP 404 Not Found: {")
    assert image.content[0]["type"] == "resource" and image.content[0]["resource"]["mimeType"] == "image/png"
    assert "api_key" not in seen[-1]["query"]  # security: [] means no credential


async def test_secrets_never_appear_in_errors(upstream: str) -> None:
    async with OpenApiProvider(target(upstream)) as p:
        fail = await p.call_tool(ToolCall("fail", {}), CallContext())
    assert "s3cret" not in repr(fail)


async def test_missing_secret_is_a_config_error_naming_the_variable(upstream: str) -> None:
    bad = target(upstream, credentials={"key": {"env": "NOT_SET_ANYWHERE"}})
    with pytest.raises(ConfigError, match="environment variable NOT_SET_ANYWHERE is not set"):
        async with OpenApiProvider(bad):
            pass


async def test_operation_without_credentials_is_refused_clearly(upstream: str) -> None:
    async with OpenApiProvider(target(upstream, credentials={})) as p:
        with pytest.raises(ToolExecutionError, match="needs credentials \\(key\\)"):
            await p.call_tool(ToolCall("fail", {}), CallContext())


async def test_include_and_exclude_by_tag_and_path(upstream: str) -> None:
    async with OpenApiProvider(
        target(upstream, include_tags=["files", "admin"], exclude_paths=["DELETE /files/*"])
    ) as p:
        names = [t.name for t in await p.list_tools(CallContext())]
    assert names == ["getFile"]


async def test_unreachable_upstream(upstream: str) -> None:
    async with OpenApiProvider(target("http://127.0.0.1:9", retries=0)) as p:
        with pytest.raises(UpstreamUnavailable, match="failed after 1 attempt"):
            await p.call_tool(ToolCall("image", {}), CallContext())
