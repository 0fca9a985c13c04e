"""The fast path: plain tools/call and tools/list answered without the SDK's per-request machinery.

Profiles of a gateway hop (bench/) showed the SDK's server path, not the
upstream, costing most of a call: per-request task groups and memory streams,
pydantic validation of every message in and out, SSE framing. The hot methods
are simple once the edge checks are done, so this module serves them directly
when a request is ordinary:

- 2026-07-28: a POST whose envelope (`_meta` protocol version and client
  capabilities), `Mcp-Method`/`Mcp-Name` headers and body agree, with no
  progress token, log level, request state, input responses or `Mcp-Param-*`
  headers, and no call that may be (or must be) a task: a task-capable tool called by a
  client that declared the tasks extension, or one that runs only as a task (ADR 0038);
- 2025 era: a POST on a session the SDK created for this gateway and still
  holds, with a known protocol version header.

and only for a client that cannot be asked anything mid-call (it declared no
elicitation, sampling or roots; a handshake-era session set no log level): the
fast path has no back-channel, so a call that could need one goes to the SDK
path from the start.

**The path is decided before the call starts, and a started call is never run
again** (SECURITY.md: a call that has started upstream is never run a second
time by a fallback path). Anything not served here goes to the SDK path with the
body replayed, before any stage runs. Once ``LiveGateway.call`` has begun, every
outcome is answered here: a tool's question is answered as the SDK path answers
it for a client without that capability (MissingClientCapability), a log line
is dropped (none was asked for), request and auth errors are worded by the
front's ``to_wire``. Origin/Host checks and the body limit are the same ones the
SDK applies.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from gateway.core.errors import (
    AuthError,
    InputRequired,
    InvalidArguments,
    MissingClientCapability,
    RequestError,
)
from gateway.core.types import CAPABILITY_OF, JSON, CallContext, Principal, ToolResult
from gateway.hub import GatewayKey, LiveGateway
from gateway.telemetry import mcp_span, tool_failed

MODERN = "2026-07-28"
_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_META_CAPS = "io.modelcontextprotocol/clientCapabilities"
# Trace context (SEP-414) rides in _meta too; the span of the request reads it.
_META_OK = frozenset(
    {_META_VERSION, _META_CAPS, "io.modelcontextprotocol/clientInfo", "traceparent", "tracestate", "baggage"}
)
_ROUTING = (b"mcp-method", b"mcp-name", b"mcp-protocol-version")
_TASKS = "io.modelcontextprotocol/tasks"
_ASKABLE = frozenset(c.split(".")[0] for c in CAPABILITY_OF.values())  # elicitation, sampling, roots
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Fallback(InputRequired):
    """This request needs the SDK path; raised only before the call starts."""

    def __init__(self) -> None:
        super().__init__({}, {})


def askable(capabilities: Any) -> bool:
    """Whether a client declared a capability a tool could ask it for mid-call (a dict from
    ``_meta``, or the SDK's ClientCapabilities of a handshake-era session)."""
    if isinstance(capabilities, Mapping):
        return any(capabilities.get(c) is not None for c in _ASKABLE)
    return any(getattr(capabilities, c, None) is not None for c in _ASKABLE)


class _FastChannel:
    """The channel of a client that can be asked nothing: what the SDK path's channel does for
    such a client, without a back-channel (so nothing here needs the SDK path)."""

    def supports(self, capability: str) -> bool:
        return False

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None  # no progress token was sent (else this request is not on the fast path)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        return None  # no log level was asked for (else this request is not on the fast path)

    async def ask(self, requests: Mapping[str, JSON]) -> dict[str, JSON]:
        for request in requests.values():
            capability = CAPABILITY_OF.get(request.get("method", ""))
            if capability is None:
                raise ValueError(f"cannot ask the client {request.get('method')!r}")
            raise MissingClientCapability(capability)
        return {}

    async def elicit(self, message: str, requested_schema: JSON, *, key: str | None = None) -> JSON:
        raise MissingClientCapability("elicitation")

    async def sample(self, request: JSON, *, key: str | None = None) -> JSON:
        raise MissingClientCapability("sampling")

    async def list_roots(self, *, key: str | None = None) -> JSON:
        raise MissingClientCapability("roots")


class _Answer(Exception):
    """A JSON-RPC error answering a call that started on the fast path."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


_CHANNEL = _FastChannel()
ListPage = Callable[[LiveGateway, str | None, bool, Principal, str | None], dict[str, Any]]
ResultWire = Callable[[ToolResult], dict[str, Any]]
ErrorWire = Callable[[RequestError | AuthError], MCPError]


class FastPath:
    """Serves ordinary tools/call and tools/list requests; says False for everything else."""

    def __init__(
        self,
        security: TransportSecuritySettings,
        max_request_bytes: int,
        server_info: dict[str, Any],
        list_page: ListPage,
        result_wire: ResultWire,
        session_alive: Callable[[str, str], bool],
        error_wire: ErrorWire,
    ) -> None:
        """``session_alive(session, version)``: a handshake-era session the SDK holds, speaking
        ``version``, whose client cannot be asked anything mid-call (see `askable`)."""
        self.security = TransportSecurityMiddleware(security)
        self.max_request_bytes = max_request_bytes
        self.stamp = {"io.modelcontextprotocol/serverInfo": server_info}
        self.list_page = list_page
        self.result_wire = result_wire
        self.session_alive = session_alive
        self.error_wire = error_wire
        self.in_flight: dict[tuple[str, Any], _Cancellation] = {}

    async def handle(
        self,
        gw: LiveGateway,
        key: GatewayKey,
        scope: Scope,
        receive: Receive,
        send: Send,
        session: str | None,
    ) -> Receive | None:
        """Serve the request, or return the receive callable the SDK path must use (body replayed)."""
        if scope.get("method") != "POST":
            return receive
        headers = scope.get("headers", [])
        version = _one(headers, b"mcp-protocol-version")
        modern = version == MODERN
        if not modern and (session is None or version not in HANDSHAKE_PROTOCOL_VERSIONS):
            return receive
        if modern and session is not None:
            return receive
        body, complete = await _read_body(receive, self.max_request_bytes)
        replay = _replay(body, complete, receive)
        if not complete:
            return replay
        try:
            message = orjson.loads(body_of(body))
        except orjson.JSONDecodeError:
            return replay
        if session is not None and _cancelled(message):
            scope_ = self.in_flight.get((session, message["params"].get("requestId")))
            if scope_ is not None:
                scope_.cancel()
            return replay
        request = _request(message)
        if request is None:
            return replay
        if modern and not _modern_envelope_ok(headers, request):
            return replay
        if not modern and not self.session_alive(session or "", version or ""):
            return replay
        if await self.security.validate_request(Request(scope, replay), is_post=True) is not None:
            return replay  # the SDK answers with the right status
        accept = _one(headers, b"accept") or ""
        if "application/json" not in accept and "*/*" not in accept:
            return replay
        params = request["params"]
        name = params.get("name") if request["method"] == "tools/call" else None
        try:
            with mcp_span(
                request["method"],
                tenant=key[0],
                gateway=key[1],
                target=name,
                request_id=request["id"],
                meta=params.get("_meta"),
                headers=headers,
                protocol_version=version,
                session=session,
                abandon=_Fallback,
            ) as span:
                result = await self._run(gw, key, request, scope, receive, session, modern)
                tool_failed(span, result)
        except _Fallback:
            return replay
        except _Answer as answer:
            result, error = None, answer.error
        else:
            error = {"code": -32800, "message": "Request cancelled"}
        if result is None:  # an error; or cancelled by the client, or the client is gone
            payload = orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error})
            # The stateless era maps error codes to HTTP statuses (a missing client capability
            # is 400), as the SDK's path does; the handshake era answers errors with 200.
            status = ERROR_CODE_HTTP_STATUS.get(error["code"], 200) if modern else 200
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": _response_headers(session, payload),
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return None
        if modern:
            result["resultType"] = "complete"
            result["_meta"] = self.stamp
        payload = orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result})
        await send(
            {"type": "http.response.start", "status": 200, "headers": _response_headers(session, payload)}
        )
        await send({"type": "http.response.body", "body": payload})
        return None

    async def _run(
        self,
        gw: LiveGateway,
        key: GatewayKey,
        request: dict[str, Any],
        scope: Scope,
        receive: Receive,
        session: str | None,
        modern: bool,
    ) -> dict[str, Any] | None:
        params = request["params"]
        found = scope.get("state", {}).get("switchboard.principal")
        principal = found if isinstance(found, Principal) else Principal(tenant=key[0])
        if request["method"] == "tools/list":
            cursor = params.get("cursor")
            if cursor is not None and not isinstance(cursor, str):
                raise _Fallback
            try:
                return self.list_page(gw, cursor, modern, principal, session)
            except Exception as exc:
                raise _Fallback from exc
        name = params.get("name")
        entry = gw.catalog.snapshot.tools.get(name) if isinstance(name, str) else None
        if entry is None or _has_header_params(entry.spec.input_schema):
            raise _Fallback
        if modern and entry.spec.task_support != "forbidden":
            caps = params["_meta"][_META_CAPS]  # (a dict: _modern_envelope_ok)
            declared = isinstance(ext := caps.get("extensions"), dict) and _TASKS in ext
            if entry.spec.task_support == "required" or declared:
                raise _Fallback  # it may become a task, or must: the tasks runtime (ADR 0038)
        ctx = CallContext(
            principal=principal,
            gateway=key[1],
            session_id=session,
            deadline=math.inf,
            channel=_CHANNEL,
            request_id=request["id"],
            meta=params.get("_meta") or {},
        )
        result: ToolResult | None = None
        failure: dict[str, Any] | None = None
        task = asyncio.current_task()
        assert task is not None
        cancel = _Cancellation(task)
        if session is not None:
            self.in_flight[(session, request["id"])] = cancel
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, cancel))
        balanced = False
        try:
            result = await gw.call(name, params.get("arguments"), ctx)
        except InvalidArguments as exc:
            result = ToolResult.error(str(exc))
        except asyncio.CancelledError:
            if not cancel.requested:
                raise
            balanced = True
            if task.uncancel() > 0:
                raise  # the server is stopping too: that cancellation goes on
            result = None  # the client is gone, or cancelled this request: nobody to answer
        except (RequestError, AuthError) as exc:
            wire = self.error_wire(exc)
            failure = {"code": wire.code, "message": wire.message}
            if wire.data is not None:
                failure["data"] = wire.data
        except Exception as exc:  # noqa: BLE001 - boundary: the call started, so it is answered here
            failure = {"code": -32603, "message": f"Internal error: {type(exc).__name__}"}
        finally:
            cancel.finished = True
            watcher.cancel()
            if session is not None:
                self.in_flight.pop((session, request["id"]), None)
        if cancel.requested:
            if not balanced:
                task.uncancel()  # code under the call swallowed our cancellation: count it off
            result, failure = None, None  # nobody to answer, and a cancelled call never runs again
        if failure is not None:
            raise _Answer(failure)
        return None if result is None else self.result_wire(result)


def _one(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [v for k, v in headers if k == name]
    return values[0].decode("latin-1").strip(" \t") if len(values) == 1 else None


def _request(message: Any) -> dict[str, Any] | None:
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    rid = message.get("id")
    if isinstance(rid, bool) or not isinstance(rid, int | str):
        return None
    method = message.get("method")
    params = message.get("params", {})
    if method not in ("tools/call", "tools/list") or not isinstance(params, dict):
        return None
    allowed = {"name", "arguments", "_meta"} if method == "tools/call" else {"cursor", "_meta"}
    if set(params) - allowed or set(message) - {"jsonrpc", "id", "method", "params"}:
        return None
    if method == "tools/call" and not (
        isinstance(params.get("name"), str) and isinstance(params.get("arguments", {}), dict)
    ):
        return None
    meta = params.get("_meta", {})
    if not isinstance(meta, dict) or "progressToken" in meta:
        return None
    return {"id": rid, "method": method, "params": params}


def _modern_envelope_ok(headers: list[tuple[bytes, bytes]], request: dict[str, Any]) -> bool:
    if any(sum(1 for k, _ in headers if k == name) > 1 for name in _ROUTING):
        return False
    if any(k.startswith(b"mcp-param-") for k, _ in headers):
        return False
    params = request["params"]
    meta = params.get("_meta")
    if not isinstance(meta, dict) or set(meta) - _META_OK:
        return False
    if meta.get(_META_VERSION) != MODERN or not isinstance(meta.get(_META_CAPS), dict):
        return False
    if askable(meta[_META_CAPS]):
        return False  # a tool could ask this client something: the SDK path, from the start
    if _one(headers, b"mcp-method") != request["method"]:
        return False
    return bool(request["method"] != "tools/call" or _one(headers, b"mcp-name") == params["name"])


def _cancelled(message: Any) -> bool:
    return bool(
        isinstance(message, dict)
        and message.get("method") == "notifications/cancelled"
        and isinstance(message.get("params"), dict)
    )


def _has_header_params(schema: Mapping[str, Any]) -> bool:
    props = schema.get("properties")
    return isinstance(props, dict) and any(
        isinstance(p, dict) and "x-mcp-header" in p for p in props.values()
    )


def _response_headers(session: str | None, payload: bytes) -> list[tuple[bytes, bytes]]:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
    if session is not None:
        headers.append((b"mcp-session-id", session.encode()))
    return headers


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bool]:
    """The request's body messages, and whether the whole body fit under ``limit``."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, False
        size += len(message.get("body", b""))
        if size > limit:
            return messages, False
        if not message.get("more_body", False):
            return messages, True


def _replay(messages: list[Message], complete: bool, receive: Receive) -> Receive:
    queue = list(messages)

    async def replayed() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed


class _Cancellation:
    """Cancels the task serving one call: its client went away, or sent notifications/cancelled.

    Plain asyncio (a task and ``Task.cancel``), not an anyio task group and cancel scope: those
    were a tenth of the event loop's time per call under load (issue 9). Code under the call
    still uses anyio's scopes; anyio passes a native cancellation through them."""

    __slots__ = ("finished", "requested", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.requested = False
        self.finished = False  # set, with no await in between, as soon as the call returns

    def cancel(self) -> None:
        if not self.requested and not self.finished:
            self.requested = True
            self.task.cancel()


async def _watch_disconnect(receive: Receive, cancel: _Cancellation) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    cancel.cancel()


def body_of(messages: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
