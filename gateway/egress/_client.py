"""Outbound HTTP for OpenAPI, HTTP-function and HTTP-interceptor targets, on aiohttp (ADR 0026).

One ``HttpClient`` per target and origin: a keep-alive aiohttp session whose answers are parsed
by llhttp, the parser uvicorn uses on the inbound side. What it adds to a bare session, and why:

- A request is checked before it is sent: the method is a token, the URL is plain visible ASCII
  on the client's own origin (a URL made from an agent's cursor must not start a second request
  or reach another host), header names are tokens, values hold no line break, and the framing
  headers (Content-Length, Transfer-Encoding, Connection) are the gateway's to set.
- One deadline covers connecting, sending and reading the whole body; the body is kept up to a
  cap, counted after decompression (a gzip bomb is cut, not inflated); answer headers are capped
  in number and size while the parser reads them.
- TLS is verified against the system's trust store (``SSL_CERT_FILE``/``SSL_CERT_DIR``
  honoured) or, when the target names one, its own CA bundle; a client certificate for mTLS.
- ``HTTP(S)_PROXY``/``NO_PROXY`` from the environment, looked up once (one origin per client).
- No cookie jar: a cookie one caller's answer set never rides on another caller's request.
- Redirects are followed for GET and HEAD within the origin only (a request carries the
  target's credentials: they never go to another origin); any other comes back as it is.
- An idempotent request that meets a keep-alive connection the peer has just closed is sent
  again once on a new connection (aiohttp's retry, RFC 9112 9.3.1); a POST is never sent twice.
- Failures are the gateway's error tree: a request that cannot be sent is a
  ``ToolExecutionError``; no connection, no answer in time or a broken answer is
  ``UpstreamUnavailable`` (callers retry only those, and only for idempotent operations).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from gateway.config import TlsFiles
from gateway.core.errors import ConfigError, ToolExecutionError, UpstreamUnavailable
from gateway.egress._guard import Reach

MAX_HEADERS = 100
MAX_FIELD_BYTES = 16 * 1024  # one answer header (name and value)
MAX_REDIRECTS = 5
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_URL = re.compile(r"[\x21-\x7e]+")  # visible ASCII: a percent-encoded URL
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 64 * 1024


@dataclass(slots=True)
class Answer:
    """An upstream's answer: the body kept (at most the limit asked) and whether more came."""

    status: int
    reason: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    truncated: bool


