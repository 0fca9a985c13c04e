"""A scripted OpenAI-compatible model on loopback, for tests of agents that call a model.

Each ``POST /v1/chat/completions`` takes the script's next step: a ``Text`` answer, one or more
``ToolCall``s, or a function of the request that returns one of those (to answer from what the
agent sent back, a tool's result say). A request with ``"stream": true`` gets OpenAI's
server-sent ``chat.completion.chunk`` events (text in pieces, tool calls as deltas, the usage
chunk when ``stream_options.include_usage`` asks for it) and then ``data: [DONE]``; any other
gets one ``chat.completion``. Every request is recorded, in order, as the JSON it carried.

A request the script has no step left for, or that is not JSON, gets a 400 in OpenAI's error
shape (not a 5xx: OpenAI's clients retry those, which would only slow the failing test down).

    with serve_model([ToolCall("calc___add", {"a": 2, "b": 3}), Text("5")]) as model:
        ...  # point the agent at model.url + "/v1"; then look at model.requests
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.servers import serve_app


@dataclass(frozen=True, slots=True)
class Text:
    """An answer in words (finish reason ``stop``)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool (finish reason ``tool_calls``)."""

    name: str
    arguments: dict[str, Any]


Reply = Text | ToolCall | Sequence[ToolCall]
"""What the model says to one request: words, a tool call, or several calls at once."""

Step = Reply | Callable[[dict[str, Any]], Reply]
"""A reply, or a function of the request (its JSON body) that makes one."""


class ScriptedModel:
    """The model's state: the steps not taken yet and the requests received.

    Attributes:
        url: Where it listens (``http://127.0.0.1:PORT``), once served; OpenAI clients take
            ``url + "/v1"`` as their base URL.
        requests: Every chat-completions request's JSON body, in the order they came.
    """

    def __init__(self, script: Iterable[Step], model: str = "scripted") -> None:
        self.model = model
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self._script: deque[Step] = deque(script)
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._complete, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def remaining(self) -> int:
        """How many steps of the script are left."""
        return len(self._script)

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model", "created": 0}]})

    async def _complete(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error("the request body is not JSON")
        if not isinstance(body, dict):
            return _error("the request body is not a JSON object")
        self.requests.append(body)
        if not self._script:
            return _error(f"the script has no reply left for request {len(self.requests)}")
        step = self._script.popleft()
        reply = step(body) if callable(step) else step
        calls = [reply] if isinstance(reply, ToolCall) else [] if isinstance(reply, Text) else list(reply)
        text = reply.text if isinstance(reply, Text) else None
        completion = f"chatcmpl-{next(self._ids)}"
        tool_calls = [
            {
                "id": f"call_{next(self._ids)}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in calls
        ]
        finish = "tool_calls" if tool_calls else "stop"
        usage = _usage(body, text, tool_calls)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = self._chunks(completion, text, tool_calls, finish, usage if include_usage else None)
            return StreamingResponse(_events(chunks), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return JSONResponse(
            {
                "id": completion,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": usage,
            }
        )

    def _chunks(
        self,
        completion: str,
        text: str | None,
        tool_calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, int] | None,
    ) -> Iterator[dict[str, Any]]:
        """The stream OpenAI sends: the role first, text in pieces, each tool call opened with its
        id and name and its arguments in two halves, the finish reason, then the usage alone."""
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": completion,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
            }

        yield chunk({"role": "assistant", "content": ""})
        for piece in re.findall(r"\s*\S+", text or ""):  # (word by word, as models stream)
            yield chunk({"content": piece})
        for index, call in enumerate(tool_calls):
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            name = call["function"]["name"]
            opened = {"index": index, "id": call["id"], "type": "function"}
            yield chunk({"tool_calls": [{**opened, "function": {"name": name, "arguments": ""}}]})
            for part in (arguments[:half], arguments[half:]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        yield chunk({}, finish)
        if usage is not None:
            yield {
                "id": completion,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [],
                "usage": usage,
            }


async def _events(chunks: Iterable[dict[str, Any]]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _usage(body: dict[str, Any], text: str | None, tool_calls: list[dict[str, Any]]) -> dict[str, int]:
    """Made-up but plausible token counts (about four characters a token)."""
    prompt = len(json.dumps(body.get("messages", []))) // 4 + 1
    completion = len(text or "") // 4 + sum(len(c["function"]["arguments"]) // 4 + 1 for c in tool_calls) + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _error(message: str) -> Response:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}},
        status_code=400,
    )


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``role: tool`` messages of a request: the results the agent sends back, in order."""
    return [m for m in request.get("messages", []) if m.get("role") == "tool"]


@contextmanager
def serve_model(script: Iterable[Step], model: str = "scripted") -> Iterator[ScriptedModel]:
    """Serve a ``ScriptedModel`` on 127.0.0.1 (a free port) until the block ends."""
    scripted = ScriptedModel(script, model)
    with serve_app(scripted.app) as url:
        scripted.url = url
        yield scripted
