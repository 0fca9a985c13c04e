"""Keep-alive HTTP/1.1 to one origin for OpenAPI targets, parsed by httptools (llhttp).

Why not httpcore2's pool (issue 9, ADR 0005): the request is already built to the byte,
and a profile of the gateway under load put 30% of the event loop in httpcore2's
machinery for one small GET (pool bookkeeping, locks and cancel scopes per request, h11's
pure-Python parsing and header validation). Here a request is one write, and the answer is
parsed in C by the same parser uvicorn uses for the inbound side.

What it does: one pool per target; idle connections are reused (one that the peer closed
is noticed by the event loop, without polling); at most ``max_connections`` open;
deadlines cover connecting, writing and reading; a connection is closed, never reused,
after a timeout, a cancellation, a truncated body or a protocol error; TLS with the
system's trust store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured, as httpcore2 does).
Errors are httpcore2's exception types so callers handle one family. It runs on asyncio
(the server's loop) and uses asyncio's own timeout and semaphore: anyio's cancel scopes
cost more than the rest of a request here (an outer anyio scope still cancels it).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from dataclasses import dataclass
from typing import cast

import httpcore2
import httptools

MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TARGET = re.compile(r"[\x21-\x7e]+")  # visible ASCII: a percent-encoded path and query
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(slots=True)
class Answer:
    status: int
    reason: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    truncated: bool


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the answer being read on it.

    An answer is settled once (``_complete`` snapshots it, ``_fail`` gives the error); any
    byte after that which the exchange did not ask for (a second answer in the same packet,
    a body after HEAD) makes the connection unusable, never the next request's answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.lost = False
        self.reusable = False
        self.idle_since = 0.0
        self._reset(0, head=False)

    def _reset(self, limit: int, *, head: bool) -> None:
        self.limit = limit
        self.head = head
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        # Bytes read while the headers had not ended (httptools holds a header until it ends,
        # so they are counted as read, not as parsed).
        self.head_bytes = 0
        self.body = bytearray()
        self.truncated = False
        self.headers_done = False
        self.settled = False

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpcore2.RemoteProtocolError("the upstream switched protocols"))
            self.close()
            return
        except httptools.HttpParserError as exc:
            refused = exc.__context__  # raised by a callback below: httptools wraps it
            reason = str(refused) if isinstance(refused, _Refused) else f"is not HTTP/1.1: {exc}"
            self._fail(httpcore2.RemoteProtocolError(f"the upstream's answer {reason}"))
            self.close()
            return
        if not self.headers_done and not self.settled:  # all of it was status line and headers
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEADER_BYTES:
                too_long = f"the upstream's answer has more than {MAX_HEADER_BYTES} bytes of headers"
                self._fail(httpcore2.RemoteProtocolError(too_long))
                self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.headers_done and self._ends_with_connection():
            self._complete(reusable=False)
        self._fail(httpcore2.ReadError("the upstream closed the connection before answering in full"))

    def _ends_with_connection(self) -> bool:
        """A body delimited by the connection's end: no Content-Length, and not chunked."""
        codings = b""
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length":
                return False
            if lowered == b"transfer-encoding":
                codings = value
        return codings.split(b",")[-1].strip().lower() != b"chunked"

    # -- httptools callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.settled:  # a second answer to one request
            self.reusable = False
            raise _Refused("was followed by another answer to the same request")

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.headers_done:
            return  # a chunked body's trailers: not part of the answer
        self.headers.append((name, value))
        if len(self.headers) > MAX_HEADERS:
            raise _Refused(f"has more than {MAX_HEADERS} headers")

    def on_headers_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        self.headers_done = True
        if self.head:  # no body follows an answer to HEAD, whatever its Content-Length says
            self._complete(reusable=False)

    def on_body(self, chunk: bytes) -> None:
        if self.settled:
            return
        room = self.limit - len(self.body)
        if len(chunk) > room:
            self.body += chunk[:room]
            self.truncated = True
            self._complete(reusable=False)
        else:
            self.body += chunk

    def on_message_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:
            self.headers, self.reason, self.head_bytes = [], b"", 0
            return
        self._complete(reusable=self.parser.should_keep_alive())

    # -- requests ----------------------------------------------------------------------

    def _complete(self, *, reusable: bool) -> None:
        """Settle the answer as it is now (later callbacks cannot change it)."""
        waiter, self.waiter = self.waiter, None
        if waiter is None or self.settled:
            return
        self.settled = True
        self.reusable = reusable and not self.lost
        answer = Answer(
            self.parser.get_status_code(),
            self.reason.decode("latin-1"),
            list(self.headers),
            bytes(self.body),
            self.truncated,
        )
        if not waiter.done():
            waiter.set_result(answer)

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        self.reusable = False
        self.settled = True
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def exchange(self, raw: bytes, *, head: bool, limit: int) -> Answer:
        assert self.transport is not None
        self._reset(limit, head=head)
        self.reusable = False
        self.parser = httptools.HttpResponseParser(self)
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        self.transport.write(raw)
        return await waiter

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class _Refused(Exception):
    """An answer this client will not read further (raised inside the parser's callbacks)."""


