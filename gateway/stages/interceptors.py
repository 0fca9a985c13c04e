"""Interceptors: code of the operator's that sees each call before and after the upstream.

A gateway's `interceptors` run in order. A **request** interceptor gets

    {"phase": "request", "gateway", "tool", "arguments", "principal": {tenant, subject, client, scopes}}

and answers ``{"action": "continue"}`` (optionally with new ``"arguments"``, and
``"headers"`` to send to the upstream: OpenAPI and HTTP targets add them) or
``{"action": "refuse", "message": "..."}``. A **response** interceptor gets the same
envelope with ``"phase": "response"`` and ``"result": {"content", "structuredContent"?,
"isError"}`` and answers ``{"action": "continue"}``, optionally with a new ``"result"``.

An interceptor is a Python callable (sync or async, ``module:function``), an HTTP endpoint
(the envelope POSTed as JSON, the answer read as JSON), or an AWS Lambda function (the
envelope as the payload). ``redact`` is built in: it masks common secrets (cloud and SaaS
keys, tokens, private keys, JWTs) and PII (e-mail addresses, card numbers, US SSNs) in
results. An interceptor that fails or answers nonsense fails the call closed, saying so.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import orjson

from gateway.config import TlsFiles
from gateway.core.errors import ToolExecutionError
from gateway.core.redaction import redact, redact_text  # noqa: F401 - redact_text is public here too
from gateway.core.types import JSON, CallContext, CallNext, ToolCall, ToolResult
from gateway.egress import HttpClient, Reach, reach, tls_context
from gateway.telemetry import upstream_url

Invoke = Callable[[JSON], Awaitable[JSON]]


async def builtin_redact(envelope: JSON) -> JSON:
    if envelope.get("phase") != "response":
        return {"action": "continue"}
    return {"action": "continue", "result": redact(envelope["result"])}


def python_interceptor(target: Callable[..., Any]) -> Invoke:
    async def invoke(envelope: JSON) -> JSON:
        if inspect.iscoroutinefunction(target):
            answer = await target(envelope)
        else:
            answer = await anyio.to_thread.run_sync(target, envelope)
        return answer if isinstance(answer, dict) else {"action": "continue"}

    return invoke


MAX_ANSWER_BYTES = 4 * 1024 * 1024


def http_interceptor(
    url: str,
    headers: Mapping[str, str],
    timeout: float,
    tls: TlsFiles | None = None,
    field: str = "tls",
    *,
    reach: Reach | None = None,
) -> Invoke:
    """POST the envelope to ``url`` with the client OpenAPI and HTTP targets use (ADR 0026). The
    TLS files are loaded here, at load time, so a bad path is a ConfigError naming ``field``."""
    context = tls_context(tls, field) if url.startswith("https:") else None

    async def invoke(envelope: JSON) -> JSON:
        async with HttpClient(
            url, tls=tls, field=field, context=context, max_connections=1, reach=reach
        ) as client:
            with upstream_url("POST", url) as traced:
                sent = [*headers.items(), ("Content-Type", "application/json"), *traced.headers.items()]
                response = await client.request(
                    "POST",
                    url,
                    sent,
                    orjson.dumps(envelope),
                    connect_seconds=min(10.0, timeout),
                    deadline_seconds=timeout,
                    limit=MAX_ANSWER_BYTES,
                )
                traced.status = response.status
        if response.status >= 300:
            raise ToolExecutionError(f"interceptor {url} answered HTTP {response.status}")
        if response.truncated:
            raise ToolExecutionError(f"interceptor {url} answered more than {MAX_ANSWER_BYTES} bytes")
        answer = orjson.loads(response.body)
        if not isinstance(answer, dict):
            raise ToolExecutionError(f"interceptor {url} did not answer a JSON object")
        return answer

    return invoke


def lambda_interceptor(
    function_name: str, region: str | None, endpoint_url: str | None, timeout: float
) -> Invoke:
    holder: dict[str, Any] = {}

    def call(envelope: JSON) -> JSON:
        import boto3
        from botocore.config import Config

        client = holder.get("client")
        if client is None:
            config = Config(
                read_timeout=timeout, connect_timeout=min(10.0, timeout), retries={"max_attempts": 0}
            )
            client = holder["client"] = boto3.client(
                "lambda", region_name=region, endpoint_url=endpoint_url, config=config
            )
        response = client.invoke(FunctionName=function_name, Payload=orjson.dumps(envelope))
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            raise ToolExecutionError(f"interceptor Lambda {function_name} failed: {payload[:300]!r}")
        answer = orjson.loads(payload)
        if not isinstance(answer, dict):
            raise ToolExecutionError(f"interceptor Lambda {function_name} did not answer a JSON object")
        return answer

    async def invoke(envelope: JSON) -> JSON:
        return await anyio.to_thread.run_sync(functools.partial(call, envelope))

    return invoke


@dataclass(frozen=True, slots=True)
class Interceptor:
    name: str
    phase: str  # "request" | "response"
    tools: tuple[str, ...]
    invoke: Invoke

    def applies(self, tool: str) -> bool:
        return not self.tools or any(fnmatch.fnmatchcase(tool, p) for p in self.tools)


def _wire(result: ToolResult) -> JSON:
    out: JSON = {"content": list(result.content), "isError": result.is_error}
    if result.structured is not None:
        out["structuredContent"] = result.structured
    return out


class GatewayInterceptors:
    """The interceptor stage of one gateway."""

    def __init__(self, gateway: str, interceptors: Sequence[Interceptor]) -> None:
        self.gateway = gateway
        self.request = [i for i in interceptors if i.phase == "request"]
        self.response = [i for i in interceptors if i.phase == "response"]

    def _envelope(self, phase: str, call: ToolCall, ctx: CallContext, arguments: JSON) -> JSON:
        p = ctx.principal
        return {
            "phase": phase,
            "gateway": self.gateway,
            "tool": call.public_name or call.name,
            "arguments": arguments,
            "principal": {
                "tenant": p.tenant,
                "subject": p.subject,
                "client": p.client_id,
                "scopes": sorted(p.scopes),
            },
        }

    async def _ask(self, interceptor: Interceptor, envelope: JSON) -> JSON:
        try:
            answer = await interceptor.invoke(envelope)
        except ToolExecutionError:
            raise
        except Exception as exc:  # noqa: BLE001 - boundary: an interceptor that fails fails the call closed
            raise ToolExecutionError(
                f"interceptor {interceptor.name} failed: {type(exc).__name__}: {exc}"
            ) from None
        if answer.get("action", "continue") not in ("continue", "refuse"):
            raise ToolExecutionError(
                f"interceptor {interceptor.name} answered an unknown action {answer.get('action')!r}"
            )
        return answer

    def applies(self, tool: str) -> bool:
        """Whether an interceptor of this gateway sees calls of ``tool``."""
        return any(i.applies(tool) for i in (*self.request, *self.response))

    async def __call__(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        tool = call.public_name or call.name
        arguments = dict(call.arguments)
        for interceptor in self.request:
            if not interceptor.applies(tool):
                continue
            answer = await self._ask(interceptor, self._envelope("request", call, ctx, arguments))
            if answer.get("action") == "refuse":
                return ToolResult.error(
                    str(answer.get("message") or f"Refused by interceptor {interceptor.name}.")
                )
            if isinstance(answer.get("arguments"), dict):
                arguments = answer["arguments"]
            headers = answer.get("headers")
            if isinstance(headers, dict):
                ctx.headers.update({str(k): str(v) for k, v in headers.items()})
        if arguments != call.arguments:
            call = ToolCall(call.name, arguments, public_name=call.public_name)
        result = await call_next(call, ctx)
        for interceptor in self.response:
            if not interceptor.applies(tool):
                continue
            envelope = {**self._envelope("response", call, ctx, arguments), "result": _wire(result)}
            answer = await self._ask(interceptor, envelope)
            replaced = answer.get("result")
            if isinstance(replaced, dict) and isinstance(replaced.get("content"), list):
                result = ToolResult(
                    content=tuple(replaced["content"]),
                    structured=replaced.get("structuredContent"),
                    is_error=bool(replaced.get("isError", result.is_error)),
                )
        return result


def build_interceptors(spec: Any, egress_allow: tuple[str, ...] | None = None) -> list[Interceptor]:
    """A gateway's interceptors from its configuration (ConfigError for an unknown callable).

    ``egress_allow``: a tenant's gateway (HTTP interceptors connect only to public addresses
    and these); None for the operator's."""
    from gateway.capabilities import import_object
    from gateway.config import HttpInterceptor, LambdaInterceptor, PythonInterceptor

    out: list[Interceptor] = []
    for i, item in enumerate(spec.interceptors):
        name = f"interceptors[{i}] ({item.kind})"
        if isinstance(item, PythonInterceptor):
            invoke = python_interceptor(import_object(item.function, f"interceptors[{i}].function"))
        elif isinstance(item, HttpInterceptor):
            invoke = http_interceptor(
                item.url,
                item.headers,
                item.timeout_seconds,
                item.tls,
                f"interceptors[{i}].tls",
                reach=reach(egress_allow),
            )
        elif isinstance(item, LambdaInterceptor):
            invoke = lambda_interceptor(
                item.function_name, item.region, item.endpoint_url, item.timeout_seconds
            )
        else:
            invoke = builtin_redact
        out.append(Interceptor(name, item.phase, tuple(item.tools), invoke))
    return out
