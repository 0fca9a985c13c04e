"""A loopback peer speaking the AWS Lambda Invoke API (2015-03-31), running Python handlers.

AWS is not reachable from tests; this serves the same wire protocol boto3
speaks (path, headers, error shapes), so the provider's real boto3 client is
exercised end to end.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[Any, dict[str, Any]], Any]


@dataclass
class LambdaApi:
    functions: dict[str, Handler]
    invocations: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/2015-03-31/functions/{name}/invocations", self.invoke, methods=["POST"])]
        )

    async def invoke(self, request: Request) -> Response:
        name = request.path_params["name"]
        handler = self.functions.get(name.rsplit(":", 1)[-1])
        if handler is None:
            body = {"Type": "User", "message": f"Function not found: {name}"}
            return Response(
                json.dumps(body),
                404,
                headers={"x-amzn-ErrorType": "ResourceNotFoundException"},
                media_type="application/json",
            )
        raw_context = request.headers.get("x-amz-client-context")
        context = json.loads(base64.b64decode(raw_context)) if raw_context else {}
        event = json.loads(await request.body() or b"null")
        self.invocations.append(
            {
                "name": name,
                "qualifier": request.query_params.get("Qualifier"),
                "event": event,
                "context": context,
            }
        )
        try:
            result = handler(event, context)
        except Exception as exc:  # noqa: BLE001 - the Lambda runtime's own boundary
            payload = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            return Response(json.dumps(payload), 200, headers={"X-Amz-Function-Error": "Unhandled"})
        return Response(json.dumps(result), 200, headers={"X-Amz-Executed-Version": "$LATEST"})
