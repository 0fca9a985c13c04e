"""HTTP functions: each tools/call POSTs the arguments as JSON to the target's URL.

The tool name travels in the ``X-Switchboard-Tool`` header (one URL can serve
several tools). A 2xx JSON body becomes structuredContent; any other status is
an ``isError`` result carrying the status and an excerpt of the body. One
pooled keep-alive client per target (gateway.egress: the same client as
OpenAPI targets, with the target's ``tls`` files; redirects are not followed).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import ClassVar, Self

import orjson

from gateway.config import HttpTarget
from gateway.core.errors import ToolExecutionError, ToolNotFound, UpstreamError, UpstreamUnavailable
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, ToolCall, ToolResult, ToolSpec
from gateway.egress import HttpClient, reach
from gateway.providers._results import from_json_payload, tool_specs
from gateway.telemetry import upstream_url

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
EXCERPT = 500


class HttpFunctionProvider(ToolProvider):
    """Serves a ``kind: http`` target."""

    kind: ClassVar[str] = "http"

    def __init__(self, config: HttpTarget, *, gateway: str = "default") -> None:
        super().__init__(config.name)
        self.config = config
        self.gateway = gateway
        self.tools = tool_specs(config.tools)
        self._client: HttpClient | None = None

    async def __aenter__(self) -> Self:
        client = HttpClient(
            self.config.url,
            tls=self.config.tls,
            field=f"targets.{self.id}.tls",
            reach=reach(self.egress_allow),
        )
        await client.open()
        self._client = client
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return list(self.tools.values())

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        if call.name not in self.tools:
            raise ToolNotFound(call.public_name or call.name)
        if self._client is None:
            raise UpstreamUnavailable(f"target {self.id!r} is not open")
        headers = {
            **ctx.headers,
            **self.config.headers,
            "Content-Type": "application/json",
            "X-Switchboard-Tool": call.name,
            "X-Switchboard-Gateway": self.gateway,
            "X-Switchboard-Target": self.id,
        }
        timeout = self.config.timeout_seconds
        try:
            with upstream_url("POST", self.config.url) as traced:
                headers.update(traced.headers)
                answer = await self._client.request(
                    "POST",
                    self.config.url,
                    list(headers.items()),
                    orjson.dumps(call.arguments),
                    connect_seconds=min(10.0, timeout),
                    deadline_seconds=timeout,
                    limit=MAX_RESPONSE_BYTES,
                )
                traced.status = status = answer.status
        except UpstreamUnavailable as exc:  # its deadline is the target's timeout_seconds
            raise UpstreamUnavailable(f"cannot reach {self.config.url}: {exc.message}") from None
        except ToolExecutionError as exc:  # a header the target or an interceptor set cannot be sent
            raise ToolExecutionError(f"{self.config.url}: {exc.message}") from None
        if answer.truncated:
            raise UpstreamError(
                f"{self.config.url} answered more than {MAX_RESPONSE_BYTES} bytes; the result was dropped"
            )
        if 200 <= status < 300:
            return from_json_payload(answer.body)
        excerpt = answer.body[:EXCERPT].decode("utf-8", "replace")
        raise UpstreamError(f"{self.config.url} answered HTTP {status}: {excerpt}", status=status)
