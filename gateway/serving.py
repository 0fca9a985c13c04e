"""Serving processes: the uvicorn server, and what several workers on one port share
(``serve --workers N``; ``gateway.workers`` starts them).

Workers share the listening socket the parent bound; the kernel hands each new
connection to one of them. Everything a call needs is shared through the store (and
Redis when set), except one thing: a 2025-11-25 MCP session lives in the worker that
created it. So each worker tags the session ids it makes with its process id, listens on
a private Unix socket as well, and a request for another worker's session is passed to
that worker over its socket (response streamed back, SSE included). Stateless 2026-07-28
requests never need it.

The parent applies the configuration, creates the first admin key and prints the
addresses before the workers start; it restarts a worker that dies and stops them all
on SIGTERM/SIGINT. Prometheus metrics are kept in a directory the workers share
(prometheus-client's multiprocess mode), so any worker's ``/metrics`` counts them all.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import logging.config
import os
import socket
import uuid
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

import anyio
import httpx2
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from gateway.settings import Settings

logger = logging.getLogger(__name__)
GC_THRESHOLD = 20_000  # young-generation allocations between collections (CPython's default: 700)
SESSION_TAG_BITS = 32  # the low 32 bits of a worker's session ids are its process id
FORWARDED_CLIENT = "x-switchboard-forwarded-client"
_FORWARDED = FORWARDED_CLIENT.encode()
_SESSION_GONE = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}'
_TOO_LARGE = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Request body too large"}}'
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"content-length"}


class GatewayServer(uvicorn.Server):
    """uvicorn's server; on the exit signal it first ends the MCP listen streams, which would
    otherwise hold the graceful shutdown open until its timeout."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        settle_memory()


def settle_memory() -> None:
    """Once started: move what start-up made (modules, compiled documents, catalogs) out of
    the collector's way, and collect the young generation less often. A profile under load
    showed cyclic GC passes over those long-lived objects in every request's path; frozen
    objects are never scanned, and each request's garbage is mostly freed by reference
    counting anyway (issue 9)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def gateway_server(
    app: Any, settings: Settings, log_config: dict[str, Any] | None, close_streams: Callable[[], None]
) -> GatewayServer:
    """The server for one process (the only one, or a worker: its logging is set up already);
    ``close_streams`` ends the app's long-lived streams when shutdown begins."""
    config = uvicorn.Config(
        app,
        log_config=log_config,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
        access_log=False,
        lifespan="on",
    )
    return GatewayServer(config, close_streams)


def run_dir(settings: Settings) -> Path:
    """Where the workers' sockets and shared metrics live (short: Unix socket paths are)."""
    path = settings.data_dir.resolve() / "run"
    if len(str(path)) > 80:
        digest = sha256(str(path).encode()).hexdigest()[:12]
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"switchboard-{digest}"
    return path


def worker_socket(directory: Path, pid: int) -> Path:
    return directory / f"w{pid}.sock"


# -- session ownership -------------------------------------------------------


def tag_sessions() -> None:
    """Make the SDK's session ids carry this process's id (the SDK draws them from uuid4)."""
    import mcp.server.streamable_http_manager as manager

    pid = os.getpid()

    def tagged() -> uuid.UUID:
        return uuid.UUID(int=(uuid.uuid4().int >> SESSION_TAG_BITS << SESSION_TAG_BITS) | pid)

    manager.uuid4 = tagged  # type: ignore[attr-defined]


