"""Outbound credentials: how the gateway acts for a caller towards an upstream.

A `Broker` hands out the secret a call needs, by credential provider:

- ``api_key``: a key kept in the vault (or read from the config's reference);
- ``oauth2_client_credentials`` (2LO): a token for the gateway itself, fetched from the
  token endpoint and cached in the vault until shortly before it expires;
- ``oauth2_authorization_code`` (3LO, with PKCE): a token for one user. Without one the
  call raises `ConsentRequired` carrying the consent link: the gateway's own start page,
  which signs the browser in as the user who asked before sending it on to the provider's
  `authorize_url` (identity.consent); the provider redirects the browser to our callback,
  which checks the browser is still that user before `Broker.complete` exchanges the code
  and binds the tokens to them. Tokens are refreshed before they expire and when an
  upstream answers 401, with exactly one refresh in flight per credential.

The authorization ``state`` is sealed (AES-GCM with the process's state key) and
carries who asked, for which provider, the PKCE verifier and an expiry, so any replica
can complete the flow and nothing needs to be stored before the user comes back.
Every secret lives in the vault, bound to (tenant, user, provider).

Authorization servers are often a tenant's (their URLs are the tenant's to choose): every fetch
from one (`fetch`: discovery, token and exchange requests) has an overall deadline and reads at
most `FETCH_BYTES`, so a server that drips its answer or never ends it holds no request (or the
process's memory) for longer than `FETCH_SECONDS`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

import anyio
import httpx2
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from identity.servers import FETCH_SECONDS, fetch

# Named from here too, as they always were (identity.servers holds them now).
from identity.servers import CredentialError as CredentialError
from identity.servers import discover as discover
from identity.vault import Owner, Vault

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SERVICE = "*"  # the user of credentials that belong to the gateway itself (2LO, shared keys)
SharedLocks = Callable[[str], AbstractAsyncContextManager[Any]]
"""name -> a lock held across replicas while one of them refreshes that credential."""
STATE_SECONDS = 600
STATE_PURPOSE = b"state"
EARLY_REFRESH_SECONDS = 60


class ConsentRequired(Exception):
    """The user must authorize the provider first, at ``url``."""

    def __init__(self, provider: str, url: str) -> None:
        super().__init__(f"Authorize {provider} to continue: open {url}")
        self.provider = provider
        self.url = url


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One credential provider, resolved (secrets read) by the gateway from its configuration."""

    name: str
    kind: Literal[
        "api_key", "oauth2_client_credentials", "oauth2_authorization_code", "oauth2_token_exchange"
    ]
    secret: str | None = None  # api_key: a shared key; oauth2: the client secret
    client_id: str | None = None
    token_url: str | None = None
    authorize_url: str | None = None
    scopes: tuple[str, ...] = ()
    resource: str | None = None  # RFC 8707, sent with token requests when set
    audience: str | None = None  # RFC 8693 token exchange: the upstream the token is for
    extra_authorize: Mapping[str, str] = field(default_factory=dict)
    scope_separator: str = " "
    scope_param: str = "scope"  # Slack asks for a user's own token with `user_scope`
    token_field: str | None = None  # where the token response nests the user's tokens (Slack: authed_user)
    variant: str = ""
    """What the tokens were asked for beyond the provider itself: tokens are kept per provider and
    variant (`slot`). AgentCore's clients ask per request for scopes and a resource, so a token got
    with some scopes must never answer a request for others; a gateway's providers have one
    configuration each and no variant, except those using a token-vault client, whose configuration
    follows that client's changes."""
    secret_name: str | None = None
    """Where its client secret is kept in the vault when not under its own name: a gateway's provider
    that uses a client of the tenant's token vault (``~/{provider}``) keeps its tokens as its own."""

    @property
    def slot(self) -> str:
        """The name its tokens are kept under in the vault."""
        return f"{self.name}#{self.variant}" if self.variant else self.name


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    expires_at: float | None = None
    refresh_token: str | None = None
    replaced: tuple[str, ...] = ()  # digests of the tokens refreshes replaced (newest first)

    def supersedes(self, stale: str | None) -> bool:
        """Whether a refresh already replaced ``stale`` (even by an identical string)."""
        return stale is not None and _digest(stale) in self.replaced

    def fresh(self) -> bool:
        return self.expires_at is None or self.expires_at - EARLY_REFRESH_SECONDS > time.time()

    def dump(self) -> bytes:
        return orjson.dumps(
            {
                "access_token": self.access_token,
                "expires_at": self.expires_at,
                "refresh_token": self.refresh_token,
                "replaced": list(self.replaced),
            }
        )

    @classmethod
    def load(cls, raw: bytes) -> Tokens:
        doc = orjson.loads(raw)
        return cls(
            str(doc["access_token"]),
            doc.get("expires_at"),
            doc.get("refresh_token"),
            tuple(doc.get("replaced") or ()),
        )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _challenge(verifier: str) -> str:
    """PKCE S256 (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Broker:
    """Hands out upstream credentials for (tenant, user); one refresh in flight per credential.

    Args:
        vault: Where every secret and token lives.
        state_key: 32 bytes sealing the authorization state (the same on every replica).
        callback_url: Our ``/identity/oauth/callback``, registered with the providers.
        http: The client for token endpoints.
        shared_locks: Locks shared by replicas (Redis), so that replicas too refresh a
            credential once; without, the lock is per process.
        tenant_http: The client for the token endpoints of tenants other than
            ``operator_tenant`` (the gateway gives one whose every connection is checked to be
            a public address); None: ``http`` for all.
        operator_tenant: The tenant whose providers the operator configures.
    """

    def __init__(
        self,
        vault: Vault,
        state_key: bytes,
        callback_url: str,
        http: httpx2.AsyncClient | None = None,
        shared_locks: SharedLocks | None = None,
        tenant_http: httpx2.AsyncClient | None = None,
        operator_tenant: str = "default",
    ) -> None:
        self.vault = vault
        self.tenant_http = tenant_http
        self.operator_tenant = operator_tenant
        self.shared_locks = shared_locks
        self._state = AESGCM(hashlib.sha256(b"switchboard oauth state\x00" + state_key).digest())
        self.callback_url = callback_url
        # The consent link: a sibling of the callback (``/identity/oauth/start``).
        self.start_url = callback_url.rsplit("/", 1)[0] + "/start"
        self.http = http or httpx2.AsyncClient(timeout=httpx2.Timeout(15.0))
        self._locks: dict[tuple[str, str, str], anyio.Lock] = {}
        self.refreshes = 0  # token requests made (for operators and tests)
        self.fetch_seconds = FETCH_SECONDS  # each token request's overall deadline (`fetch`)

    async def aclose(self) -> None:
        await self.http.aclose()
        if self.tenant_http is not None:
            await self.tenant_http.aclose()

    def _lock(self, key: tuple[str, str, str]) -> anyio.Lock:
        return self._locks.setdefault(key, anyio.Lock())

    async def secret(
        self,
        tenant: str,
        user: str,
        provider: ProviderSpec,
        *,
        tool: str | None = None,
        stale: str | None = None,
        subject_token: str | None = None,
    ) -> str:
        """The secret to send for ``provider`` on behalf of ``user``.

        ``stale`` is a token the upstream just refused (401): a different one is returned,
        refreshed if need be.

        Raises:
            ConsentRequired: the user has not authorized the provider yet.
            CredentialError: the provider is misconfigured or refused.
        """
        if provider.kind == "api_key":
            stored = await self.vault.get(Owner(tenant, SERVICE, provider.name, "api_key"), tool=tool)
            if stored is not None:
                return stored.decode()
            if provider.secret:
                return provider.secret
            raise CredentialError(
                f"credential provider {provider.name!r} has no key: set it through the admin API"
            )
        owner_user = SERVICE if provider.kind == "oauth2_client_credentials" else user
        owner = Owner(tenant, owner_user, provider.slot, "tokens")
        tokens = await self._tokens(owner, tool)
        if tokens is not None and tokens.fresh() and tokens.access_token != stale:
            return tokens.access_token
        key = (tenant, owner_user, provider.slot)
        shared = self.shared_locks(":".join(key)) if self.shared_locks else contextlib.nullcontext()
        async with self._lock(key), shared:  # this process's callers queue here; replicas in Redis
            # Whoever held the lock (here or on another replica) may have refreshed already:
            # look again. (A refresh may even return the very same token; what it replaced is
            # stored with the tokens, so a caller holding that one takes the current token.)
            tokens = await self._tokens(owner, tool)
            if (
                tokens is not None
                and tokens.fresh()
                and (tokens.access_token != stale or tokens.supersedes(stale))
            ):
                return tokens.access_token
            if provider.kind == "oauth2_client_credentials":
                fetched = await self._token_request(tenant, provider, {"grant_type": "client_credentials"})
            elif provider.kind == "oauth2_token_exchange":
                if not subject_token:
                    raise CredentialError(
                        f"credential provider {provider.name!r} exchanges the caller's own token, and this "
                        "caller has none (the gateway needs `auth: jwt`)"
                    )
                form = {
                    "grant_type": TOKEN_EXCHANGE,
                    "subject_token": subject_token,
                    "subject_token_type": ACCESS_TOKEN_TYPE,
                    "requested_token_type": ACCESS_TOKEN_TYPE,
                }
                if provider.audience:
                    form["audience"] = provider.audience
                fetched = await self._token_request(tenant, provider, form)
            elif tokens is not None and tokens.refresh_token:
                try:
                    fetched = await self._token_request(
                        tenant,
                        provider,
                        {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
                    )
                except CredentialError:
                    await self.vault.delete(owner)  # the grant is gone: ask the user again
                    raise ConsentRequired(provider.name, self.consent_url(tenant, user, provider)) from None
                if fetched.refresh_token is None:
                    fetched = Tokens(fetched.access_token, fetched.expires_at, tokens.refresh_token)
            else:
                raise ConsentRequired(provider.name, self.consent_url(tenant, user, provider))
            if tokens is not None:
                replaced = (_digest(tokens.access_token), *tokens.replaced)[:8]
                fetched = Tokens(fetched.access_token, fetched.expires_at, fetched.refresh_token, replaced)
            await self.vault.put(owner, fetched.dump())
            return fetched.access_token

    async def _tokens(self, owner: Owner, tool: str | None) -> Tokens | None:
        raw = await self.vault.get(owner, tool=tool)
        return Tokens.load(raw) if raw is not None else None

    async def client_secret(self, tenant: str, provider: ProviderSpec) -> str | None:
        """The provider's client secret: one kept in the vault (set through the admin API; the
        way a tenant admin gives it), else its configuration's, else None (a public client)."""
        where = provider.secret_name or provider.name
        kept = await self.vault.get(Owner(tenant, SERVICE, where, "client_secret"))
        return kept.decode() if kept is not None else (provider.secret or None)

    def http_for(self, tenant: str) -> httpx2.AsyncClient:
        """The client for ``tenant``'s authorization servers (token endpoints, metadata)."""
        return self.http if tenant == self.operator_tenant or self.tenant_http is None else self.tenant_http

    async def _token_request(self, tenant: str, provider: ProviderSpec, form: dict[str, str]) -> Tokens:
        if not provider.token_url or not provider.client_id:
            raise CredentialError(f"credential provider {provider.name!r} needs token_url and client_id")
        secret = await self.client_secret(tenant, provider)
        if provider.scopes and form["grant_type"] != "authorization_code" and provider.scope_param == "scope":
            form["scope"] = provider.scope_separator.join(provider.scopes)
        if provider.resource:
            form["resource"] = provider.resource
        headers = {"Accept": "application/json"}
        if secret:  # client_secret_basic (RFC 6749 2.3.1)
            basic = f"{quote(provider.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
        else:  # a public client: PKCE alone
            form["client_id"] = provider.client_id
        self.refreshes += 1
        try:
            status, content = await fetch(
                self.http_for(tenant),
                "POST",
                provider.token_url,
                seconds=self.fetch_seconds,
                data=form,
                headers=headers,
            )
            body = orjson.loads(content) if content else {}
        except (CredentialError, orjson.JSONDecodeError) as exc:
            raise CredentialError(f"the token endpoint of {provider.name!r} failed: {exc}") from None
        if (
            provider.token_field
            and isinstance(body, dict)
            and isinstance(body.get(provider.token_field), dict)
        ):
            body = {**body[provider.token_field]}  # Slack: the user's tokens, not the app's
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise CredentialError(
                f"{provider.name!r} refused the token request (HTTP {status}): {error or 'no reason given'}"
            )
        expires_in = body.get("expires_in")
        return Tokens(
            str(body["access_token"]),
            time.time() + float(expires_in) if isinstance(expires_in, int | float) else None,
            str(body["refresh_token"]) if body.get("refresh_token") else None,
        )

    # -- 3LO ------------------------------------------------------------------------------

    def consent_url(self, tenant: str, user: str, provider: ProviderSpec) -> str:
        """The link a user follows to authorize ``provider``: the gateway's start page, which
        signs the browser in as ``user`` before sending it on to the provider."""
        if not provider.authorize_url or not provider.client_id:
            raise CredentialError(f"credential provider {provider.name!r} needs authorize_url and client_id")
        verifier = secrets.token_urlsafe(48)
        state = self.seal(
            {"t": tenant, "u": user, "p": provider.name, "v": verifier, "exp": time.time() + STATE_SECONDS},
            STATE_PURPOSE,
        )
        return f"{self.start_url}?{urlencode({'state': state})}"

    def authorize_url(self, provider: ProviderSpec, state: str) -> str:
        """The provider's authorization URL for a consent ``state`` (PKCE S256 from its verifier).

        Raises:
            CredentialError: the state is forged, altered, expired or made for another provider.
        """
        doc = self._open(state)
        if doc["p"] != provider.name or not provider.authorize_url or not provider.client_id:
            raise CredentialError(f"this authorization is not for credential provider {provider.name!r}")
        query = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": self.callback_url,
            "state": state,
            "code_challenge": _challenge(str(doc["v"])),
            "code_challenge_method": "S256",
            **provider.extra_authorize,
        }
        if provider.scopes:
            query[provider.scope_param] = provider.scope_separator.join(provider.scopes)
        if provider.resource:
            query["resource"] = provider.resource
        sep = "&" if "?" in provider.authorize_url else "?"
        return f"{provider.authorize_url}{sep}{urlencode(query)}"

    def pending(self, state: str) -> tuple[str, str, str]:
        """(tenant, user, provider) a state was made for.

        Raises:
            CredentialError: the state is forged, altered or expired.
        """
        doc = self._open(state)
        return str(doc["t"]), str(doc["u"]), str(doc["p"])

    async def complete(
        self, providers: Mapping[str, ProviderSpec], code: str, state: str
    ) -> tuple[str, str, str]:
        """Finish a consent: exchange the code and bind the tokens to the user who asked.

        Call it only once the browser that came back is known to be that user
        (identity.consent checks its sign-in): the state alone proves who *asked*, not
        who consented.
        """
        doc = self._open(state)
        provider = providers.get(str(doc["p"]))
        if provider is None:
            raise CredentialError(f"credential provider {doc['p']!r} no longer exists")
        fetched = await self.redeem(str(doc["t"]), provider, code, str(doc["v"]))
        await self.vault.put(Owner(str(doc["t"]), str(doc["u"]), provider.slot, "tokens"), fetched.dump())
        return str(doc["t"]), str(doc["u"]), provider.name

    async def redeem(self, tenant: str, provider: ProviderSpec, code: str, verifier: str) -> Tokens:
        """The tokens an authorization code (sent back to our callback) is worth, with its PKCE
        verifier; stored by the caller, who knows whose they are.

        Raises:
            CredentialError: the provider refused (a used or expired code, a wrong client).
        """
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.callback_url,
            "code_verifier": verifier,
        }
        return await self._token_request(tenant, provider, form)

    def seal(self, doc: dict[str, object], purpose: bytes) -> str:
        """``doc`` sealed (AES-GCM under the state key) for one ``purpose``: only `unseal` with
        the same purpose opens it, so a token made for one use is never taken for another."""
        nonce = os.urandom(12)
        sealed = nonce + self._state.encrypt(nonce, orjson.dumps(doc), purpose)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def unseal(self, token: str, purpose: bytes) -> dict[str, Any] | None:
        """What `seal` sealed for ``purpose``; None when forged, altered, for another purpose or
        past its ``exp``."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            doc = orjson.loads(self._state.decrypt(raw[:12], raw[12:], purpose))
        except (ValueError, InvalidTag, orjson.JSONDecodeError):
            return None
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("exp"), int | float)
            or doc["exp"] < time.time()
        ):
            return None
        return doc

    def _open(self, state: str) -> dict[str, object]:
        try:
            raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
            doc = orjson.loads(self._state.decrypt(raw[:12], raw[12:], STATE_PURPOSE))
        except (ValueError, InvalidTag, orjson.JSONDecodeError):
            raise CredentialError(
                "the authorization state is not one this gateway made; start again"
            ) from None
        if not isinstance(doc, dict) or float(doc.get("exp", 0)) < time.time():
            raise CredentialError(
                "the authorization took too long (over 10 minutes); start again from the tool"
            )
        return doc


PRESETS: dict[str, dict[str, object]] = {
    # Endpoints and quirks of the common providers; a provider config names one and adds
    # its client id/secret and scopes.
    "github": {
        "authorize_url": "https://github.com/login/oauth/authorize",
        "token_url": "https://github.com/login/oauth/access_token",  # JSON only with Accept: application/json
        "scope_separator": " ",
    },
    "google": {
        "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "token_url": "https://oauth2.googleapis.com/token",
        "extra_authorize": {"access_type": "offline", "prompt": "consent"},  # else no refresh token
    },
    "microsoft": {
        "authorize_url": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "token_url": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "default_scopes": ("offline_access",),  # else no refresh token
    },
    "slack": {
        "authorize_url": "https://slack.com/oauth/v2/authorize",
        "token_url": "https://slack.com/api/oauth.v2.access",
        "scope_separator": ",",
        # The user's own token (acting as them, search included), not the app's bot token.
        "scope_param": "user_scope",
        "token_field": "authed_user",
    },
    "salesforce": {
        "authorize_url": "https://login.salesforce.com/services/oauth2/authorize",
        "token_url": "https://login.salesforce.com/services/oauth2/token",
        "default_scopes": ("api", "refresh_token"),
    },
    "atlassian": {
        "authorize_url": "https://auth.atlassian.com/authorize",
        "token_url": "https://auth.atlassian.com/oauth/token",
        "extra_authorize": {"audience": "api.atlassian.com", "prompt": "consent"},
        "default_scopes": ("offline_access",),
    },
}


def from_preset(
    name: str,
    preset: str,
    *,
    client_id: str,
    secret: str | None,
    scopes: Sequence[str] = (),
    overrides: Mapping[str, object] | None = None,
) -> ProviderSpec:
    """An authorization-code provider from a vendor preset."""
    if preset not in PRESETS:
        raise CredentialError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
    p = {**PRESETS[preset], **(overrides or {})}
    default_scopes = tuple(str(s) for s in p.get("default_scopes", ()))  # type: ignore[attr-defined]
    extra = p.get("extra_authorize") or {}
    return ProviderSpec(
        name=name,
        kind="oauth2_authorization_code",
        secret=secret,
        client_id=client_id,
        token_url=str(p["token_url"]),
        authorize_url=str(p["authorize_url"]),
        scopes=tuple(dict.fromkeys([*scopes, *default_scopes])),
        extra_authorize={str(k): str(v) for k, v in dict(extra).items()},  # type: ignore[call-overload]
        scope_separator=str(p.get("scope_separator", " ")),
        scope_param=str(p.get("scope_param", "scope")),
        token_field=str(p["token_field"]) if p.get("token_field") else None,
    )


def redis_locks(url: str, timeout_seconds: float = 30.0) -> tuple[SharedLocks, Callable[[], Any]]:
    """Refresh locks in Redis (redis-py's Lock: SET NX with expiry, token-checked release),
    and a coroutine function that closes the connection."""
    import redis.asyncio as redis

    client = redis.from_url(url)

    def lock(name: str) -> AbstractAsyncContextManager[Any]:
        return client.lock(f"sb:refresh:{name}", timeout=timeout_seconds, blocking_timeout=timeout_seconds)

    return lock, client.aclose
