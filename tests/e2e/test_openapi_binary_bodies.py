"""Raw binary request bodies through a real `switchboard serve`: an operation whose body is
image/png, application/octet-stream or */* is a tool taking the bytes as base64, and the
upstream (a loopback server this test runs) receives them byte for byte with the right
Content-Type; bad base64 is a tool error and sends nothing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.harness import serve
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio

# Not UTF-8, with NUL, CR/LF and every high byte: text handling anywhere would change it.
PAYLOAD = b"\x89PNG\r\n\x1a\n\x00" + bytes(range(256))

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "uploads", "version": "1"},
    "paths": {
        "/images/{name}": {
            "put": {
                "operationId": "putImage",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                },
                "responses": {"200": {"description": "stored"}},
            }
        },
        "/blobs": {
            "post": {
                "operationId": "postBlob",
                "requestBody": {"required": True, "content": {"*/*": {}}},
                "responses": {"200": {"description": "stored"}},
            }
        },
        "/archives": {
            "post": {
                "operationId": "postArchive",
                "requestBody": {"content": {"application/octet-stream": {}}},
                "responses": {"200": {"description": "stored"}},
            }
        },
    },
}


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[tuple[str, str, str | None, bytes]]]]:
    seen: list[tuple[str, str, str | None, bytes]] = []

    async def record(request: Request) -> JSONResponse:
        body = await request.body()
        seen.append((request.method, request.url.path, request.headers.get("content-type"), body))
        return JSONResponse({"stored": len(body)})

    app = Starlette(routes=[Route("/{path:path}", record, methods=["PUT", "POST"])])
    with serve_app(app) as url:
        yield url, seen


def config(tmp_path: Path, url: str) -> Path:
    spec = tmp_path / "uploads.json"
    spec.write_bytes(orjson.dumps(SPEC))
    path = tmp_path / "switchboard.yaml"
    path.write_text(
        "gateways:\n  - name: default\n    targets:\n"
        f"      - {{name: up, kind: openapi, spec: {spec}, base_url: '{url}'}}\n"
    )
    return path


async def test_raw_binary_bodies_reach_the_upstream_byte_for_byte(
    tmp_path: Path, upstream: tuple[str, list[tuple[str, str, str | None, bytes]]]
) -> None:
    url, seen = upstream
    encoded = base64.b64encode(PAYLOAD).decode()
    with serve(tmp_path / "data", config(tmp_path, url)) as served:
        async with Client(served.mcp, mode="legacy") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"up___putImage", "up___postBlob", "up___postArchive"}  # none left out
            body = tools["up___putImage"].input_schema["properties"]["body"]
            assert body["contentEncoding"] == "base64" and body["contentMediaType"] == "image/png"
            calls = [
                ("up___putImage", {"name": "logo.png", "body": encoded}),
                ("up___postBlob", {"body": encoded, "content_type": "application/pdf"}),
                ("up___postBlob", {"body": encoded}),
                ("up___postArchive", {"body": base64.urlsafe_b64encode(PAYLOAD).decode().rstrip("=")}),
            ]
            for name, args in calls:
                result = await client.call_tool(name, args)
                assert not result.is_error, result.content
                assert result.structured_content == {"stored": len(PAYLOAD)}
    assert seen == [
        ("PUT", "/images/logo.png", "image/png", PAYLOAD),
        ("POST", "/blobs", "application/pdf", PAYLOAD),
        ("POST", "/blobs", "application/octet-stream", PAYLOAD),
        ("POST", "/archives", "application/octet-stream", PAYLOAD),
    ]


async def test_bad_base64_or_a_smuggled_content_type_is_refused_and_nothing_is_sent(
    tmp_path: Path, upstream: tuple[str, list[tuple[str, str, str | None, bytes]]]
) -> None:
    url, seen = upstream
    with serve(tmp_path / "data", config(tmp_path, url)) as served:
        async with Client(served.mcp, mode="legacy") as client:
            bad = await client.call_tool("up___putImage", {"name": "a.png", "body": "iVBORw0K GgoA!AAA"})
            assert bad.is_error
            text = bad.content[0].text  # type: ignore[union-attr]
            assert "argument 'body' is not valid base64 (character '!' at position 12 is not base64)" in text
            smuggled = await client.call_tool(
                "up___postBlob", {"body": "AA==", "content_type": "image/png\r\nX-Injected: 1"}
            )
            assert smuggled.is_error
            assert "content_type" in smuggled.content[0].text  # type: ignore[union-attr]
    assert seen == []
