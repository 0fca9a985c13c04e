"""Session binding for an agent's 3LO authorizations (AgentCore's GetResourceOauth2Token with
USER_FEDERATION, then CompleteResourceTokenAuth), on the broker's vault, state and token requests.

Why a second binding beside the gateway's consent (identity.consent): there the browser signs in
at the gateway with the credential its user's MCP client uses, and the callback binds the tokens
to whoever signed in. An agent's user has no such credential: the application that runs the agent
knows its user. So the binding goes the other way round, as in AgentCore:

1. `SessionBinding.start` opens a session for (tenant, user, provider) with the application's
   return URL (required); `link` is the provider's authorization URL for it (PKCE, our callback,
   a sealed state naming the session).
2. The provider sends the browser back to our callback; `returned` keeps the code with the
   session (nothing is exchanged yet) and sends the browser on to the application's return URL
   with ``session_id`` (and the application's own ``state``). That ``session_id`` is not the
   session's URI: it is a `Confirmation`, minted for this session and this code, and given only
   to the browser that brought the code back.
3. The application checks that its signed-in user is the one the session is for and says so
   with the confirmation (`bind`): only then is the code exchanged (the confirmation used up) and
   the tokens stored for that user. Confirmed for anyone else, the session fails and the code is
   dropped.

A link forwarded to someone else comes back in their browser, and so does its confirmation: the
application sees another user and does not confirm (or confirms for them, and is refused), and
nothing is bound to the user who asked, who has no confirmation to confirm with: the session's
URI (the agent's, for polling) confirms nothing. A session takes one code: a callback after the
first (or after the session failed) is refused, so nobody holding the link can replace the code
awaiting confirmation or revive a failed session; FAILED is final, and asking again starts a new
session with a new nonce.

One session per (tenant, user, provider slot) is open at a time, kept in the vault next to the
tokens it becomes (``Owner(tenant, user, slot, "session")``): asking again while it is open gives
the same session (its earlier links still work) while no code came back to it, unless a fresh one
is forced, so abandoned
sessions cost one row per user and provider, not one per request. The session URI is sealed
(tenant, user, provider, variant, a nonce) with the broker's state key: any replica opens it, and
nobody can make one for another user. A confirmation is sealed for another purpose: one opens
never as the other.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlencode

import orjson

from identity.outbound import STATE_PURPOSE, STATE_SECONDS, Broker, CredentialError, ProviderSpec
from identity.vault import Owner

URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
URI_PURPOSE = b"authorization session"
URI_SECONDS = 3600
CONFIRM_PURPOSE = b"authorization confirmation"
"""How long a session URI opens: longer than the session, as the agent polls with it after the
session is over (then it gets the token the session became)."""
RESERVED = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
        "scope",
        "user_scope",
        "resource",
        "request_uri",
    }
)
"""Authorization parameters a caller's extras cannot set: they carry the session's own binding."""
Status = Literal["IN_PROGRESS", "AUTHORIZED", "FAILED"]
Problem = Literal["unknown", "pending", "failed", "denied", "answered", "unconfirmed"]


class SessionError(CredentialError):
    """A session cannot do what was asked. ``problem``: ``unknown`` (no such open session: not made
    here, over, expired or replaced), ``pending`` (the user has not come back from the provider),
    ``failed`` (the provider refused, or the session failed before), ``denied`` (confirmed for
    another user than the one who asked), ``answered`` (a callback for a session that has its
    code already, or failed), ``unconfirmed`` (confirmed without the confirmation the browser
    brought back, e.g. with the session's own URI)."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Session:
    """Whose authorization, of which provider (its `ProviderSpec.name` and variant)."""

    tenant: str
    user: str
    provider: str
    variant: str
    nonce: str

    @property
    def name(self) -> str:
        """The provider's own name, without the gateway (or ``~``, the tenant's vault) before it."""
        return self.provider.partition("/")[2] or self.provider

    def owner(self, kind: str = "session") -> Owner:
        slot = f"{self.provider}#{self.variant}" if self.variant else self.provider
        return Owner(self.tenant, self.user, slot, kind)


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the browser that brought a session's code back carries to the application (its
    ``session_id``): the session, and a one-time value bound to it and to that code."""

    session: Session
    value: str
    code: str
    """A digest of the code it confirms."""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Returned:
    """A browser back from the provider: which provider, and where it goes next (None: nowhere,
    the page says what to do); ``error`` when the provider did not grant access."""

    provider: str
    redirect: str | None
    error: str | None = None


class SessionBinding:
    """Sessions of the broker's tenants; stateless itself (everything is in the vault or sealed)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def uri(self, session: Session) -> str:
        """The session's URI (``urn:ietf:params:oauth:request_uri:...``), for the agent and the
        application."""
        doc: dict[str, object] = {
            "t": session.tenant,
            "u": session.user,
            "p": session.provider,
            "k": session.variant,
            "n": session.nonce,
            "exp": time.time() + URI_SECONDS,
        }
        return URI_PREFIX + self.broker.seal(doc, URI_PURPOSE)

    def open(self, uri: str) -> Session:
        """The session a URI names.

        Raises:
            SessionError: ``unknown``: not a URI this gateway made, or older than `URI_SECONDS`.
        """
        doc = (
            self.broker.unseal(uri.removeprefix(URI_PREFIX), URI_PURPOSE)
            if uri.startswith(URI_PREFIX)
            else None
        )
        if doc is None:
            raise SessionError(
                "unknown", "the session URI is not one Switchboard gave out, or it is over an hour old"
            )
        return Session(str(doc["t"]), str(doc["u"]), str(doc["p"]), str(doc["k"]), str(doc["n"]))

    def confirmation(self, value: str) -> Confirmation:
        """The confirmation a browser brought to the application's return URL (``session_id``).

        Raises:
            SessionError: ``unconfirmed``: the session's own URI (it confirms nothing);
                ``unknown``: not a confirmation this gateway made, or expired.
        """
        sealed = value.removeprefix(URI_PREFIX) if value.startswith(URI_PREFIX) else None
        doc = self.broker.unseal(sealed, CONFIRM_PURPOSE) if sealed else None
        if doc is None:
            if sealed and self.broker.unseal(sealed, URI_PURPOSE) is not None:
                raise SessionError(
                    "unconfirmed",
                    "this is the session's URI (GetResourceOauth2Token's sessionUri, for the agent to "
                    "poll with): confirm with the session_id the user's browser brought to the return "
                    "URL, once they have authorized",
                )
            raise SessionError(
                "unknown",
                "the session URI is not one Switchboard gave out, or the authorization took too long",
            )
        session = Session(str(doc["t"]), str(doc["u"]), str(doc["p"]), str(doc["k"]), str(doc["n"]))
        return Confirmation(session, str(doc["c"]), str(doc["h"]))

    async def start(
        self,
        tenant: str,
        user: str,
        provider: ProviderSpec,
        *,
        return_url: str,
        fresh: bool = False,
        custom_state: str | None = None,
    ) -> Session:
        """The open session of ``user`` for ``provider`` (its variant included), or a new one when
        there is none, a code came back to it (it awaits its confirmation, or failed), or
        ``fresh`` (the caller forces a new authorization). The return URL (where the browser
        takes its confirmation) and the application's state are the latest request's."""
        if not return_url:
            raise CredentialError("a session needs the application's return URL")
        probe = Session(tenant, user, provider.name, provider.variant, "")
        row = None if fresh else await self._row(probe)
        if row is None or row["status"] != "IN_PROGRESS" or row.get("code"):
            row = {"n": secrets.token_urlsafe(16), "status": "IN_PROGRESS"}
        session = replace(probe, nonce=str(row["n"]))
        await self._put(
            session, {**row, "r": return_url, "c": custom_state, "exp": time.time() + STATE_SECONDS}
        )
        return session

    def link(self, session: Session, provider: ProviderSpec, extra: Mapping[str, str] | None = None) -> str:
        """The provider's authorization URL for an open session, with the caller's ``extra``
        parameters; each link has its own PKCE verifier, and any of them completes the session.

        Raises:
            CredentialError: ``extra`` names a parameter the session's binding sets.
        """
        clash = sorted(set(extra or {}) & RESERVED)
        if clash:
            raise CredentialError(f"custom parameters cannot set {', '.join(clash)}: Switchboard sets them")
        if provider.name != session.provider:
            raise CredentialError(f"this session is for credential provider {session.name!r}")
        state = self.broker.seal(
            {
                "t": session.tenant,
                "u": session.user,
                "p": session.provider,
                "k": session.variant,
                "s": session.nonce,
                "v": secrets.token_urlsafe(48),
                "exp": time.time() + STATE_SECONDS,
            },
            STATE_PURPOSE,
        )
        spec = replace(provider, extra_authorize={**provider.extra_authorize, **(extra or {})})
        return self.broker.authorize_url(spec, state)

    async def look(self, session: Session) -> tuple[Status, str | None] | None:
        """The session's status and, failed, why; None when it is not open (completed,
        replaced by a newer one, or expired)."""
        row = await self._row(session)
        if row is None or row["n"] != session.nonce:
            return None
        return row["status"], row.get("why")

    def owns(self, state: str) -> bool:
        """Whether a callback's ``state`` is a session's (not the gateway consent's)."""
        doc = self.broker.unseal(state, STATE_PURPOSE)
        return doc is not None and "s" in doc

    async def returned(self, state: str, *, code: str | None, error: str | None) -> Returned:
        """A browser back at our callback: the code is kept with the session until the application
        confirms its user (`bind`) with the confirmation the browser is sent on with; a refusal by
        the provider fails the session. Only the first callback counts.

        Raises:
            SessionError: ``unknown``: the state is forged or expired, or the session is over;
                ``answered``: a code came back for the session already, or it failed.
        """
        doc = self.broker.unseal(state, STATE_PURPOSE)
        if doc is None or "s" not in doc:
            raise SessionError(
                "unknown",
                "the authorization took too long (over 10 minutes) or is not one Switchboard made; ask the "
                "agent again",
            )
        session = Session(str(doc["t"]), str(doc["u"]), str(doc["p"]), str(doc["k"]), str(doc["s"]))
        row = await self._row(session)
        if row is None or row["n"] != session.nonce:
            raise SessionError(
                "unknown",
                f"this authorization of {session.name} is over: completed, replaced by a newer one or "
                "expired; ask the agent again",
            )
        if row["status"] != "IN_PROGRESS" or row.get("code"):
            raise SessionError(
                "answered",
                f"this authorization of {session.name} was answered already (a link is used once) or "
                "failed, so this answer was refused and nothing was changed. If someone sent you this "
                "link, you need not do anything; otherwise ask the agent again",
            )
        if error or not code:
            why = f"{session.name} did not grant access: {error or 'it sent no code'}"
            await self._put(session, {**row, "status": "FAILED", "code": None, "why": why})
            return Returned(session.name, None, error or "no code")
        if not row.get("r"):  # (sessions made before return URLs were required) nobody could confirm
            why = "the session has no return URL to confirm at"
            await self._put(session, {**row, "status": "FAILED", "code": None, "why": why})
            raise SessionError(
                "failed", f"this authorization of {session.name} cannot be confirmed: ask again"
            )
        confirm, expires = secrets.token_urlsafe(32), time.time() + STATE_SECONDS
        kept = {
            **row,
            "status": "AUTHORIZED",
            "code": code,
            "v": doc["v"],
            "cf": _digest(confirm),
            "exp": expires,
        }
        await self._put(session, kept)
        sealed = self.broker.seal(
            {
                "t": session.tenant,
                "u": session.user,
                "p": session.provider,
                "k": session.variant,
                "n": session.nonce,
                "c": confirm,
                "h": _digest(code),
                "exp": expires,
            },
            CONFIRM_PURPOSE,
        )
        query = {"session_id": URI_PREFIX + sealed}
        if row.get("c"):
            query["state"] = str(row["c"])
        back = str(row["r"])
        return Returned(session.name, f"{back}{'&' if '?' in back else '?'}{urlencode(query)}")

    async def bind(self, confirmation: Confirmation, user: str, provider: ProviderSpec) -> None:
        """The application confirms its signed-in ``user`` for the session, with the confirmation
        the browser brought back: the code is exchanged (once: the confirmation is used up) and
        the tokens stored for the session's user, under its provider slot.

        Raises:
            SessionError: no such open session (``unknown``), the provider refused or the session
                failed (``failed``), the confirmation is not the one minted for the session's code
                or was used (``unconfirmed``), or ``user`` is not the user who asked (``denied``:
                the session fails, the code is dropped).
        """
        session = confirmation.session
        if provider.name != session.provider:
            raise SessionError("unknown", f"this session is for credential provider {session.name!r}")
        row = await self._row(session)
        if row is None or row["n"] != session.nonce:
            raise SessionError(
                "unknown",
                f"no authorization of {session.name} is open under this session: completed, replaced by "
                "a newer one or expired",
            )
        if row["status"] == "FAILED":
            raise SessionError("failed", str(row.get("why") or "the session failed"))
        if (
            row["status"] != "AUTHORIZED"
            or not row.get("code")
            or not secrets.compare_digest(str(row.get("cf") or ""), _digest(confirmation.value))
            or not secrets.compare_digest(_digest(str(row["code"])), confirmation.code)
        ):
            raise SessionError(
                "unconfirmed",
                f"this is not the confirmation of the authorization of {session.name} now awaiting one "
                "(it was used, or the session was answered in another browser)",
            )
        if user != session.user:
            why = "confirmed for another user than the one who asked; nothing was stored"
            await self._put(session, {**row, "status": "FAILED", "code": None, "cf": None, "why": why})
            raise SessionError(
                "denied",
                f"this session was started for another user than {user!r}: it is closed and nothing was "
                "stored (if the link was forwarded, the user who asked must open it themselves)",
            )
        if not await self.broker.vault.delete(session.owner()):  # claimed: one exchange per code
            raise SessionError("unknown", f"this authorization of {session.name} was completed already")
        try:
            tokens = await self.broker.redeem(session.tenant, provider, str(row["code"]), str(row["v"]))
        except CredentialError as exc:
            await self._put(session, {**row, "status": "FAILED", "code": None, "cf": None, "why": str(exc)})
            raise SessionError("failed", str(exc)) from None
        await self.broker.vault.put(session.owner("tokens"), tokens.dump())

    async def _row(self, session: Session) -> dict[str, Any] | None:
        owner = session.owner()
        raw = await self.broker.vault.get(owner, tool="authorization session")
        if raw is None:
            return None
        row = orjson.loads(raw)
        if not isinstance(row, dict) or float(row.get("exp", 0)) < time.time():
            await self.broker.vault.delete(owner)
            return None
        return row

    async def _put(self, session: Session, row: dict[str, Any]) -> None:
        await self.broker.vault.put(session.owner(), orjson.dumps(row))
