from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway.config import HttpTarget, ToolDef
from gateway.core.errors import UpstreamError, UpstreamUnavailable
from gateway.core.types import CallContext, ToolCall
from gateway.providers.http_function import HttpFunctionProvider
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio

seen: list[dict[str, object]] = []


async def fn(request: Request) -> Response:
    args = await request.json()
    seen.append(
        {"args": args, "tool": request.headers.get("x-switchboard-tool"), "key": request.headers.get("x-key")}
    )
    if args.get("fail"):
        return PlainTextResponse("database is locked", 503)
    if args.get("text"):
        return PlainTextResponse("plain words")
    return JSONResponse({"sum": args["a"] + args["b"]})


@pytest.fixture
def url() -> Iterator[str]:
    with serve_app(Starlette(routes=[Route("/fn", fn, methods=["POST"])])) as base:
        yield f"{base}/fn"


def target(url: str) -> HttpTarget:
    return HttpTarget(name="h", kind="http", url=url, headers={"X-Key": "k1"}, tools=[ToolDef(name="add")])


async def test_posts_arguments_as_json(url: str) -> None:
    async with HttpFunctionProvider(target(url)) as p:
        r = await p.call_tool(ToolCall("add", {"a": 2, "b": 3}), CallContext())
    assert r.structured == {"sum": 5} and not r.is_error
    assert seen[-1] == {"args": {"a": 2, "b": 3}, "tool": "add", "key": "k1"}


async def test_text_body_is_text(url: str) -> None:
    async with HttpFunctionProvider(target(url)) as p:
        r = await p.call_tool(ToolCall("add", {"text": True}), CallContext())
    assert r.content[0]["text"] == "plain words" and r.structured is None


async def test_error_status_carries_status_and_excerpt(url: str) -> None:
    async with HttpFunctionProvider(target(url)) as p:
        with pytest.raises(UpstreamError, match="HTTP 503: database is locked"):
            await p.call_tool(ToolCall("add", {"fail": True}), CallContext())


async def test_unreachable_is_upstream_unavailable() -> None:
    async with HttpFunctionProvider(target("http://127.0.0.1:9/fn")) as p:
        with pytest.raises(UpstreamUnavailable, match="cannot reach"):
            await p.call_tool(ToolCall("add", {}), CallContext())