class Http1Pool:
    """Keep-alive connections to one origin."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        max_connections: int = 100,
        max_idle: int = 32,
        keepalive_seconds: float = 30.0,
    ) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        default = 443 if scheme == "https" else 80
        self._host_header = host if port == default else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            self._host_header = f"[{host}]" + ("" if port == default else f":{port}")
        self._ssl: ssl.SSLContext | None = httpcore2.default_ssl_context() if scheme == "https" else None
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_idle
        self._keepalive = keepalive_seconds
        self._closed = False

    async def _connect(self, seconds: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(seconds):
                _, conn = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise httpcore2.ConnectTimeout(
                f"no connection to {self.host}:{self.port} within {seconds}s"
            ) from None
        except ssl.SSLError as exc:
            raise httpcore2.ConnectError(f"TLS with {self.host}:{self.port} failed: {exc}") from None
        except OSError as exc:
            raise httpcore2.ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return conn

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.lost or conn.transport is None or conn.transport.is_closing():
                continue
            if now - conn.idle_since > self._keepalive:
                conn.close()
                continue
            return conn
        return None

    def encode(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None) -> bytes:
        """The request's bytes. The method and target must be plain (no spaces, line breaks or
        other controls: a target made from an agent's cursor must not start a second request);
        the gateway sets Host (unless given), Content-Length and the framing itself."""
        if not _TOKEN.fullmatch(method):
            raise httpcore2.LocalProtocolError(f"{method!r} is not an HTTP method")
        if not _TARGET.fullmatch(target):
            raise httpcore2.LocalProtocolError("the request target holds characters a URL cannot")
        lines = [f"{method} {target} HTTP/1.1"]
        if not any(name.lower() == "host" for name, _ in headers):
            lines.append(f"Host: {self._host_header}")
        for name, value in headers:
            if not _TOKEN.fullmatch(name):
                raise httpcore2.LocalProtocolError(f"{name!r} is not a header name")
            if name.lower() in _FRAMING:
                raise httpcore2.LocalProtocolError(f"header {name!r} is the gateway's to set")
            if any(c in value for c in "\r\n\x00"):
                raise httpcore2.LocalProtocolError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (body or b"")

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        connect_seconds: float,
        read_seconds: float,
        limit: int,
    ) -> Answer:
        """One exchange; ``limit`` caps the body kept (the rest is not read)."""
        if self._closed:
            raise httpcore2.ConnectError("the target's connections are closed")
        raw = self.encode(method, target, headers, body)
        async with self._slots:
            conn = self._take_idle() or await self._connect(connect_seconds)
            try:
                async with asyncio.timeout(read_seconds):
                    answer = await conn.exchange(raw, head=method == "HEAD", limit=limit)
            except TimeoutError:
                conn.close()
                raise httpcore2.ReadTimeout(f"no answer from {self.host} within {read_seconds}s") from None
            except BaseException:
                conn.close()
                raise
            if conn.reusable and not self._closed and len(self._idle) < self._max_idle:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
            return answer

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
