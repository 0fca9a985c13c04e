"""Inbound authentication: who is calling, from a bearer token or an API key.

`JwtVerifier` checks an access token from any OIDC provider: the signature
against the issuer's JWKS (fetched through discovery, cached, fetched again when
a token names a key we do not have, at most once per ``refetch_seconds``), the
algorithm (asymmetric only: ``none`` and HMAC are refused), ``exp``/``nbf``, the
issuer, the audience (RFC 8707: only tokens issued for this resource), the client,
the scopes and claim rules. What passes becomes a `Caller`.

Refusals are `Refused` (HTTP 401, ``invalid_token``/``invalid_request``) or
`InsufficientScope` (HTTP 403), each saying what was wrong; the edge turns them
into ``WWW-Authenticate`` challenges.

This module never imports ``gateway``: the gateway wires it in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2
import orjson

if TYPE_CHECKING:  # joserfc is imported by the first JWT checked, not at start-up
    from joserfc.jwk import KeySet

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified caller."""

    tenant: str
    subject: str
    client_id: str | None = None
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)


class Refused(Exception):
    """The request is not authenticated (HTTP 401)."""

    status = 401

    def __init__(self, description: str, error: str = "invalid_token") -> None:
        super().__init__(description)
        self.description = description
        self.error = error


class InsufficientScope(Refused):
    """Authenticated, but the token lacks scopes this resource needs (HTTP 403)."""

    status = 403

    def __init__(self, required: Sequence[str], description: str) -> None:
        super().__init__(description, "insufficient_scope")
        self.required = tuple(required)


@dataclass(frozen=True, slots=True)
class ClaimRule:
    """A condition on one claim: ``equals`` a value, ``contains`` one, or ``contains_any`` of several."""

    claim: str
    equals: Any = None
    contains: Any = None
    contains_any: tuple[Any, ...] | None = None

    def holds(self, claims: Mapping[str, Any]) -> bool:
        value = claims.get(self.claim)
        if self.equals is not None and value != self.equals:
            return False
        items = value.split() if isinstance(value, str) else value if isinstance(value, list) else [value]
        if self.contains is not None and self.contains not in items:
            return False
        return not (self.contains_any is not None and not any(v in items for v in self.contains_any))

    def describe(self) -> str:
        if self.equals is not None:
            return f"{self.claim} == {self.equals!r}"
        if self.contains is not None:
            return f"{self.claim} contains {self.contains!r}"
        return f"{self.claim} contains any of {list(self.contains_any or ())!r}"


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _segment(token: str, index: int) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise Refused("the bearer token is not a JWT (three dot-separated parts)")
    try:
        raw = base64.urlsafe_b64decode(parts[index] + "=" * (-len(parts[index]) % 4))
        value = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise Refused("the bearer token is not a well-formed JWT") from None
    if not isinstance(value, dict):
        raise Refused("the bearer token is not a well-formed JWT")
    return value


def _issuer_of(discovery_url: str) -> str | None:
    """The issuer a well-known metadata URL was built from, or None for another kind of URL."""
    parts = urlsplit(discovery_url)
    oidc, oauth = "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"
    if parts.path.endswith(oidc):
        path = parts.path[: -len(oidc)]
    elif parts.path.startswith(oauth):
        path = parts.path[len(oauth) :]
    else:
        return None
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")).rstrip("/")


