"""The benchmarks' local REST upstream: GET /items/{id} (specs/items.yaml)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def get_item(request: Request) -> JSONResponse:
    item = int(request.path_params["id"])
    return JSONResponse({"id": item, "name": f"item {item}"})


app = Starlette(routes=[Route("/items/{id:int}", get_item)])
