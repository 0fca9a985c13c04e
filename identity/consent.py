"""Consent binding: a 3LO consent completes only for the user who is in the browser.

A consent link (`Broker.consent_url`) is made for the user whose call needed it. Forwarded
to someone else, it must never bind *their* account at the provider to the user who asked
(user A sends A's link to B, B signs in at the provider, and A acts as B). AgentCore
Identity answers this with session binding (`CompleteResourceTokenAuth`: the application
confirms its signed-in user is the one who asked). Here the gateway is that application:
the browser signs in at the gateway, with the credential the user's own client uses for it,
before it is sent to the provider, and the callback stores nothing unless the same sign-in
comes back.

``GET /identity/oauth/start?state=...``
    The link users are given. A browser signed in as the user the link was made for goes
    straight on to the provider; any other browser gets the sign-in form.
``POST /identity/oauth/sign-in``
    The form: the API key or access token of the gateway the link is for, checked by that
    gateway's own inbound auth. The same user: a sign-in cookie (sealed: tenant, gateway,
    user; one hour; HttpOnly, SameSite=Lax, scoped to ``/identity/oauth``), then on to the
    provider. Another user: refused, nothing started. Only from our own pages: a form posted
    from another site (login CSRF, which would sign a victim's browser in as the attacker)
    is refused by its ``Origin``.
``GET /identity/oauth/callback``
    Where the provider sends the browser back. The code is exchanged and the tokens stored
    only when the browser's sign-in is the user the state was made for; otherwise nothing is
    exchanged or stored (this is what stops the provider's own authorize URL, copied from
    the redirect and forwarded, which comes back in the other user's browser). An agent's
    authorization session (identity.sessions) comes back here too: its code is kept for the
    session and the browser sent on to the application's return URL, whose confirmation of its
    user binds the tokens; no sign-in here.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from identity.outbound import Broker, CredentialError, ProviderSpec
from identity.sessions import SessionBinding

logger = logging.getLogger(__name__)

COOKIE = "sb_consent"
COOKIE_PATH = "/identity/oauth"
HOST_COOKIE = "__Host-sb_consent"
"""Over HTTPS the sign-in cookie is a host-only ``__Host-`` cookie (Secure, Path=/): a sibling
subdomain or a plain-HTTP page of the same host cannot plant one in a user's browser."""
SIGN_IN_SECONDS = 3600
SIGN_IN_PURPOSE = b"consent sign-in"
FORM_LIMIT = 16384  # one state and one credential (a JWT access token fits)
# (No form-action: browsers apply it to the sign-in's redirect on to the provider too.)
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"

UserOf = Callable[[str, str, str, Scope], Awaitable[str | None]]
"""(tenant, gateway, credential, request scope) -> the user the gateway's own inbound auth
gives that credential, or None when it does not accept it."""
ProvidersOf = Callable[[str, str], Mapping[str, ProviderSpec] | None]
"""(tenant, gateway) -> the gateway's credential providers by name, or None (no such gateway)."""


class ConsentParts(Protocol):
    """What the consent routes need from the process that serves them."""

    @property
    def broker(self) -> Broker: ...

    @property
    def providers(self) -> ProvidersOf: ...

    @property
    def user_of(self) -> UserOf: ...


class _Flow:
    """One consent state, opened: who asked, for which gateway's provider."""

    def __init__(self, parts: ConsentParts, state: str) -> None:
        self.state = state
        if SessionBinding(parts.broker).owns(state):  # its binding is the application's, not a sign-in
            raise CredentialError("this link is an agent's authorization; open the link the agent gave")
        self.tenant, self.user, qualified = parts.broker.pending(state)
        # Credential providers are named "<gateway>/<provider>" (gateway.credentials).
        self.gateway, _, self.name = qualified.partition("/")
        found = parts.providers(self.tenant, self.gateway)
        spec = found.get(self.name) if found is not None else None
        if spec is None or spec.name != qualified:
            raise CredentialError(f"credential provider {self.name!r} is no longer configured; start again")
        self.provider = spec

    def signed_in_as(self, parts: ConsentParts, request: Request) -> str | None:
        """The user this browser is signed in as on the flow's gateway (None: not signed in)."""
        secure = _secure(parts, request)
        cookie = request.cookies.get(HOST_COOKIE if secure else COOKIE)
        doc = parts.broker.unseal(cookie, SIGN_IN_PURPOSE) if cookie else None
        if doc is None or doc.get("t") != self.tenant or doc.get("g") != self.gateway:
            return None
        return str(doc["u"])


