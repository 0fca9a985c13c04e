"""OpenAPI targets: every operation of an API document is a tool.

The document is loaded and compiled when the target opens (in a worker thread:
a large document must not stall the event loop). Calls build the exact
request the document describes (gateway.openapi.request), satisfy its
security requirement from the target's credentials, and turn the response
into a result: JSON becomes structuredContent plus text, other text stays
text, binary becomes an embedded resource, errors become ``isError`` results
with the status and an excerpt of the body. One pooled keep-alive client per
target (gateway.egress, on aiohttp: proxies from the environment, the target's
`tls` files, decompression, same-origin redirects of GET and HEAD); idempotent operations
are retried on connect errors, timeouts and 502-504.
"""

from __future__ import annotations

import base64
import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import quote, urljoin, urlsplit

import anyio
import httpx2
import orjson

from gateway.config import OpenApiTarget, read_secret
from gateway.core.errors import ConfigError, ToolExecutionError, ToolNotFound, UpstreamUnavailable
from gateway.core.provider import ToolProvider
from gateway.core.types import CallContext, ToolCall, ToolResult, ToolSpec
from gateway.egress import Answer, HttpClient, reach
from gateway.openapi.compiler import Compiled, Compiler, Operation
from gateway.openapi.document import Document, open_document
from gateway.openapi.request import Request, build
from gateway.openapi.shaping import (
    Shape,
    compile_shape,
    page_request,
    shape_result,
    shaped_tool,
)
from gateway.telemetry import upstream_request

EXCERPT = 500
_RETRY_STATUS = frozenset({502, 503, 504})
_TEXTUAL = ("text/", "application/xml", "application/javascript", "application/x-www-form-urlencoded")


