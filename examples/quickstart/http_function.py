"""A tiny HTTP function for the quickstart: POST JSON arguments, get JSON back.

Run it with ``python -m examples.quickstart.http_function [PORT]`` (default 8081);
``make serve`` starts it next to the gateway.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def convert(request: Request) -> JSONResponse:
    args = await request.json()
    try:
        celsius = float(args["celsius"])
    except (KeyError, TypeError, ValueError):
        return JSONResponse({"error": "send {'celsius': <number>}"}, 400)
    return JSONResponse({"celsius": celsius, "fahrenheit": round(celsius * 9 / 5 + 32, 2)})


app = Starlette(routes=[Route("/convert", convert, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8081, log_level="warning"
    )
