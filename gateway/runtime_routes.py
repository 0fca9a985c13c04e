"""Hosted agents over plain HTTP, for clients without SigV4 (ADR 0039, 0041):

    POST /runtimes/{runtime}/invocations                    the default tenant's
    POST /tenants/{tenant}/runtimes/{runtime}/invocations
    GET  /runtimes/{runtime}/invocations/.well-known/agent-card.json   an A2A server's card

authenticated as the tenant's ``default`` gateway authenticates its callers (and from a Host and
Origin of this gateway's); the session is the ``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id``
header's (a new one without it, said in the answer's header); ``?endpoint=NAME`` or
``?version=N`` picks the version (DEFAULT: the latest). The app's answer, JSON or a stream of
server-sent events, is relayed as it comes; an A2A server's JSON-RPC goes to its ``POST /``.
``/runtimes/{runtime}/ws`` (and the tenant's) relays a WebSocket both ways to the app's ``/ws``.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gateway.runtimes import (
    A2A_PASSED,
    CARD,
    PASSED,
    RELAYED,
    Caller,
    Runtimes,
)
from gateway.serving import read_body
from gateway.telemetry import trace_headers
from runtime import (
    SESSION_HEADER,
    AtCapacity,
    DeployError,
    EndpointError,
    NotYours,
    SessionError,
    Version,
)

WHOLE_BYTES = 256 * 1024  # an app's answer up to this size (said in advance) is relayed in one piece

Authenticate = Callable[
    [str, HTTPConnection], Awaitable[Any]
]  # the caller's principal, or a refusal Response


def runtime_routes(
    runtimes: Callable[[], Runtimes], authenticate: Authenticate, max_bytes: int
) -> list[BaseRoute]:
    """The invocation routes; ``authenticate(tenant, request)`` answers the caller's principal, or
    a Response that refuses them."""

    async def invoke(request: Request) -> Response:
        tenant = request.path_params.get("tenant", "default")
        name = request.path_params["runtime"]
        refused = await authenticate(tenant, request)
        if isinstance(refused, Response):
            return refused
        hosted = runtimes()
        if hosted.sessions is None:
            return _error(503, f"hosted agents cannot run here: {hosted.problem}")
        declared = request.headers.get("content-length", "")
        body = (
            None
            if declared.isdigit() and int(declared) > max_bytes
            else (await read_body(request.receive, max_bytes))[0]
        )
        if body is None:  # (over the limit, or the client left: read no further)
            return _error(
                413, f"the payload is larger than {max_bytes} bytes (SWITCHBOARD_MAX_REQUEST_BYTES)"
            )
        wanted, endpoint = request.query_params.get("version"), request.query_params.get("endpoint")
        if wanted is not None and not wanted.isdigit():
            return _error(400, f"version must be a number, not {wanted!r}")
        if wanted is not None and endpoint is not None:
            return _error(400, "give a version or an endpoint, not both")
        session_id = request.headers.get(SESSION_HEADER) or secrets.token_hex(20)
        try:
            version = hosted.choose(tenant, name, wanted or endpoint, session_id)
        except (DeployError, EndpointError) as exc:
            return _error(404, str(exc))
        if version.protocol == "MCP":
            return _error(400, _not_http(version))
        # An A2A server's JSON-RPC also needs what the client accepts and its A2A version.
        allowed = PASSED if version.protocol == "HTTP" else (*PASSED, *A2A_PASSED)
        passed = {k: v for k, v in request.headers.items() if k.lower().startswith(allowed)}
        content_type = request.headers.get("content-type", "application/json")
        caller = Caller(
            tenant, str(getattr(refused, "subject", "anonymous")), getattr(refused, "client_id", None)
        )
        streams = contextlib.AsyncExitStack()
        try:
            session, answer = await streams.enter_async_context(
                hosted.invoke(caller, version, session_id, body, passed, content_type)
            )
        except AtCapacity as exc:
            await streams.aclose()
            return _error(429, str(exc))
        except NotYours as exc:
            await streams.aclose()
            return _error(403, str(exc))
        except SessionError as exc:
            await streams.aclose()
            return _error(400 if "characters" in str(exc) else 502, str(exc))
        headers = {SESSION_HEADER: session.id}
        kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "cache-control")}
        length = answer.headers.get("content-length", "")
        if length.isdigit() and int(length) <= WHOLE_BYTES:  # (an answer of known, small size: whole)
            try:
                body = await answer.aread()
            except BaseException:
                await streams.aclose()
                raise
            return Response(  # (the audit record is written once the answer has gone)
                body,
                status_code=answer.status_code,
                headers={**kept, **headers, **RELAYED},
                background=BackgroundTask(streams.aclose),
            )
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers={**kept, **headers, **RELAYED},
            background=BackgroundTask(streams.aclose),
        )

    async def card(request: Request) -> Response:
        """An A2A server's Agent Card (AgentCore's GetAgentCard, over plain HTTP)."""
        tenant = request.path_params.get("tenant", "default")
        refused = await authenticate(tenant, request)
        if isinstance(refused, Response):
            return refused
        hosted = runtimes()
        caller = Caller(tenant, str(getattr(refused, "subject", "anonymous")))
        qualifier = request.query_params.get("endpoint") or request.query_params.get("version")
        try:
            found = await hosted.card(caller, request.path_params["runtime"], qualifier)
        except (DeployError, EndpointError) as exc:
            return _error(404, str(exc))
        except SessionError as exc:
            return _error(502, str(exc))
        return JSONResponse(found)

    async def talk(websocket: WebSocket) -> None:
        """``/ws``: the caller's WebSocket relayed both ways to the app's, in the session's sandbox."""
        tenant = websocket.path_params.get("tenant", "default")
        refused = await authenticate(tenant, websocket)
        hosted = runtimes()
        if isinstance(refused, Response) or hosted.sessions is None:
            await websocket.close(
                code=1008,
                reason="not authenticated" if isinstance(refused, Response) else "no sandboxes here",
            )
            return
        session_id = websocket.headers.get(SESSION_HEADER) or secrets.token_hex(20)
        try:
            qualifier = websocket.query_params.get("endpoint") or websocket.query_params.get("version")
            version = hosted.choose(tenant, websocket.path_params["runtime"], qualifier, session_id)
            if version.protocol != "HTTP":
                raise SessionError(_not_http(version))
            subject = str(getattr(refused, "subject", "anonymous"))
            session = await hosted.sessions.session(version, session_id, owner=tenant, user=subject)
        except (DeployError, EndpointError, SessionError) as exc:
            await websocket.close(code=1008, reason=str(exc)[:120])
            return
        headers = {SESSION_HEADER: session.id, **trace_headers(), **hosted.token(tenant, version, subject)}
        try:
            with session.held() as path:  # (a name of our own: the session may end meanwhile)
                connecting = unix_connect(path, "ws://127.0.0.1:8080/ws", additional_headers=headers)
                app = await connecting
        except (OSError, InvalidHandshake, SessionError) as exc:
            with contextlib.suppress(RuntimeError):
                await websocket.close(code=1011, reason=f"the app's /ws did not answer: {exc}"[:120])
            return
        try:
            async with app:
                await websocket.accept(headers=[(SESSION_HEADER.lower().encode(), session.id.encode())])
                session.used = time.monotonic()
                async with anyio.create_task_group() as both:

                    async def upward() -> None:
                        with contextlib.suppress(WebSocketDisconnect):
                            while True:
                                message = await websocket.receive()
                                if message["type"] == "websocket.disconnect":
                                    break
                                await app.send(message.get("text") or message.get("bytes") or "")
                        both.cancel_scope.cancel()

                    async def downward() -> None:
                        with contextlib.suppress(ConnectionClosed):
                            async for message in app:
                                await (
                                    websocket.send_text(message)
                                    if isinstance(message, str)
                                    else websocket.send_bytes(message)
                                )
                        both.cancel_scope.cancel()

                    both.start_soon(upward)
                    both.start_soon(downward)
        except (OSError, InvalidHandshake) as exc:
            with contextlib.suppress(RuntimeError):
                await websocket.close(code=1011, reason=f"the app's /ws did not answer: {exc}"[:120])
            return
        with contextlib.suppress(RuntimeError):
            await websocket.close()

    return [
        Route("/runtimes/{runtime}/invocations", invoke, methods=["POST"]),
        Route("/runtimes/{runtime}/invocations/", invoke, methods=["POST"]),  # (an A2A card's URL)
        Route("/tenants/{tenant}/runtimes/{runtime}/invocations", invoke, methods=["POST"]),
        Route("/tenants/{tenant}/runtimes/{runtime}/invocations/", invoke, methods=["POST"]),
        Route(f"/runtimes/{{runtime}}/invocations{CARD}", card, methods=["GET"]),
        Route(f"/tenants/{{tenant}}/runtimes/{{runtime}}/invocations{CARD}", card, methods=["GET"]),
        WebSocketRoute("/runtimes/{runtime}/ws", talk),
        WebSocketRoute("/tenants/{tenant}/runtimes/{runtime}/ws", talk),
    ]


def _not_http(version: Version) -> str:
    return f"{version.tag} is an {version.protocol} server, not an HTTP agent: " + (
        "call its tools through a gateway target of kind runtime"
        if version.protocol == "MCP"
        else "reach it over A2A"
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)
