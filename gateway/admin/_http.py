"""What every admin API handler shares: error answers and reading a request's JSON body."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.config import validate
from gateway.core.errors import ConfigError, ConfigIssue

MAX_BODY_BYTES = 1024 * 1024
M = TypeVar("M")


def error(status: int, message: str, issues: list[ConfigIssue] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if issues:
        body["issues"] = [{"location": i.location, "message": i.message} for i in issues]
    headers = {"WWW-Authenticate": 'Bearer realm="switchboard-admin"'} if status == 401 else None
    return JSONResponse(body, status, headers=headers)


class TooLarge(Exception):
    """The request body is over MAX_BODY_BYTES."""


async def json_body(request: Request, *, empty: Any = None) -> Any:
    """The request's JSON body; ``empty`` when there is none and that is allowed (not None)."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise TooLarge
    if not raw and empty is not None:
        return empty
    if not raw:
        raise ConfigError(
            [ConfigIssue("the request body is empty; send a JSON object", source="request body")]
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError([ConfigIssue(f"not valid JSON: {exc}", source="request body")]) from None


async def body_as(request: Request, model: type[M], *, optional: bool = False) -> M:
    """The request's JSON body as ``model`` (ConfigError naming each field that is wrong);
    ``optional``: no body at all is the model's defaults."""
    data = await json_body(request, empty={} if optional else None)
    return validate(model, data, source="request body", schema_hint="GET /admin/openapi.json")
