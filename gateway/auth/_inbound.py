"""Inbound authentication at the edge: each gateway's `auth` turned into a Principal.

The MCP endpoints call `Authenticator.principal` before the front sees a request.
A refusal is answered here, with the challenge MCP clients expect to start their
own OAuth flow: ``401`` and ``WWW-Authenticate: Bearer resource_metadata=...``
pointing at this gateway's RFC 9728 protected-resource metadata (served by
`protected_resource`), or ``403`` with ``error="insufficient_scope"`` and the
scopes needed.

Verified credentials are remembered (bounded) so a session's calls are checked once: a
token until it expires, an API key for 30 s. A remembered verification counts only

- under the very ``auth`` configuration it passed: a gateway whose ``auth`` changes (a
  scope required, an issuer dropped) checks every credential again at once, and
- for API keys, while no key has been revoked since: revoking bumps a revocation epoch in
  the shared state (`Revocations`: this process's memory, or Redis shared by replicas),
  read before a remembered key is trusted, so a key revoked on one replica is refused on
  every other from the next request on. When Redis cannot be read, remembered keys are not
  trusted (they are looked up in the store again). Processes that share a store but no
  Redis forget remembered verifications when they see the store's revision move.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
import orjson
from starlette.types import Scope, Send

from gateway.capabilities import is_operator
from gateway.config import ApiKeyAuth, Auth, JwtAuth, NoAuth
from gateway.core.types import Principal
from gateway.egress import Reach
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

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)
KEY_PREFIX = "sb_key_"
METADATA_PREFIX = "/.well-known/oauth-protected-resource"
EPOCH_KEY = "sb:auth:revocations"
_REMEMBERED = 4096
_KEY_SECONDS = 30.0


class Revocations:
    """How many key revocations there have been: this process's count, or a counter in Redis
    that every replica reads (so one replica's revocation reaches all of them)."""

    def __init__(self, redis_url: str | None = None) -> None:
        self._client: Redis | None = None
        if redis_url:
            import redis.asyncio as redis  # only when Redis is configured

            self._client = redis.from_url(redis_url)
        self._local = 0

    async def epoch(self) -> int | None:
        """The current count; None when it cannot be known (Redis unreachable)."""
        if self._client is None:
            return self._local
        from redis import RedisError  # imported with the client

        try:
            value = await self._client.get(EPOCH_KEY)
            return int(value or 0)
        except (RedisError, OSError, ValueError) as exc:
            logger.warning("cannot read key revocations from Redis (%s); checking keys in the store", exc)
            return None

    async def revoked(self) -> None:
        """Count a revocation, for every process that shares this state."""
        self._local += 1
        if self._client is None:
            return
        from redis import RedisError  # imported with the client

        try:
            await self._client.incr(EPOCH_KEY)
        except (RedisError, OSError) as exc:
            logger.error(
                "a key was revoked but Redis could not be told (%s): other replicas may accept it for up "
                "to %g s, or until they see the store change",
                exc,
                _KEY_SECONDS,
            )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


@dataclass(frozen=True, slots=True)
class _Remembered:
    until: float
    caller: Caller
    auth: Auth  # the configuration it passed under
    epoch: int | None  # API keys: the revocation epoch it was checked at


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

    def __init__(
        self,
        store: Store,
        public_url: str | None = None,
        revocations: Revocations | None = None,
        egress_allow: Sequence[str] = (),
    ) -> None:
        """``egress_allow``: beyond public addresses, what a tenant's key endpoints may be."""
        self.egress_allow = tuple(egress_allow)
        self.store = store
        self.public_url = public_url
        self.revocations = revocations or Revocations()
        self._jwt: dict[tuple[str, str, str, tuple[str, ...]], JwtVerifier] = {}
        self._keys = ApiKeyVerifier(self._lookup, KEY_PREFIX)
        self._seen: OrderedDict[tuple[str, str, str], _Remembered] = OrderedDict()

    async def aclose(self) -> None:
        for verifier in self._jwt.values():
            await verifier.aclose()
        await self.revocations.aclose()

    def resource(self, scope: Scope) -> str:
        """This request's MCP endpoint as a resource identifier (RFC 8707 / RFC 9728)."""
        return base_url(scope, self.public_url) + str(scope["path"])

    def verifier(self, tenant: str, gateway: str, auth: JwtAuth, resource: str) -> JwtVerifier:
        # The audience a token must name is part of the verifier: a verifier made for one request's
        # resource (a Host header) must never judge tokens for another.
        audiences = tuple(auth.audiences) or (resource,)
        key = (tenant, gateway, auth.model_dump_json(), audiences)
        verifier = self._jwt.get(key)
        if verifier is None:
            http = None
            if not is_operator(tenant):  # a tenant's discovery and JWKS fetches: public addresses only
                transport = Reach(self.egress_allow).transport()
                http = httpx2.AsyncClient(timeout=httpx2.Timeout(10.0), transport=transport)
            verifier = JwtVerifier(
                http=http,
                audiences=list(audiences),
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
                default_tenant=tenant,  # without a tenant claim, a gateway's tokens are its tenant's
            )
            for old in [k for k in self._jwt if k[:2] == (tenant, gateway)]:
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
        caller = await self._remembered(tenant, gateway, auth, credential, scope)
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

    async def _remembered(
        self, tenant: str, gateway: str, auth: Auth, credential: str, scope: Scope
    ) -> Caller:
        """The credential's caller: remembered when it passed under this very ``auth`` and (for
        keys) no key was revoked since; else verified now."""
        key = (tenant, gateway, credential)
        epoch = await self.revocations.epoch() if isinstance(auth, ApiKeyAuth) else None
        seen = self._seen.get(key)
        if (
            seen is not None
            and seen.until > time.time()
            and (seen.auth is auth or seen.auth == auth)
            and (not isinstance(auth, ApiKeyAuth) or (epoch is not None and seen.epoch == epoch))
        ):
            self._seen.move_to_end(key)
            return seen.caller
        caller = await self._verify(tenant, gateway, auth, credential, scope)
        expires = caller.claims.get("exp") if caller.claims else None
        until = float(expires) if isinstance(expires, int | float) else time.time() + _KEY_SECONDS
        self._seen[key] = _Remembered(until, caller, auth, epoch)
        self._seen.move_to_end(key)
        while len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
        return caller

    async def _verify(self, tenant: str, gateway: str, auth: Auth, credential: str, scope: Scope) -> Caller:
        if isinstance(auth, ApiKeyAuth):
            return await self._keys.verify(credential, audience=f"gateway {gateway!r}", scopes=auth.scopes)
        assert isinstance(auth, JwtAuth)
        return await self.verifier(tenant, gateway, auth, self.resource(scope)).verify(credential)

    def forget(self) -> None:
        """Drop this process's remembered verifications (the store changed under it)."""
        self._seen.clear()

    async def revoked(self) -> None:
        """A key was revoked: no process trusts a remembered key any longer."""
        self._seen.clear()
        await self.revocations.revoked()

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

    async def protected_resource(
        self, tenant: str, gateway: str, auth: Auth, scope: Scope
    ) -> dict[str, Any] | None:
        """RFC 9728 metadata for a gateway whose callers bring OAuth tokens (None otherwise)."""
        if not isinstance(auth, JwtAuth):
            return None
        resource_path = scope["path"][len(METADATA_PREFIX) :]
        resource = base_url(scope, self.public_url) + resource_path
        verifier = self.verifier(tenant, gateway, auth, resource)
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
