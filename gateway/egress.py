"""The one egress guard for fetches the gateway makes on a user's behalf.

OpenAPI documents by URL (and, later, OAuth metadata, agent cards, webhooks)
are fetched through here. Private, loopback, link-local (cloud metadata),
multicast and reserved addresses are refused unless the operator allows them
(``SWITCHBOARD_EGRESS_ALLOW``: CIDRs or host names). The check happens on the
resolved address, the connection goes to that same address (no second DNS
lookup to rebind), and every redirect is checked again.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import httpx2

from gateway.core.errors import ConfigError
from gateway.settings import Settings

MAX_BYTES = 64 * 1024 * 1024
MAX_REDIRECTS = 5
TIMEOUT = 30.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(ConfigError):
    """The destination is not one the gateway may reach on a user's behalf."""


def _allowed(host: str, address: Address, allow: list[str]) -> bool:
    for entry in allow:
        if entry == host:
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return address.is_global and not address.is_multicast


def check(url: str, allow: list[str] | None = None) -> tuple[str, Address]:
    """The host and the address to connect to, or EgressRefused saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EgressRefused(f"{url}: only http(s) URLs with a host can be fetched")
    host = parts.hostname
    allow = Settings().egress_allow if allow is None else allow
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise EgressRefused(f"{url}: cannot resolve {host}: {exc.strerror}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if not _allowed(host, mapped or address, allow):
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
