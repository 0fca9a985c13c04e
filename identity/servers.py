"""Talking to an authorization server, which a tenant may name: every request is whole within an
overall deadline and read no further than a cap (a server that drips its answer, or sends a huge
one, is refused, never waited on), and metadata is discovered only from the issuer it names."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import orjson

from identity.inbound import _issuer_of

__all__ = ["FETCH_BYTES", "FETCH_SECONDS", "CredentialError", "discover", "fetch"]

FETCH_SECONDS = 15.0
"""The overall deadline of one request to an authorization server (connecting, sending, reading the
whole answer), however slowly it drips its answer."""
FETCH_BYTES = 1 << 20
"""The most of an authorization server's answer that is read (metadata and tokens are far smaller)."""


class CredentialError(Exception):
    """A credential cannot be had (misconfiguration, the provider refused)."""


async def fetch(
    http: httpx2.AsyncClient,
    method: str,
    url: str,
    *,
    seconds: float = FETCH_SECONDS,
    limit: int = FETCH_BYTES,
    **kwargs: Any,
) -> tuple[int, bytes]:
    """An authorization server's answer to one request: (status, body), whole within ``seconds``
    and at most ``limit`` bytes.

    Raises:
        CredentialError: the server cannot be reached, took longer than ``seconds`` in all, or
            answered more than ``limit`` bytes.
    """
    try:
        with anyio.fail_after(seconds):
            async with http.stream(method, url, **kwargs) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise CredentialError(f"{url} answered more than {limit} bytes: refused")
                return response.status_code, bytes(body)
    except TimeoutError:
        raise CredentialError(f"{url} did not answer in full within {seconds:g} s: refused") from None
    except httpx2.HTTPError as exc:
        raise CredentialError(f"{url} cannot be reached: {exc}") from None


async def discover(
    http: httpx2.AsyncClient, discovery_url: str, *, seconds: float = FETCH_SECONDS
) -> dict[str, str]:
    """An authorization server's endpoints from its metadata document (OIDC discovery or RFC 8414):
    ``issuer``, ``authorization_endpoint`` (when it has one), ``token_endpoint``.

    Raises:
        CredentialError: the document cannot be fetched (within ``seconds`` in all, at most
            `FETCH_BYTES`), is not metadata, lacks a token endpoint, or names another issuer
            than its URL was built from (a copied or hijacked document must not choose where
            client secrets and codes are sent).
    """
    try:
        status, content = await fetch(
            http, "GET", discovery_url, seconds=seconds, headers={"Accept": "application/json"}
        )
        if not 200 <= status < 300:
            raise CredentialError(f"HTTP {status}")
        doc = orjson.loads(content)
    except (CredentialError, orjson.JSONDecodeError) as exc:
        raise CredentialError(f"the metadata at {discovery_url} cannot be read: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("token_endpoint"), str):
        raise CredentialError(f"the document at {discovery_url} is not authorization server metadata")
    issuer, expected = str(doc.get("issuer") or ""), _issuer_of(discovery_url)
    if expected is not None and issuer.rstrip("/") != expected:
        raise CredentialError(f"the metadata at {discovery_url} names issuer {issuer!r}, not {expected!r}")
    keys = ("issuer", "authorization_endpoint", "token_endpoint")
    return {k: str(doc[k]) for k in keys if isinstance(doc.get(k), str) and doc[k]}
