"""specs/path-styles.yaml through the OpenAPI provider: the raw paths a real upstream receives."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.config import OpenApiTarget
from gateway.core.types import CallContext, ToolCall
from gateway.providers.openapi import OpenApiProvider
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio
SPEC = Path(__file__).resolve().parents[2] / "specs" / "path-styles.yaml"
RGB = {"R": 100, "G": 200}
COLORS = ["blue", "black"]

CASES = [
    (
        "simple",
        {"p": "a b", "a": COLORS, "o": RGB, "oe": RGB},
        "/simple/a%20b/blue,black/R,100,G,200/R=100,G=200",
    ),
    ("label", {"p": "x", "a": COLORS, "ae": COLORS, "o": RGB}, "/label/.x.blue,black.blue.black.R=100.G=200"),
    (
        "matrix",
        {"p": 5, "a": COLORS, "ae": COLORS, "o": RGB},
        "/matrix/;p=5;a=blue,black;ae=blue;ae=black;o=R,100,G,200",
    ),
]


async def test_every_path_style_reaches_the_upstream_as_specified() -> None:
    seen: list[str] = []

    async def record(request: Request) -> JSONResponse:
        seen.append(request.scope["raw_path"].decode())
        return JSONResponse({})

    app = Starlette(routes=[Route("/{rest:path}", record)])
    with serve_app(app) as url:
        target = OpenApiTarget.model_validate(
            {"name": "p", "kind": "openapi", "spec": str(SPEC), "base_url": url}
        )
        async with OpenApiProvider(target) as provider:
            assert sorted(t.name for t in await provider.list_tools(CallContext())) == [
                "label",
                "matrix",
                "simple",
            ]
            for tool, args, _ in CASES:
                result = await provider.call_tool(ToolCall(tool, args), CallContext())
                assert not result.is_error, result
    assert seen == [path for _, _, path in CASES]
