"""Workload identity: the HTTP API through which agents the platform hosts get credentials.

Shaped like AgentCore Identity's GetWorkloadAccessToken(ForUserId) and
GetResourceOauth2Token / GetResourceApiKey:

``POST /identity/v1/workload-token`` (the platform, with the admin key)
    ``{"workload": "triage-agent", "user_id": "alice"}`` -> ``{"workload_token": ...}``.
    The token is sealed (AES-GCM): tenant, workload, user and a one-hour expiry; nothing
    is stored.

``POST /identity/v1/resource-token`` (the agent, with its workload token)
    ``{"gateway": "default", "provider": "github"}`` with ``Authorization: Bearer sb_wl_...``
    (or ``"workload_token"`` in the body) -> ``{"access_token": ...}`` (OAuth providers),
    ``{"api_key": ...}`` (key providers), or ``{"authorization_url": ...}`` when the user
    has not consented yet (3LO): the agent shows the link, the user signs in and consents
    (identity.consent), and the next request gets the token.

A workload token only ever yields its own tenant's and its own user's credentials.
Callers are authenticated before their body is read when the credential is a header (the
admin key always is), and no body is read past `BODY_LIMIT` (413). The consent routes
(identity.consent) are served with these. This module never imports the gateway: the
gateway passes in how to check the admin key, how to find a gateway's providers and who
a gateway credential belongs to.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from identity.consent import ProvidersOf, UserOf, consent_routes
from identity.outbound import Broker, ConsentRequired, CredentialError

WORKLOAD_SECONDS = 3600
BODY_LIMIT = 16384  # a few names and a workload token
AdminTenant = Callable[[str | None], Awaitable[str | None]]
"""Authorization header -> the tenant an admin key grants, or None."""


class WorkloadTokens:
    """Seals and opens workload tokens."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(b"switchboard workload token\x00" + key).digest())

    def issue(
        self,
        tenant: str,
        workload: str,
        user: str | None,
        *,
        user_token: str | None = None,
        vault_only: bool = False,
    ) -> str:
        """A token for ``workload`` acting for ``user`` (None: for itself).

        ``vault_only``: it reaches the tenant's token vault only (AgentCore's GetResourceApiKey and
        GetResourceOauth2Token), never a gateway's credentials through ``/identity/v1/resource-token``:
        whoever may mint it (an AgentCore access key) is not a gateway's administrator.

        ``user_token``: the user's own verified access token, sealed in (never readable outside)
        when the workload may exchange it for an upstream's token on the user's behalf (RFC 8693;
        AgentCore's GetWorkloadAccessTokenForJWT, then ON_BEHALF_OF_TOKEN_EXCHANGE).
        """
        doc: dict[str, Any] = {"t": tenant, "w": workload, "u": user, "exp": time.time() + WORKLOAD_SECONDS}
        if user_token is not None:
            doc["j"] = user_token
        if vault_only:
            doc["v"] = True
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, orjson.dumps(doc), b"workload")
        return "sb_wl_" + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open(self, token: str) -> dict[str, Any]:
        try:
            body = token.removeprefix("sb_wl_")
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            doc = orjson.loads(self._aead.decrypt(raw[:12], raw[12:], b"workload"))
        except (ValueError, InvalidTag, orjson.JSONDecodeError):
            raise CredentialError("not a workload token of this platform") from None
        if not isinstance(doc, dict) or float(doc.get("exp", 0)) < time.time():
            raise CredentialError("the workload token has expired; ask for a new one")
        return doc


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


class _TooLarge(Exception):
    pass


async def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read no further than `BODY_LIMIT`.

    Raises:
        _TooLarge: the body is (or says it is) larger than the limit.
        ValueError: it is not a JSON object.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > BODY_LIMIT:
        raise _TooLarge
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > BODY_LIMIT:
            raise _TooLarge
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise ValueError("send a JSON object")
    return body


_TOO_LARGE = f"the request body is larger than {BODY_LIMIT} bytes; send only the fields this endpoint takes"


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    if value[:7].lower() != "bearer ":
        return None
    return value[7:].strip() or None


@dataclass(frozen=True, slots=True)
class IdentityServices:
    """What the API needs from the process that serves it."""

    broker: Broker
    tokens: WorkloadTokens
    admin_tenant: AdminTenant
    providers: ProvidersOf
    user_of: UserOf
    """Who a gateway's own credential belongs to (the consent sign-in)."""


def identity_routes(services: Callable[[], IdentityServices]) -> list[Route]:
    """The workload identity API's routes; ``services`` gives the running process's parts."""

    async def workload_token(request: Request) -> JSONResponse:
        tenant = await services().admin_tenant(request.headers.get("authorization"))
        if tenant is None:
            return _error(401, "send the platform's admin key: `Authorization: Bearer sb_admin_...`")
        try:
            body = await _body(request)
        except _TooLarge:
            return _error(413, _TOO_LARGE)
        except ValueError as exc:
            return _error(400, str(exc))
        workload, user = body.get("workload"), body.get("user_id")
        if not isinstance(workload, str) or not workload:
            return _error(422, "`workload` (the agent's name) is required")
        if user is not None and (not isinstance(user, str) or not user):
            return _error(422, "`user_id` must be a non-empty string when given")
        token = services().tokens.issue(tenant, workload, user)
        return JSONResponse({"workload_token": token, "expires_in": WORKLOAD_SECONDS})

    async def resource_token(request: Request) -> JSONResponse:
        parts = services()
        header = _bearer(request)
        claims: dict[str, Any] | None = None
        if header is not None:  # authenticated before the body is read
            try:
                claims = parts.tokens.open(header)
            except CredentialError as exc:
                return _error(401, str(exc))
        try:
            body = await _body(request)
        except _TooLarge:
            return _error(413, _TOO_LARGE)
        except ValueError as exc:
            return _error(400, str(exc))
        if claims is None:
            try:
                claims = parts.tokens.open(str(body.get("workload_token") or ""))
            except CredentialError as exc:
                return _error(
                    401, f"{exc}: send `Authorization: Bearer sb_wl_...` (or `workload_token` in the body)"
                )
        if claims.get("v"):
            return _error(
                403,
                "this workload token was issued through the AgentCore API: it reaches the tenant's token "
                "vault (GetResourceApiKey, GetResourceOauth2Token), not a gateway's credentials",
            )
        gateway, name = body.get("gateway", "default"), body.get("provider")
        found = parts.providers(str(claims["t"]), str(gateway))
        spec = found.get(str(name)) if found is not None else None
        if spec is None:
            return _error(404, f"gateway {gateway!r} has no credential provider {name!r}")
        user = claims.get("u")
        if user is None and spec.kind == "oauth2_authorization_code":
            return _error(422, "this provider acts for a user: ask for a workload token with `user_id`")
        try:
            secret = await parts.broker.secret(
                str(claims["t"]), str(user or "*"), spec, tool=f"workload:{claims['w']}"
            )
        except ConsentRequired as exc:
            return JSONResponse({"authorization_url": exc.url})
        except CredentialError as exc:
            return _error(502, str(exc))
        key = "api_key" if spec.kind == "api_key" else "access_token"
        return JSONResponse({key: secret})

    return [
        Route("/identity/v1/workload-token", workload_token, methods=["POST"]),
        Route("/identity/v1/resource-token", resource_token, methods=["POST"]),
        *consent_routes(services),
    ]
