"""Scripted Anthropic Messages and Bedrock Converse models on loopback, in the manner of
`tests.support.model_server` (the OpenAI-compatible one), for tests of clients that ask a model.

Each request takes the script's next step: a ``Text`` answer, a ``Failure`` (an HTTP error in the
provider's own shape), or a function of the request that returns one of those. A function runs in
a worker thread, so it may block (on a ``threading.Event``, say, to play a model that does not
answer) without stopping the server. Every request is recorded, in order: its JSON in
``requests`` and its headers (lower-cased names) in ``headers``.

- ``serve_anthropic``: ``POST /v1/messages``; answers a ``message`` with one text block, or
  ``{"type": "error", "error": {"type", "message"}}``.
- ``serve_openai``: `tests.support.model_server`'s model, its headers recorded too; its ``url``
  ends in ``/v1`` (the base URL OpenAI clients take).
- ``serve_bedrock``: ``POST /model/{modelId}/converse`` on botocore's REST-JSON wire; each request
  is recorded as the parameters boto3's ``converse`` was called with (``modelId`` from the path,
  the rest from the body); errors are ``{"message"}`` with the ``x-amzn-ErrorType`` header.

A request the script has no step left for gets a 400 (not a 5xx, which clients retry).

    with serve_anthropic([Text('{"facts": []}')]) as model:
        ...  # point the client at model.url; then look at model.requests and model.headers
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.model_server import ScriptedModel, Text
from tests.support.model_server import Step as OpenAIStep
from tests.support.servers import serve_app

__all__ = [
    "Failure",
    "OpenAIPeer",
    "ScriptedPeer",
    "Text",
    "record_headers",
    "serve_anthropic",
    "serve_bedrock",
    "serve_openai",
]


@dataclass(frozen=True, slots=True)
class Failure:
    """An error answer: its HTTP status, the provider's message, and its error type (Anthropic's
    ``error.type``, Bedrock's ``x-amzn-ErrorType``; a default by status when empty)."""

    status: int
    message: str
    type: str = ""


Reply = Text | Failure
Step = Reply | Callable[[dict[str, Any]], Reply]
"""A reply, or a function of the request (as recorded) that makes one, run in a worker thread."""


def record_headers(app: ASGIApp, into: list[dict[str, str]]) -> ASGIApp:
    """``app``, appending each HTTP request's headers (lower-cased names) to ``into`` first; wraps
    `tests.support.model_server.ScriptedModel.app` too, which records bodies only."""

    async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            into.append({k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]})
        await app(scope, receive, send)

    return recorded


class ScriptedPeer:
    """A scripted model's state: the steps not taken yet, and the requests received.

    Attributes:
        url: Where it listens (``http://127.0.0.1:PORT``), once served.
        requests: Every request, in order, as its JSON (Bedrock: as ``converse``'s parameters).
        headers: Every request's headers, in the same order.
    """

    def __init__(self, script: Iterable[Step]) -> None:
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._script: deque[Step] = deque(script)
        self._ids = itertools.count(1)

    @property
    def remaining(self) -> int:
        """How many steps of the script are left."""
        return len(self._script)

    async def _reply(self, request: dict[str, Any]) -> Reply | None:
        """The next step's reply to ``request`` (recorded first), or None when the script is done."""
        self.requests.append(request)
        if not self._script:
            return None
        step = self._script.popleft()
        if isinstance(step, Text | Failure):
            return step
        return await anyio.to_thread.run_sync(step, request, abandon_on_cancel=True)


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class _Anthropic(ScriptedPeer):
    _TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
              404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}  # fmt: skip

    def app(self) -> ASGIApp:
        routes = [Route("/v1/messages", self._messages, methods=["POST"])]
        return record_headers(Starlette(routes=routes), self.headers)

    async def _messages(self, request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return self._error(Failure(400, "the request body is not a JSON object"))
        reply = await self._reply(body)
        if reply is None:
            return self._error(Failure(400, f"the script has no reply left for request {len(self.requests)}"))
        if isinstance(reply, Failure):
            return self._error(reply)
        return JSONResponse(
            {
                "id": f"msg_{next(self._ids):04d}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "scripted"),
                "content": [{"type": "text", "text": reply.text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": len(json.dumps(body)) // 4 + 1,
                    "output_tokens": len(reply.text) // 4 + 1,
                },
            }
        )

    def _error(self, failure: Failure) -> Response:
        kind = failure.type or self._TYPES.get(failure.status, "api_error")
        error = {"type": "error", "error": {"type": kind, "message": failure.message}}
        return JSONResponse(error, status_code=failure.status)


class _Bedrock(ScriptedPeer):
    _TYPES = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
              408: "ModelTimeoutException", 429: "ThrottlingException", 500: "InternalServerException",
              503: "ServiceUnavailableException"}  # fmt: skip

    def app(self) -> ASGIApp:
        routes = [Route("/model/{model_id:path}/converse", self._converse, methods=["POST"])]
        return record_headers(Starlette(routes=routes), self.headers)

    async def _converse(self, request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return self._error(Failure(400, "the request body is not a JSON object"))
        reply = await self._reply({"modelId": request.path_params["model_id"], **body})
        if reply is None:
            return self._error(Failure(400, f"the script has no reply left for request {len(self.requests)}"))
        if isinstance(reply, Failure):
            return self._error(reply)
        tokens_in, tokens_out = len(json.dumps(body)) // 4 + 1, len(reply.text) // 4 + 1
        return JSONResponse(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": reply.text}]}},
                "stopReason": "end_turn",
                "usage": {
                    "inputTokens": tokens_in,
                    "outputTokens": tokens_out,
                    "totalTokens": tokens_in + tokens_out,
                },
                "metrics": {"latencyMs": 1},
            }
        )

    def _error(self, failure: Failure) -> Response:
        kind = failure.type or self._TYPES.get(failure.status, "InternalServerException")
        return JSONResponse(
            {"message": failure.message}, status_code=failure.status, headers={"x-amzn-ErrorType": kind}
        )


@contextmanager
def serve_anthropic(script: Iterable[Step]) -> Iterator[ScriptedPeer]:
    """Serve a scripted Anthropic Messages API on 127.0.0.1 (a free port) until the block ends;
    its ``url`` is the client's base URL (``/v1/messages`` is under it)."""
    peer = _Anthropic(script)
    with serve_app(peer.app()) as url:
        peer.url = url
        yield peer


@contextmanager
def serve_bedrock(script: Iterable[Step]) -> Iterator[ScriptedPeer]:
    """Serve a scripted Bedrock Converse API on 127.0.0.1 (a free port) until the block ends; its
    ``url`` is boto3's ``endpoint_url``."""
    peer = _Bedrock(script)
    with serve_app(peer.app()) as url:
        peer.url = url
        yield peer


@dataclass(frozen=True, slots=True)
class OpenAIPeer:
    """The scripted OpenAI-compatible model as the other two look: its base URL (``/v1``
    included), the requests' JSON and their headers."""

    url: str
    requests: list[dict[str, Any]]
    headers: list[dict[str, str]]
    model: ScriptedModel


@contextmanager
def serve_openai(script: Iterable[OpenAIStep], model: str = "scripted") -> Iterator[OpenAIPeer]:
    """Serve `tests.support.model_server`'s ``ScriptedModel`` on 127.0.0.1, its headers recorded,
    until the block ends."""
    scripted, headers = ScriptedModel(script, model), list[dict[str, str]]()
    with serve_app(record_headers(scripted.app, headers)) as url:
        scripted.url = url
        yield OpenAIPeer(url + "/v1", scripted.requests, headers, scripted)