def _secure(parts: ConsentParts, request: Request) -> bool:
    return urlsplit(parts.broker.callback_url).scheme == "https" or request.url.scheme == "https"


def consent_routes(parts: Callable[[], ConsentParts]) -> list[Route]:
    """The consent binding's routes; ``parts`` gives the running process's parts."""

    async def start(request: Request) -> Response:
        p = parts()
        try:
            flow = _Flow(p, request.query_params.get("state") or "")
        except CredentialError as exc:
            return _page(400, "This link cannot be used", str(exc))
        who = flow.signed_in_as(p, request)
        if who == flow.user:
            return RedirectResponse(p.broker.authorize_url(flow.provider, flow.state), 303)
        if who is not None:
            return _sign_in(flow, 403, _NOT_YOURS)
        return _sign_in(flow, 200, None)

    async def sign_in(request: Request) -> Response:
        p = parts()
        if not _same_origin(request, p.broker):
            return _page(
                403,
                "Sign-in refused",
                "This sign-in was sent from another site. Open the link your client gave you and "
                "sign in there.",
            )
        form = await _form(request)
        if form is None:
            return _page(413, "Sign-in refused", f"The form is larger than {FORM_LIMIT} bytes.")
        try:
            flow = _Flow(p, form.get("state", ""))
        except CredentialError as exc:
            return _page(400, "This link cannot be used", str(exc))
        credential = form.get("credential", "").strip()
        if (
            not credential
            or len(credential) > 8192
            or not credential.isascii()
            or not credential.isprintable()
        ):
            return _sign_in(flow, 400, "Paste an API key or access token: that is not one.")
        who = await p.user_of(flow.tenant, flow.gateway, credential, request.scope)
        if who is None:
            return _sign_in(flow, 401, f"Gateway {flow.gateway!r} does not accept that credential.")
        if who != flow.user:
            logger.warning(
                "consent link of tenant %r, gateway %r, provider %r opened by another user: stopped",
                flow.tenant,
                flow.gateway,
                flow.name,
            )
            return _page(403, "This link is not yours", _REFUSED)
        response = RedirectResponse(p.broker.authorize_url(flow.provider, flow.state), 303)
        cookie = p.broker.seal(
            {"t": flow.tenant, "g": flow.gateway, "u": who, "exp": time.time() + SIGN_IN_SECONDS},
            SIGN_IN_PURPOSE,
        )
        secure = _secure(p, request)
        response.set_cookie(
            HOST_COOKIE if secure else COOKIE,
            cookie,
            max_age=SIGN_IN_SECONDS,
            path="/" if secure else COOKIE_PATH,
            httponly=True,
            samesite="lax",  # the provider's redirect back is a cross-site navigation
            secure=secure,
        )
        return response

    async def callback(request: Request) -> Response:
        p = parts()
        q = request.query_params
        sessions = SessionBinding(p.broker)
        if sessions.owns(q.get("state") or ""):
            return await _session_returned(sessions, q.get("state") or "", q.get("code"), q.get("error"))
        if q.get("error"):
            return _page(400, "Authorization was not granted", f"The provider said: {q.get('error')}.")
        code, state = q.get("code"), q.get("state")
        if not code or not state:
            return _page(
                400, "Not an authorization response", "This page is where a provider sends you back."
            )
        try:
            flow = _Flow(p, state)
        except CredentialError as exc:
            return _page(400, "Authorization failed", str(exc))
        if flow.signed_in_as(p, request) != flow.user:
            logger.warning(
                "consent of tenant %r, gateway %r, provider %r came back to a browser not signed in "
                "as the user who asked: nothing stored",
                flow.tenant,
                flow.gateway,
                flow.name,
            )
            return _page(403, "Nothing was connected", _NOT_STARTED_HERE)
        try:
            await p.broker.complete({flow.provider.name: flow.provider}, code, state)
        except CredentialError as exc:
            return _page(400, "Authorization failed", str(exc))
        return _page(
            200, "Authorized", f"Switchboard can now use {flow.name} for you. You can close this window."
        )

    return [
        Route(f"{COOKIE_PATH}/start", start, methods=["GET"]),
        Route(f"{COOKIE_PATH}/sign-in", sign_in, methods=["POST"]),
        Route(f"{COOKIE_PATH}/callback", callback, methods=["GET"]),
    ]


