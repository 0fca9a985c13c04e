"""AWS Lambda functions as tools, the way AgentCore Gateway invokes them.

The event is the bare tool arguments. The tool name and the gateway and
target ids travel in the Lambda client context (``custom``), under the same
keys AgentCore Gateway uses, so a function written for AgentCore runs
unchanged:: ``bedrockAgentCoreToolName`` (``{target}___{tool}``),
``bedrockAgentCoreGatewayId``, ``bedrockAgentCoreTargetId``,
``bedrockAgentCoreMessageVersion``, ``bedrockAgentCoreMcpMessageId``.

boto3 is synchronous, so invocations run in worker threads; one client per
target is created on open and reused (botocore pools its connections).
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

import anyio
import orjson

from gateway.config import LambdaTarget
from gateway.core.errors import ToolNotFound, UpstreamError, UpstreamUnavailable
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, ToolCall, ToolResult, ToolSpec
from gateway.providers._results import from_json_payload, tool_specs

MAX_CLIENT_CONTEXT = 3583  # Lambda's limit on the base64 ClientContext


class LambdaProvider(ToolProvider):
    """Serves a ``kind: lambda`` target."""

    kind: ClassVar[str] = "lambda"

    def __init__(self, config: LambdaTarget, *, gateway: str = "default") -> None:
        super().__init__(config.name)
        self.config = config
        self.gateway = gateway
        self.tools = tool_specs(config.tools)
        self._client: Any = None

    async def __aenter__(self) -> Self:
        self._client = await anyio.to_thread.run_sync(self._make_client)
        return self

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        timeout = self.config.timeout_seconds
        return boto3.client(
            "lambda",
            region_name=self.config.region,
            endpoint_url=self.config.endpoint_url,
            config=Config(
                read_timeout=timeout, connect_timeout=min(10.0, timeout), retries={"max_attempts": 0}
            ),
        )

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return list(self.tools.values())

    def client_context(self, call: ToolCall, ctx: CallContext) -> str:
        custom = {
            "bedrockAgentCoreToolName": call.public_name or f"{self.id}___{call.name}",
            "bedrockAgentCoreGatewayId": self.gateway,
            "bedrockAgentCoreTargetId": self.id,
            "bedrockAgentCoreMessageVersion": "1.0",
            "bedrockAgentCoreMcpMessageId": str(
                ctx.request_id if ctx.request_id is not None else uuid.uuid4()
            ),
        }
        encoded = base64.b64encode(orjson.dumps({"custom": custom})).decode()
        return encoded if len(encoded) <= MAX_CLIENT_CONTEXT else ""

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        if call.name not in self.tools:
            raise ToolNotFound(call.public_name or call.name)
        if self._client is None:
            raise UpstreamUnavailable(f"target {self.id!r} is not open")
        params: dict[str, Any] = {
            "FunctionName": self.config.function_name,
            "InvocationType": "RequestResponse",
            "Payload": orjson.dumps(call.arguments),
        }
        client_context = self.client_context(call, ctx)
        if client_context:
            params["ClientContext"] = client_context
        if self.config.qualifier:
            params["Qualifier"] = self.config.qualifier
        response = await anyio.to_thread.run_sync(
            functools.partial(self._invoke, params), abandon_on_cancel=True
        )
        payload: bytes = response["Payload"].read()
        if response.get("FunctionError"):
            return from_json_payload(payload, is_error=True)
        return from_json_payload(payload)

    def _invoke(self, params: dict[str, Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self.config.function_name
        try:
            return self._client.invoke(**params)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise UpstreamError(
                f"Lambda {name!r} refused the call: {err.get('Code', 'error')}: {err.get('Message', '')}",
                status=status,
            ) from None
        except BotoCoreError as exc:
            raise UpstreamUnavailable(f"cannot invoke Lambda {name!r}: {exc}") from None
