"""HTTP functions: each tools/call POSTs the arguments as JSON to the target's URL.

The tool name travels in the ``X-Switchboard-Tool`` header (one URL can serve
several tools). A 2xx JSON body becomes structuredContent; any other status is
an ``isError`` result carrying the status and an excerpt of the body. One
pooled keep-alive client per target.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import ClassVar, Self

import httpx2

from gateway.config import HttpTarget
from gateway.core.errors import ToolNotFound, UpstreamError, UpstreamUnavailable
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, ToolCall, ToolResult, ToolSpec
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
        self._client: httpx2.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(
                self.config.timeout_seconds, connect=min(10.0, self.config.timeout_seconds)
            ),
            follow_redirects=False,
        )
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
            "X-Switchboard-Tool": call.name,
            "X-Switchboard-Gateway": self.gateway,
            "X-Switchboard-Target": self.id,
        }
        try:
            with upstream_url("POST", self.config.url) as traced:
                headers.update(traced.headers)
                async with self._client.stream(
                    "POST", self.config.url, json=call.arguments, headers=headers
                ) as resp:
                    traced.status = status = resp.status_code
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_RESPONSE_BYTES:
                            raise UpstreamError(
                                f"{self.config.url} answered more than {MAX_RESPONSE_BYTES} bytes; "
                                "the result was dropped"
                            )
        except httpx2.TimeoutException:
            raise UpstreamUnavailable(
                f"{self.config.url} did not answer within {self.config.timeout_seconds}s (timeout_seconds)"
            ) from None
        except httpx2.HTTPError as exc:
            raise UpstreamUnavailable(f"cannot reach {self.config.url}: {exc}") from None
        if 200 <= status < 300:
            return from_json_payload(bytes(body))
        excerpt = bytes(body[:EXCERPT]).decode("utf-8", "replace")
        raise UpstreamError(f"{self.config.url} answered HTTP {status}: {excerpt}", status=status)