async def _session_returned(
    sessions: SessionBinding, state: str, code: str | None, error: str | None
) -> Response:
    """A browser back from the provider for an agent's session: on to the application, which
    confirms its user (or a page saying what to do when the agent gave no return URL)."""
    try:
        back = await sessions.returned(state, code=code, error=error)
    except CredentialError as exc:
        return _page(400, "Authorization failed", str(exc))
    if back.error is not None:
        return _page(400, "Authorization was not granted", f"The provider said: {back.error}.")
    if back.redirect is not None:
        return RedirectResponse(back.redirect, 303)
    return _page(
        200,
        "Authorized",
        f"Go back to the application: once it confirms it is you, the agent can use {back.provider}. "
        "You can close this window.",
    )


_NOT_YOURS = (
    "This browser is signed in as another user than the one this link was made for. If someone "
    "sent you this link, stop here: continuing would connect your account to theirs. If it is "
    "your own link, sign in with your own credential."
)
_REFUSED = (
    "This link was made for another user of this gateway, so it was stopped here and nothing was "
    "connected. If someone sent it to you, you need not do anything. If it is yours, ask your "
    "client for a new link."
)
_NOT_STARTED_HERE = (
    "This authorization was not started in this browser by the user it is for, so nothing was "
    "saved. If someone sent you the link, you need not do anything; otherwise open the link your "
    "client gave you in this browser and sign in there."
)


def _same_origin(request: Request, broker: Broker) -> bool:
    """Whether a form post comes from our own pages: its Origin is this server (as the browser
    reached it, or as the gateway's public URL names it)."""
    origin = request.headers.get("origin")
    if not origin:
        return False
    public = urlsplit(broker.callback_url)
    here = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin in (f"{public.scheme}://{public.netloc}", here)


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form's fields (first value each); None past `FORM_LIMIT` (read no further)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    return {k: v[0] for k, v in fields.items()}


def _sign_in(flow: _Flow, status: int, error: str | None) -> HTMLResponse:
    problem = f"<p role=alert><strong>{html.escape(error)}</strong></p>" if error else ""
    body = (
        f"<p>Switchboard needs to know it is you before it connects {html.escape(flow.name)} to your "
        f"account on gateway {html.escape(flow.gateway)}. Paste the API key or access token your "
        "MCP client uses for this gateway.</p>"
        f"{problem}"
        '<form method=post action="sign-in">'
        f'<input type=hidden name=state value="{html.escape(flow.state)}">'
        "<label>API key or access token "
        "<input name=credential type=password autocomplete=off required></label> "
        "<button>Continue</button></form>"
    )
    return _html(status, f"Sign in to connect {flow.name}", body)


def _page(status: int, title: str, text: str) -> HTMLResponse:
    return _html(status, title, f"<p>{html.escape(text)}</p>")


def _html(status: int, title: str, body: str) -> HTMLResponse:
    page = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<main><h1>{html.escape(title)}</h1>{body}</main></html>"
    )
    headers = {"Content-Security-Policy": _CSP, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(page, status, headers=headers)