def session_owner(directory: Path) -> Callable[[str], Path | None]:
    """``owner(session_id)``: the socket of the live worker that holds the session, or None
    when it is this process's (or nobody's: the SDK then answers 404 as usual)."""
    me = os.getpid()

    def owner(session_id: str) -> Path | None:
        try:
            pid = int(session_id[-SESSION_TAG_BITS // 4 :], 16)
        except ValueError:
            return None
        if pid == me:
            return None
        path = worker_socket(directory, pid)
        return path if path.exists() else None

    return owner


RUNTIME_SESSION = b"x-amzn-bedrock-agentcore-runtime-session-id"


def runtime_owner(directory: Path) -> Callable[[Scope], Path | None]:
    """``owner(scope)``: the socket of the worker that holds a hosted agent's session (ADR 0039)
    a request names, or None when it is this process's. Sessions' ids are the clients' own, so the
    owner is a hash of the id over the live workers: every worker picks the same one."""
    me = worker_socket(directory, os.getpid())

    def owner(scope: Scope) -> Path | None:
        path = scope.get("path", "")
        if "/runtimes/" not in path or scope.get("type") != "http":
            return None
        named = next((v for k, v in scope.get("headers", []) if k == RUNTIME_SESSION), None)
        if not named:
            return None  # (a new session: whoever takes the request starts it)
        workers = sorted(directory.glob("w*.sock"))
        if len(workers) < 2:
            return None
        chosen = workers[int.from_bytes(sha256(named).digest()[:8], "big") % len(workers)]
        return None if chosen == me else chosen

    return owner


class Forwarder:
    """Passes one HTTP request to another worker over its Unix socket, streaming the answer."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self._clients: dict[Path, httpx2.AsyncClient] = {}

    def _client(self, path: Path) -> httpx2.AsyncClient:
        client = self._clients.get(path)
        if client is None:
            # No cap on connections: a forwarded listen stream holds one for as long as its client stays.
            limits = httpx2.Limits(max_connections=None, max_keepalive_connections=32)
            transport = httpx2.AsyncHTTPTransport(uds=str(path), limits=limits)
            timeout = httpx2.Timeout(None, connect=10.0, pool=10.0)
            client = self._clients[path] = httpx2.AsyncClient(transport=transport, timeout=timeout)
        return client

    async def __call__(self, path: Path, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            body += message.get("body", b"")
            if len(body) > self.max_body:  # the limit the owner would apply, applied before buffering more
                await _plain(send, 413, _TOO_LARGE)
                return
            if not message.get("more_body", False):
                break
        # A client's own copy of the address header is dropped: only ours is believed.
        headers = [(k, v) for k, v in scope.get("headers", []) if k not in _HOP_BY_HOP and k != _FORWARDED]
        client = scope.get("client")
        if client:
            headers.append((_FORWARDED, f"{client[0]}:{client[1]}".encode()))
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        request = self._client(path).build_request(
            scope["method"], "http://worker" + target.decode("latin-1"), headers=headers, content=body
        )
        try:
            response = await self._client(path).send(request, stream=True)
        except httpx2.TransportError:
            await _plain(
                send,
                404,
                b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}',
            )
            return
        try:
            async with anyio.create_task_group() as tg:
                # The client leaving ends the forwarded request too (and so the call at its owner).
                tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP],
                    }
                )
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _plain(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


RUNTIME_LINK_CLIENT = ("runtime-link", 0)  # (not an address: never a loopback client)


def link_socket(directory: Path) -> socket.socket:
    """The listening socket hosted agents reach this process on (ADR 0040): requests on it come
    from a sandbox, whatever address the connection shows, and are never taken as loopback."""
    path = directory / "gateway.sock"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(512)
    return listener


def from_runtime_link(scope: Scope, link: str | None) -> None:
    """A request that came over the runtime link: its client is a sandbox, not this machine."""
    server = scope.get("server")
    if link is not None and server and server[0] == link:
        scope["client"] = RUNTIME_LINK_CLIENT


def forwarded_client(scope: Scope, own_socket: str | None) -> None:
    """A request that came over this worker's own socket: restore the original client address."""
    server = scope.get("server")
    if own_socket is None or not server or server[0] != own_socket:
        return
    for key, value in scope.get("headers", []):
        if key == _FORWARDED:
            host, _, port = value.decode("latin-1").rpartition(":")
            scope["client"] = (host, int(port) if port.isdigit() else 0)
            return


# -- the supervisor ----------------------------------------------------------


async def read_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The whole request body (None when it is over ``limit`` or the client left), and a
    receive callable that hands the same messages on to whoever reads next."""
    messages: list[Message] = []
    size = 0
    complete = False
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit:
            break
        if not message.get("more_body", False):
            complete = True
            break

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    return (body if complete else None), replay