def tls_context(tls: TlsFiles | None, field: str) -> ssl.SSLContext:
    """The TLS context of one target; ConfigError names the field and file that cannot be used.

    Without a CA bundle the system's trust store is used (OpenSSL's default paths, which
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` override)."""
    try:
        if tls is None or tls.ca_bundle is None:
            context = ssl.create_default_context()
        else:
            context = ssl.create_default_context(cafile=tls.ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{field}.ca_bundle: cannot load {tls.ca_bundle if tls else ''}: {exc}") from None
    if tls is not None and tls.client_cert is not None:
        try:
            context.load_cert_chain(tls.client_cert, tls.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{field}.client_cert: cannot load {tls.client_cert} with {tls.client_key}: {exc}"
            ) from None
    return context


class HttpClient:
    """Keep-alive HTTP/1.1 to one origin (``scheme://host[:port]``).

    Open it with ``async with`` (or ``await client.open()`` / ``await client.aclose()``)."""

    def __init__(
        self,
        origin: str,
        *,
        tls: TlsFiles | None = None,
        field: str = "tls",
        context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        keepalive_seconds: float = 30.0,
        reach: Reach | None = None,
    ) -> None:
        """``reach``: a tenant's upstream; every connection's address is checked against it
        (after each DNS lookup, so rebinding is caught), and the environment's proxy is not
        used for it."""
        self.origin = URL(origin).origin()
        self._reach = reach
        self._tls = tls
        self._field = field
        self._context = context  # made at load already (see tls_context)
        self._max_connections = max_connections
        self._keepalive = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._proxy: URL | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None

    async def open(self) -> None:
        """Load the TLS files (in a worker thread) and start the pool."""
        context = self._context
        if context is None and self.origin.scheme == "https":
            context = await asyncio.to_thread(tls_context, self._tls, self._field)
        self._proxy, self._proxy_auth = None, None
        guard = None
        if self._reach is not None:
            # A tenant's upstream: connected directly, every address checked. (Through the
            # environment's proxy the address would be the proxy's to choose, and most proxies
            # reach private and metadata addresses.)
            guard = self._reach.socket_factory(self.origin.host or "")
        else:
            with contextlib.suppress(LookupError):  # none set for this scheme, or NO_PROXY names it
                self._proxy, self._proxy_auth = get_env_proxy_for_url(self.origin)
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=self._keepalive,
            ssl=context if context is not None else True,
            socket_factory=guard,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
            max_headers=MAX_HEADERS,
            max_field_size=MAX_FIELD_BYTES,
            max_line_size=MAX_FIELD_BYTES,
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def check(self, method: str, url: str, headers: list[tuple[str, str]]) -> URL:
        """The URL to send to, or ToolExecutionError saying why this request cannot be sent."""
        problem = _problem(method, url, headers)
        parsed = None
        if problem is None:
            try:
                parsed = URL(url, encoded=True)
                if not parsed.absolute or parsed.origin() != self.origin:
                    parsed, problem = None, f"its URL is not on {self.origin}"
            except ValueError:
                problem = "its URL is not a URL"
        if parsed is None:
            raise ToolExecutionError(f"the request cannot be sent: {problem}")
        return parsed

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        connect_seconds: float,
        deadline_seconds: float,
        limit: int,
        follow_redirects: bool = False,
    ) -> Answer:
        """One exchange (and the redirects it may follow); ``limit`` caps the body kept."""
        target = self.check(method, url, headers)
        if self._session is None:
            raise UpstreamUnavailable(f"the connections to {self.origin} are closed")
        where = f"{self.origin.host}:{self.origin.port}"
        follow = follow_redirects and method in ("GET", "HEAD")
        timeout = self._timeouts.get(connect_seconds)
        if timeout is None:
            timeout = self._timeouts[connect_seconds] = aiohttp.ClientTimeout(sock_connect=connect_seconds)
        try:
            async with asyncio.timeout(deadline_seconds):
                for _ in range(MAX_REDIRECTS + 1):
                    async with self._session.request(
                        method,
                        target,
                        headers=headers,
                        data=body,
                        allow_redirects=False,
                        proxy=self._proxy,
                        proxy_auth=self._proxy_auth,
                        timeout=timeout,
                    ) as response:
                        location = response.headers.get("Location") if follow else None
                        if location is not None and response.status in _REDIRECTS:
                            following = _same_origin(target, location)
                            if following is not None:
                                target = following
                                continue
                        kept, truncated = await _read(response, limit)
                        if truncated:
                            response.close()  # the rest is not read: the connection is not reused
                        return Answer(
                            response.status,
                            response.reason or "",
                            list(response.raw_headers),
                            kept,
                            truncated,
                        )
                raise UpstreamUnavailable(f"{self.origin} redirected more than {MAX_REDIRECTS} times")
        except aiohttp.ConnectionTimeoutError:  # (a TimeoutError too: first)
            raise UpstreamUnavailable(f"no connection to {where} within {connect_seconds}s") from None
        except TimeoutError:
            raise UpstreamUnavailable(f"no answer from {where} within {deadline_seconds}s") from None
        except aiohttp.ClientSSLError as exc:
            raise UpstreamUnavailable(f"TLS with {where} failed: {exc}") from None
        except aiohttp.ClientProxyConnectionError as exc:
            raise UpstreamUnavailable(f"cannot reach {where} through the proxy: {exc.os_error}") from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamUnavailable(f"cannot connect to {where}: {exc.os_error}") from None
        except aiohttp.ClientResponseError as exc:
            raise UpstreamUnavailable(f"the answer of {where} is not HTTP/1.1: {exc.message}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError):
            raise UpstreamUnavailable(f"{where} closed the connection before answering in full") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{where}: {type(exc).__name__}: {exc}") from None


def _problem(method: str, url: str, headers: list[tuple[str, str]]) -> str | None:
    if not _TOKEN.fullmatch(method):
        return f"{method!r} is not an HTTP method"
    if not _URL.fullmatch(url):
        return "its URL holds characters a URL cannot"
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            return f"{name!r} is not a header name"
        if name.lower() in _FRAMING:
            return f"header {name!r} is the gateway's to set"
        if any(c in value for c in "\r\n\x00"):
            return f"header {name!r} holds a line break"
    return None


def _same_origin(current: URL, location: str) -> URL | None:
    """Where a redirect leads, if it stays on the origin and is a plain URL; else None."""
    if not _URL.fullmatch(location):
        return None
    try:
        following = current.join(URL(location, encoded=True))
    except ValueError:
        return None
    return following if following.origin() == current.origin() else None


async def _read(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The body up to ``limit`` bytes (decompressed) and whether there was more."""
    kept = bytearray()
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        room = limit - len(kept)
        if len(chunk) > room:
            kept += chunk[:room]
            return bytes(kept), True
        kept += chunk
    return bytes(kept), False
