"""Inbound authentication at the edge: each gateway's `auth` turned into a Principal.

The MCP endpoints call `Authenticator.principal` before the front sees a request.
A refusal is answered here, with the challenge MCP clients expect to start their
own OAuth flow: ``401`` and ``WWW-Authenticate: Bearer resource_metadata=...``
pointing at this gateway's RFC 9728 protected-resource metadata (served by
`protected_resource`), or ``403`` with ``error="insufficient_scope"`` and the
scopes needed. Verified tokens are remembered until they expire (bounded), so a
session's calls are checked once.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from typing import Any

import orjson
from starlette.types import Scope, Send

from gateway.config import ApiKeyAuth, Auth, JwtAuth, NoAuth
from gateway.core.types import Principal
from gateway.store import Store
from identity.inbound import (
    ApiKeyVerifier,
    Caller,
    ClaimRule,
    InsufficientScope,
    JwtVerifier,
    Refused,
    bearer,
)

KEY_PREFIX = "sb_key_"
METADATA_PREFIX = "/.well-known/oauth-protected-resource"
_REMEMBERED = 4096


def is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def base_url(scope: Scope, public_url: str | None) -> str:
    if public_url:
        return public_url.rstrip("/")
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1") or "127.0.0.1"
    return f"{scope.get('scheme', 'http')}://{host}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Authenticator:
    """Verifies callers for every gateway; verifiers are kept while a gateway's `auth` is unchanged."""

    def __init__(self, store: Store, public_url: str | None = None) -> None:
        self.store = store
        self.public_url = public_url
        self._jwt: dict[tuple[str, str], JwtVerifier] = {}
        self._keys = ApiKeyVerifier(self._lookup, KEY_PREFIX)
        self._seen: OrderedDict[tuple[str, str], tuple[float, Caller]] = OrderedDict()

    async def aclose(self) -> None:
        for verifier in self._jwt.values():
            await verifier.aclose()

    def resource(self, scope: Scope) -> str:
        """This request's MCP endpoint as a resource identifier (RFC 8707 / RFC 9728)."""
        return base_url(scope, self.public_url) + str(scope["path"])

    def verifier(self, gateway: str, auth: JwtAuth, resource: str) -> JwtVerifier:
        key = (gateway, auth.model_dump_json())
        verifier = self._jwt.get(key)
        if verifier is None:
            verifier = JwtVerifier(
                audiences=auth.audiences or [resource],
                discovery_url=auth.discovery_url,
                jwks_url=auth.jwks_url,
                issuers=auth.issuers,
                clients=auth.clients,
                scopes=auth.scopes,
                claim_rules=[
                    ClaimRule(
                        r.claim,
                        equals=r.equals,
                        contains=r.contains,
                        contains_any=tuple(r.contains_any) if r.contains_any is not None else None,
                    )
                    for r in auth.claims
                ],
                algorithms=auth.algorithms,
                tenant_claim=auth.tenant_claim,
            )
            for old in [k for k in self._jwt if k[0] == gateway]:
                self._jwt.pop(old)  # the gateway's auth changed: its old verifier goes
            self._jwt[key] = verifier
        return verifier

    async def _lookup(self, key_id: str) -> dict[str, Any] | None:
        record = await self.store.gateway_key(key_id)
        return {**record, "audience": f"gateway {record['gateway']!r}"} if record is not None else None

    async def principal(self, tenant: str, gateway: str, auth: Auth, scope: Scope) -> Principal:
        """The verified caller of one MCP request.

        Raises:
            Refused: not authenticated (401); InsufficientScope (403).
        """
        if b"access_token=" in scope.get("query_string", b""):
            raise Refused(
                "tokens in the URL are refused (they end up in logs); send `Authorization: Bearer <token>`",
                "invalid_request",
            )
        if isinstance(auth, NoAuth):
            if not is_loopback(scope):
                raise Refused(
                    f"gateway {gateway!r} has no authentication (auth: none), so it serves only clients on "
                    "this machine; configure `auth` (jwt or api_key) to serve others",
                    "invalid_request",
                )
            return Principal(tenant=tenant)
        credential = bearer(_header(scope, b"authorization"))
        if credential is None and isinstance(auth, ApiKeyAuth):
            credential = _header(scope, b"x-api-key")
        if credential is None:
            kind = "an API key" if isinstance(auth, ApiKeyAuth) else "a bearer token"
            raise Refused(f"gateway {gateway!r} needs {kind}: send `Authorization: Bearer ...`", "")
        remembered = self._seen.get((gateway, credential))
        if remembered is not None and remembered[0] > time.time():
            caller = remembered[1]
        else:
            caller = await self._verify(tenant, gateway, auth, credential, scope)
            expires = caller.claims.get("exp") if caller.claims else None
            until = float(expires) if isinstance(expires, int | float) else time.time() + 30.0
            self._seen[(gateway, credential)] = (until, caller)
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)
        if caller.tenant != tenant:
            raise Refused(f"this credential belongs to another tenant than gateway {gateway!r}'s")
        return Principal(
            tenant=caller.tenant,
            subject=caller.subject,
            client_id=caller.client_id,
            scopes=caller.scopes,
            claims=caller.claims,
            token=credential if isinstance(auth, JwtAuth) else None,
        )

    async def _verify(self, tenant: str, gateway: str, auth: Auth, credential: str, scope: Scope) -> Caller:
        if isinstance(auth, ApiKeyAuth):
            return await self._keys.verify(credential, audience=f"gateway {gateway!r}", scopes=auth.scopes)
        assert isinstance(auth, JwtAuth)
        return await self.verifier(gateway, auth, self.resource(scope)).verify(credential)

    def forget(self) -> None:
        """Drop remembered verifications (after a key is revoked)."""
        self._seen.clear()

    async def challenge(self, exc: Refused, scope: Scope, send: Send) -> None:
        """Answer a refused MCP request (401/403 with WWW-Authenticate, RFC 6750 / RFC 9728)."""
        metadata = base_url(scope, self.public_url) + METADATA_PREFIX + scope["path"]
        parts = [f'resource_metadata="{metadata}"']
        if exc.error:
            parts.append(f'error="{exc.error}"')
            parts.append('error_description="' + exc.description.replace('"', "'") + '"')
        if isinstance(exc, InsufficientScope) and exc.required:
            parts.append(f'scope="{" ".join(exc.required)}"')
        body = orjson.dumps({"error": exc.error or "unauthorized", "error_description": exc.description})
        await send(
            {
                "type": "http.response.start",
                "status": exc.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", ("Bearer " + ", ".join(parts)).encode("latin-1", "replace")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def protected_resource(self, gateway: str, auth: Auth, scope: Scope) -> dict[str, Any] | None:
        """RFC 9728 metadata for a gateway whose callers bring OAuth tokens (None otherwise)."""
        if not isinstance(auth, JwtAuth):
            return None
        resource_path = scope["path"][len(METADATA_PREFIX) :]
        resource = base_url(scope, self.public_url) + resource_path
        verifier = self.verifier(gateway, auth, resource)
        servers = list(auth.issuers)
        if not servers:
            try:
                issuer = (await verifier.metadata()).get("issuer")
            except Refused:
                issuer = None
            servers = [str(issuer)] if issuer else []
        out: dict[str, Any] = {
            "resource": resource,
            "authorization_servers": servers,
            "bearer_methods_supported": ["header"],
            "resource_name": f"Switchboard gateway {gateway}",
        }
        if auth.scopes:
            out["scopes_supported"] = list(auth.scopes)
        return out