class OpenApiProvider(ToolProvider):
    """Serves a ``kind: openapi`` target."""

    kind: ClassVar[str] = "openapi"

    def __init__(self, config: OpenApiTarget, *, gateway: str = "default") -> None:
        super().__init__(config.name)
        self.config = config
        self.gateway = gateway
        self.compiled: Compiled | None = None
        self.tools: dict[str, ToolSpec] = {}
        self.skipped: list[str] = []
        self._secrets: dict[str, str] = {}
        self._delegated: dict[str, str] = {}  # scheme -> credential provider (per caller, at call time)
        self._pool: HttpClient | None = None
        self._origin = ""
        self._target: tuple[str, str, int] = ("http", "", 80)
        self._base_path = ""
        self._shapes: dict[str, Shape] = {}

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        compiled, doc = await anyio.to_thread.run_sync(self._compile)
        self.compiled = compiled
        self.skipped = compiled.skipped
        self.tools = {t.name: t for t in compiled.tools if self._selected(compiled.operations[t.name], t)}
        self._secrets = {
            name: read_secret(ref, f"credentials.{name}")
            for name, ref in self.config.credentials.items()
            if ref.provider is None
        }
        self._delegated = {
            name: ref.provider for name, ref in self.config.credentials.items() if ref.provider is not None
        }
        unknown = (set(self._secrets) | set(self._delegated)) - set(compiled.security_schemes)
        if unknown:
            known = ", ".join(compiled.security_schemes) or "none"
            raise ConfigError(
                f"credentials name unknown security schemes {sorted(unknown)}; the document has: {known}"
            )
        origin, self._base_path = self._server(compiled, doc)
        self._shapes = {
            name: compile_shape(name, shape, compiled.operations, self._base_path)
            for name, shape in self.config.shape.items()
        }
        for name, shape in self._shapes.items():
            if name in self.tools:
                self.tools[name] = shaped_tool(self.tools[name], shape)
        # The request is already built to the byte (path, query, headers): the client sends
        # it as it is (ADR 0026).
        self._origin = origin
        parts = urlsplit(origin)
        default_port = 443 if parts.scheme == "https" else 80
        self._target = (parts.scheme, parts.hostname or "", parts.port or default_port)
        pool = HttpClient(
            origin,
            tls=self.config.tls,
            field=f"targets.{self.id}.tls",
            max_connections=100,
            reach=reach(self.egress_allow),
        )
        await pool.open()
        self._pool = pool
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def _compile(self) -> tuple[Compiled, Document]:
        doc = open_document(self.config.spec, base_dir=Path.cwd(), fetch_url=_fetch_url)
        return Compiler(doc).compile(), doc

    def _selected(self, op: Operation, tool: ToolSpec) -> bool:
        c = self.config
        tags = set(op.tags)
        if c.include_tags and not tags & set(c.include_tags):
            return False
        if c.exclude_tags and tags & set(c.exclude_tags):
            return False
        if c.include_paths and not any(_path_matches(p, op) for p in c.include_paths):
            return False
        return not any(_path_matches(p, op) for p in c.exclude_paths)

    def _server(self, compiled: Compiled, doc: Document) -> tuple[str, str]:
        if self.config.base_url:
            url = self.config.base_url
        else:
            servers = doc.root.get("servers") or [{"url": "/"}]
            first: dict[str, Any] = servers[0] if isinstance(servers[0], dict) else {"url": "/"}
            url = str(first.get("url", "/"))
            for name, var in (first.get("variables") or {}).items():
                value = self.config.server_variables.get(name, str((var or {}).get("default", "")))
                url = url.replace("{" + name + "}", value)
            if not urlsplit(url).scheme:
                if not doc.uri.startswith("http"):
                    raise ConfigError(
                        f"the document's server URL {url!r} is relative; give the target a `base_url`"
                    )
                url = urljoin(doc.uri, url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"server URL {url!r} is not an http(s) URL; give the target a `base_url`")
        return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")

    # -- tools ---------------------------------------------------------------------------

    async def list_tools(self, ctx: CallContext) -> Sequence[ToolSpec]:
        return list(self.tools.values())

    def problems(self) -> Sequence[str]:
        notes = self.compiled.notes if self.compiled is not None else []
        return [f"skipped {s}" for s in self.skipped] + notes

    async def call_tool(self, call: ToolCall, ctx: CallContext) -> ToolResult:
        if call.name not in self.tools or self.compiled is None:
            raise ToolNotFound(call.public_name or call.name)
        if self._pool is None:
            raise UpstreamUnavailable(f"target {self.id!r} is not open")
        op = self.compiled.operations[call.name]
        shape = self._shapes.get(call.name)
        args, follow = page_request(shape, call.arguments) if shape is not None else (call.arguments, None)

        def request_for() -> Request:
            return Request("GET", follow) if follow is not None else build(op, args, self._base_path)

        request = request_for()
        used = await self._authorize(op, request, ctx, call)
        status, result = await self._send(op, request, ctx, shape, args)
        if status == 401 and used:
            # The upstream refused a delegated token: get another (refreshed) one, once.
            request = request_for()
            await self._authorize(op, request, ctx, call, stale=used)
            status, result = await self._send(op, request, ctx, shape, args)
        return result

    async def _authorize(
        self,
        op: Operation,
        request: Request,
        ctx: CallContext,
        call: ToolCall,
        stale: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Add the credentials of the first security requirement we can meet; returns the
        delegated secrets used (by scheme)."""
        if not op.security:
            return {}
        schemes = self.compiled.security_schemes if self.compiled else {}
        for requirement in op.security:
            if all(name in self._secrets or name in self._delegated for name in requirement):
                used: dict[str, str] = {}
                for name in requirement:
                    secret = self._secrets.get(name)
                    if secret is None:
                        secret = await ctx.credentials.secret(
                            self._delegated[name],
                            tool=call.public_name or call.name,
                            stale=(stale or {}).get(name),
                        )
                        used[name] = secret
                    _apply_secret(schemes.get(name) or {}, secret, request)
                return used
        needed = " or ".join("+".join(r) or "(none)" for r in op.security)
        if any(not r for r in op.security):
            return {}  # an empty requirement: anonymous access is allowed
        raise ToolExecutionError(
            f"{op.method} {op.path} needs credentials ({needed}); "
            f"configure `credentials` on target {self.id!r}"
        )

    async def _send(
        self,
        op: Operation,
        request: Request,
        ctx: CallContext,
        shape: Shape | None = None,
        sent: Mapping[str, Any] | None = None,
    ) -> tuple[int, ToolResult]:
        assert self._pool is not None
        headers = [*self.config.headers.items(), *request.headers, *ctx.headers.items()]
        if not any(k.lower() == "accept" for k, _ in headers):
            headers.append(("Accept", "application/json, */*;q=0.5"))
        content = request.content
        if request.files is not None:
            encoded = httpx2.Request(request.method, self._origin, files=request.files)
            content = encoded.read()
            headers.append(("Content-Type", encoded.headers["content-type"]))
        # The target is sent as built: parsing it again would move `;matrix=params` out of the path.
        scheme, host, port = self._target
        timeout = self.config.timeout_seconds
        attempts = 1 + (self.config.retries if op.idempotent else 0)
        last_error = ""
        for attempt in range(attempts):
            if attempt:
                await anyio.sleep(min(0.1 * 2**attempt, max(0.0, ctx.remaining() / 4)))
            try:
                with upstream_request(request.method, scheme, host, port, request.path) as traced:
                    response = await self._pool.request(
                        request.method,
                        self._origin + request.path,
                        [*headers, *traced.headers.items()],
                        content,
                        connect_seconds=min(10.0, timeout),
                        deadline_seconds=timeout,
                        limit=self.config.max_response_bytes,
                        follow_redirects=True,
                    )
                    traced.status = response.status
                    if response.status in _RETRY_STATUS and attempt + 1 < attempts:
                        last_error = f"HTTP {response.status}"
                        continue
                    media = _media(response)
                    shaped = self._shaped(response, media, shape, sent or {})
                    url = self._origin + request.path
                    return response.status, shaped or _result(response, media, url, op.wrap_result)
            except UpstreamUnavailable as exc:  # no connection, no answer in time, a broken answer
                last_error = exc.message
            except ToolExecutionError as exc:  # the request itself is wrong: no retry
                raise ToolExecutionError(f"{op.method} {op.path}: {exc.message}") from None
        raise UpstreamUnavailable(f"{op.method} {op.path} failed after {attempts} attempt(s): {last_error}")

    def _shaped(
        self, response: Answer, media: str, shape: Shape | None, sent: Mapping[str, Any]
    ) -> ToolResult | None:
        """The paged/trimmed result, or the failure a 2xx answer reports; None: as it came."""
        if shape is None and self.config.failure is None:
            return None
        if response.status >= 400 or response.truncated or not media.endswith("json"):
            return None
        try:
            value = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
        return shape_result(shape, self.config.failure, value, headers, sent, self._origin)


def _path_matches(pattern: str, op: Operation) -> bool:
    method, _, path = pattern.partition(" ")
    if path:
        return method.upper() == op.method and fnmatch.fnmatchcase(op.path, path)
    return fnmatch.fnmatchcase(op.path, pattern)


def _apply_secret(scheme: Mapping[str, Any], secret: str, request: Request) -> None:
    kind = scheme.get("type")
    if kind == "apiKey":
        name, where = str(scheme.get("name", "")), scheme.get("in")
        if where == "query":
            sep = "&" if "?" in request.path else "?"
            request.path += f"{sep}{quote(name, safe='')}={quote(secret, safe='')}"
        elif where == "cookie":
            request.headers.append(("Cookie", f"{name}={quote(secret, safe='')}"))
        else:
            request.headers.append((name, secret))
    elif kind == "http" and str(scheme.get("scheme", "")).lower() == "basic":
        request.headers.append(("Authorization", "Basic " + base64.b64encode(secret.encode()).decode()))
    else:  # http bearer, oauth2, openIdConnect
        request.headers.append(("Authorization", f"Bearer {secret}"))


def _media(response: Answer) -> str:
    """The answer's media type, lower case, without parameters."""
    media = next((v for k, v in response.headers if k.lower() == b"content-type"), b"")
    return media.decode("latin-1").split(";")[0].strip().lower()


def _result(response: Answer, media: str, url: str, wrap: bool) -> ToolResult:
    body, truncated, status = response.body, response.truncated, response.status
    notice = f"\n[truncated: the response was larger than {len(body)} bytes]" if truncated else ""
    if status >= 400:
        excerpt = body[:EXCERPT].decode("utf-8", "replace")
        return ToolResult.error(f"HTTP {status} {response.reason}: {excerpt}{notice}")
    if not body:
        return ToolResult.text(f"HTTP {status} {response.reason} (no content)")
    if (media.endswith("json") or media.endswith("+json")) and not truncated:
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            return ToolResult.text(body.decode("utf-8", "replace"))
        structured = {"result": value} if wrap or not isinstance(value, dict) else value
        return ToolResult(
            content=({"type": "text", "text": body.decode("utf-8", "replace")},), structured=structured
        )
    if media.startswith(_TEXTUAL) or media.endswith(("json", "xml")) or not media:
        return ToolResult.text(body.decode("utf-8", "replace") + notice)
    resource = {"uri": url, "mimeType": media, "blob": base64.b64encode(body).decode()}
    content: list[dict[str, Any]] = [{"type": "resource", "resource": resource}]
    if truncated:
        content.append({"type": "text", "text": notice.strip()})
    return ToolResult(content=tuple(content))


def _fetch_url(url: str) -> bytes:
    from gateway.egress import fetch

    return fetch(url)