class JwtVerifier:
    """Verifies access tokens from one OIDC provider.

    Args:
        audiences: Accepted ``aud`` values; a token must name at least one (RFC 8707).
        discovery_url: The provider's ``.well-known/openid-configuration`` (or RFC 8414) URL.
        jwks_url: The JWKS, when there is no discovery document.
        issuers: Accepted ``iss`` values (default: the discovery document's issuer).
        clients: Accepted clients (``azp`` or ``client_id``); empty accepts any.
        scopes: Scopes every token must carry (``scope`` or ``scp``).
        claim_rules: Further conditions on claims.
        tenant_claim: The claim naming the caller's tenant (default: ``default_tenant``).
        http: The HTTP client for discovery and JWKS.
    """

    def __init__(
        self,
        *,
        audiences: Sequence[str],
        discovery_url: str | None = None,
        jwks_url: str | None = None,
        issuers: Sequence[str] = (),
        clients: Sequence[str] = (),
        scopes: Sequence[str] = (),
        claim_rules: Sequence[ClaimRule] = (),
        algorithms: Sequence[str] = ASYMMETRIC,
        tenant_claim: str | None = None,
        default_tenant: str = "default",
        leeway_seconds: int = 60,
        refetch_seconds: float = 30.0,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        if not discovery_url and not jwks_url:
            raise ValueError("a JWT verifier needs `discovery_url` or `jwks_url`")
        unsafe = [a for a in algorithms if a not in ASYMMETRIC]
        if unsafe:
            raise ValueError(
                f"algorithms {unsafe} are not allowed: only asymmetric ones ({', '.join(ASYMMETRIC)})"
            )
        self.audiences = tuple(audiences)
        self.discovery_url = discovery_url
        self.jwks_url = jwks_url
        self.issuers = tuple(issuers)
        self.clients = frozenset(clients)
        self.scopes = tuple(scopes)
        self.claim_rules = tuple(claim_rules)
        self.algorithms = tuple(algorithms)
        self.tenant_claim = tenant_claim
        self.default_tenant = default_tenant
        self.leeway = leeway_seconds
        self.refetch_seconds = refetch_seconds
        self._http = http or httpx2.AsyncClient(timeout=httpx2.Timeout(10.0))
        self._keys: KeySet | None = None
        self._fetched_at = -float("inf")
        self._lock = anyio.Lock()
        self.issuer: str | None = None
        self.fetches = 0  # JWKS fetches so far (for operators and tests)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (fetched once), or {} without one."""
        if not self.discovery_url:
            return {}
        response = await self._get(self.discovery_url, "discovery document")
        issuer = str(response.get("issuer") or "") or None
        expected = _issuer_of(self.discovery_url)
        if expected is not None and (issuer or "").rstrip("/") != expected:
            # RFC 8414 3.3 / OIDC Discovery 4.3: a document naming another issuer is not this
            # issuer's (a copied or hijacked document must not choose whose tokens we accept).
            raise Refused(
                f"cannot check the token: the discovery document at {self.discovery_url} names issuer "
                f"{issuer!r}, not {expected!r}; fix the gateway's discovery_url or the provider's metadata"
            )
        self.issuer = issuer
        return response

    async def _get(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            body = orjson.loads(response.content)
        except (httpx2.HTTPError, orjson.JSONDecodeError) as exc:
            raise Refused(f"cannot check the token: the provider's {what} at {url} failed: {exc}") from None
        if not isinstance(body, dict):
            raise Refused(f"cannot check the token: the identity provider's {what} at {url} is not JSON")
        return body

    async def _keyset(self, kid: str | None) -> KeySet:
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        async with self._lock:
            known = self._keys is not None and (kid is None or any(k.kid == kid for k in self._keys.keys))
            fresh = time.monotonic() - self._fetched_at < self.refetch_seconds
            if self._keys is not None and (known or fresh):
                return self._keys
            url = self.jwks_url
            if url is None:
                url = str((await self.metadata()).get("jwks_uri") or "")
                if not url:
                    raise Refused("cannot check the token: the discovery document names no jwks_uri")
            body = await self._get(url, "JWKS")
            try:
                self._keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError) as exc:
                raise Refused(f"cannot check the token: the JWKS at {url} is not valid: {exc}") from None
            self._fetched_at = time.monotonic()
            self.fetches += 1
            return self._keys

    async def verify(self, token: str) -> Caller:
        header = _segment(token, 0)
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise Refused(f"tokens signed with {alg!r} are refused; accepted: {', '.join(self.algorithms)}")
        keys = await self._keyset(header.get("kid"))
        from joserfc import jwt
        from joserfc.errors import JoseError

        try:
            decoded = jwt.decode(token, keys, algorithms=list(self.algorithms))
        except JoseError as exc:
            if header.get("kid") and not any(k.kid == header.get("kid") for k in keys.keys):
                kid = header.get("kid")
                raise Refused(f"the token's signing key {kid!r} is not in the issuer's JWKS") from None
            raise Refused(f"the token's signature does not verify: {exc.description or exc}") from None
        return self._check(dict(decoded.claims))

    def _check(self, claims: dict[str, Any]) -> Caller:
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise Refused("the token has no expiry (exp); tokens without one are refused")
        if exp + self.leeway < now:
            raise Refused("the token has expired; get a new one")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf - self.leeway > now:
            raise Refused("the token is not valid yet (nbf)")
        issuers = self.issuers or ((self.issuer,) if self.issuer else ())
        if issuers and claims.get("iss") not in issuers:
            raise Refused(f"tokens from issuer {claims.get('iss')!r} are not accepted here")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else list(aud) if isinstance(aud, list) else []
        if not set(auds) & set(self.audiences):
            raise Refused(
                f"the token was issued for {auds or 'no audience'}, not for this gateway "
                f"({', '.join(self.audiences)}); ask for a token with resource={self.audiences[0]}"
            )
        client = claims.get("azp") or claims.get("client_id")
        if self.clients and client not in self.clients:
            raise Refused(f"client {client!r} is not allowed to call this gateway")
        scopes = _scopes(claims)
        missing = [s for s in self.scopes if s not in scopes]
        if missing:
            raise InsufficientScope(self.scopes, f"the token lacks scope {', '.join(missing)}")
        for rule in self.claim_rules:
            if not rule.holds(claims):
                raise InsufficientScope(self.scopes, f"the token does not satisfy {rule.describe()}")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Refused("the token has no subject (sub)")
        tenant = claims.get(self.tenant_claim) if self.tenant_claim else self.default_tenant
        if not isinstance(tenant, str) or not tenant:
            raise Refused(f"the token has no tenant claim {self.tenant_claim!r}")
        return Caller(tenant, subject, str(client) if client else None, frozenset(scopes), claims)


def _scopes(claims: Mapping[str, Any]) -> set[str]:
    out: set[str] = set()
    for key in ("scope", "scp"):
        value = claims.get(key)
        if isinstance(value, str):
            out.update(value.split())
        elif isinstance(value, list):
            out.update(str(v) for v in value)
    return out


# -- API keys ----------------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    """The stored form of a key (keys are 256-bit random, so one SHA-256 is enough)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(prefix: str) -> tuple[str, str, str]:
    """A fresh key: (key id, full key to show once, hash to store)."""
    key_id = secrets.token_hex(6)
    key = f"{prefix}{key_id}_{secrets.token_urlsafe(32)}"
    return key_id, key, hash_secret(key)


def key_id_of(key: str, prefix: str) -> str | None:
    """The key id inside a key, or None when it is not shaped like one."""
    if not key.startswith(prefix):
        return None
    key_id, sep, _ = key[len(prefix) :].partition("_")
    return key_id if sep and key_id else None


def same_secret(digest: str, key: str) -> bool:
    return hmac.compare_digest(digest, hash_secret(key))


KeyLookup = Callable[[str], Awaitable[Mapping[str, Any] | None]]
"""key id -> the stored key record (``hash``, ``tenant``, ``subject``, ``scopes``, ``audience``), or None."""


class ApiKeyVerifier:
    """Verifies ``Authorization: Bearer <key>`` (or ``X-Api-Key``) against stored hashes."""

    def __init__(self, lookup: KeyLookup, prefix: str, scopes: Iterable[str] = ()) -> None:
        self.lookup = lookup
        self.prefix = prefix
        self.scopes = tuple(scopes)

    async def verify(self, key: str, *, audience: str | None = None, scopes: Iterable[str] = ()) -> Caller:
        """The key's caller; with ``audience``, the key must be for it; ``scopes`` add to the verifier's."""
        key_id = key_id_of(key, self.prefix)
        if key_id is None:
            raise Refused(f"not an API key of this gateway (they start with {self.prefix!r})")
        record = await self.lookup(key_id)
        if record is None or not same_secret(str(record["hash"]), key):
            raise Refused("unknown or revoked API key")
        if audience is not None and record.get("audience") != audience:
            raise Refused(f"this API key is not for {audience}")
        held = frozenset(record.get("scopes") or ())
        needed = (*self.scopes, *scopes)
        missing = [s for s in needed if s not in held]
        if missing:
            raise InsufficientScope(needed, f"the API key lacks scope {', '.join(missing)}")
        return Caller(str(record["tenant"]), str(record["subject"]), f"key:{key_id}", held, {})
