"""The one egress guard for fetches the gateway makes on a user's behalf.

OpenAPI documents by URL (and, later, OAuth metadata, agent cards, webhooks)
are fetched through here. Private, loopback, link-local (cloud metadata),
multicast and reserved addresses are refused unless the operator allows them
(``SWITCHBOARD_EGRESS_ALLOW``: CIDRs or host names). The check happens on the
resolved address, the connection goes to that same address (no second DNS
lookup to rebind), and every redirect is checked again.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import httpcore2
import httpx2

from gateway.core.errors import ConfigError
from gateway.settings import Settings

MAX_BYTES = 64 * 1024 * 1024
MAX_REDIRECTS = 5
TIMEOUT = 30.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(ConfigError):
    """The destination is not one the gateway may reach on a user's behalf."""


class Unresolvable(EgressRefused):
    """The name does not resolve (now): nothing is known of where it leads."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215
_COMPATIBLE = ipaddress.ip_network("::/96")  # IPv4-compatible (deprecated): ::a.b.c.d
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT IPv4-translated (RFC 2765)
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, still routed on some networks


def _embedded(address: Address) -> Address:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4), or the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64 or address in _TRANSLATED or (address in _COMPATIBLE and int(address) > 1):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def _allowed(host: str, address: Address, allow: Sequence[str]) -> bool:
    address = _embedded(address)
    for entry in allow:
        if entry == host:
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    if isinstance(address, ipaddress.IPv6Address) and (address in _NAT64_LOCAL or address in _SITE_LOCAL):
        return False
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Reach:
    """Where a tenant's upstream connections may go: global addresses, and what the operator
    allows (``SWITCHBOARD_EGRESS_ALLOW``). Checked on the address each connection is made to,
    after every DNS lookup, so a name that later resolves elsewhere (DNS rebinding) is caught.

    The operator's own targets have no ``Reach`` (None): they go where the operator says.
    """

    allow: tuple[str, ...] = ()

    def refusal(self, host: str, address: str) -> str | None:
        """Why connecting to ``address`` (for ``host``) is refused, or None."""
        try:
            parsed = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return f"{host} gave {address!r}, which is not an address"
        if _allowed(host, parsed, self.allow):
            return None
        return (
            f"{host} resolves to {parsed}, a private or reserved address, which a tenant's upstream "
            "may not be (the operator can allow it with SWITCHBOARD_EGRESS_ALLOW)"
        )

    def socket_factory(self, host: str) -> Callable[[tuple[Any, ...]], socket.socket]:
        """For aiohttp's connector: refuse to open a socket to an address not allowed."""

        def factory(addr_info: tuple[Any, ...]) -> socket.socket:
            family, kind, proto, _, sockaddr = addr_info
            problem = self.refusal(host, str(sockaddr[0]))
            if problem is not None:
                raise OSError(errno.EACCES, problem)
            return socket.socket(family=family, type=kind, proto=proto)

        return factory

    def transport(self, **options: Any) -> httpx2.AsyncHTTPTransport:
        """An httpx2 transport whose every connection is checked (MCP, token and key endpoints)."""
        transport = httpx2.AsyncHTTPTransport(**options)
        pool = transport._pool  # the connection pool httpx2 made, with its TLS and limits
        pool._network_backend = _GuardedBackend(self, pool._network_backend)
        return transport

    def httpx_transport(self, **options: Any) -> Any:
        """The same for ``httpx`` proper (the A2A SDK's client speaks it): an AsyncHTTPTransport."""
        import httpcore
        import httpx

        transport = httpx.AsyncHTTPTransport(**options)
        pool = transport._pool
        pool._network_backend = _GuardedBackend(self, pool._network_backend, httpcore)  # type: ignore[arg-type,assignment]
        return transport


def reach(egress_allow: tuple[str, ...] | None) -> Reach | None:
    """The Reach of a provider given its ``egress_allow`` (None: the operator's, unchecked)."""
    return None if egress_allow is None else Reach(egress_allow)


class _GuardedBackend(httpcore2.AsyncNetworkBackend):
    """Resolves the name itself, checks every address, and connects to a checked one (TLS still
    names the host: httpcore2 takes the server name from the request, not from here). ``core``:
    the module whose errors to raise (httpcore2, or httpcore under httpx proper)."""

    def __init__(self, reach: Reach, inner: httpcore2.AsyncNetworkBackend, core: Any = httpcore2) -> None:
        self.reach = reach
        self.inner = inner
        self.core = core

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):  # a slow DNS server counts against the connect timeout
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise self.core.ConnectTimeout(f"resolving {host} took longer than {timeout}s") from None
        except OSError as exc:
            raise self.core.ConnectError(f"cannot resolve {host}: {exc}") from None
        for *_, sockaddr in infos:
            problem = self.reach.refusal(host, str(sockaddr[0]))
            if problem is not None:
                raise self.core.ConnectError(problem)
        failure: Exception | None = None
        for address in dict.fromkeys(str(info[4][0]) for info in infos):  # each checked address in turn
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (self.core.ConnectError, self.core.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        socket_options: Any = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise self.core.ConnectError("a tenant's upstream cannot be a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def check(url: str, allow: list[str] | None = None) -> tuple[str, Address]:
    """The host and the address to connect to, or EgressRefused saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EgressRefused(f"{url}: only http(s) URLs with a host can be fetched")
    host = parts.hostname
    allow = Settings().egress_allow if allow is None else allow
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Unresolvable(f"{url}: cannot resolve {host}: {exc.strerror}") from None
    except (ValueError, UnicodeError) as exc:  # a port out of range, a label too long or empty
        raise EgressRefused(f"{url}: not a usable URL: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not _allowed(host, address, allow):
            raise EgressRefused(
                f"{url}: {host} resolves to {address}, a private or reserved address; "
                "allow it with SWITCHBOARD_EGRESS_ALLOW if this is intended"
            )
    return host, addresses[0]


def fetch(url: str, allow: list[str] | None = None) -> bytes:
    """GET ``url`` through the guard (synchronous: documents are loaded in a worker thread)."""
    with httpx2.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            host, address = check(url, allow)
            parts = urlsplit(url)
            literal = f"[{address}]" if address.version == 6 else str(address)
            pinned = parts._replace(netloc=f"{literal}:{parts.port}" if parts.port else literal).geturl()
            response = client.get(
                pinned,
                headers={"Host": parts.netloc, "Accept": "application/json, application/yaml, */*"},
                extensions={"sni_hostname": host},
            )
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code != 200:
                raise ConfigError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
            if len(response.content) > MAX_BYTES:
                raise ConfigError(f"{url}: the document is larger than {MAX_BYTES} bytes")
            return response.content
    raise EgressRefused(f"{url}: more than {MAX_REDIRECTS} redirects")
