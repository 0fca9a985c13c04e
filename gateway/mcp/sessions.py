"""Handshake-era sessions: who holds them, how many each caller may hold, which one goes first.

The SDK's session manager keeps every session an ``initialize`` opened until it has
been idle for its timeout, and refuses new sessions (HTTP 503) once its table is
full: anyone who can reach the gateway could fill it with initializes that never
come back and lock every 2025-era client out (issue 15, hole 7). Here:

- each caller (its principal; an anonymous caller by its address, an IPv6 one by
  its /64) holds at most ``per_caller`` sessions, and the whole table ``max_sessions``;
- a new session never waits for room: the least recently used *idle* session (of the
  same caller first, else of anyone) is ended to make it, and answers 404 from then on,
  as the spec says of a session that has ended;
- a session that never made a request after its ``initialize`` ends after
  ``handshake_seconds``; any other after ``idle_seconds`` without a request;
- a session belongs to the principal that opened it: another principal's request
  with its id is answered as if it did not exist (404).

Only when every session a caller holds is busy (a request in flight) is a new one
refused, with 429 for that caller; the SDK's 503 remains for a table full of busy
sessions. ADR 0021.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Scope

from gateway.core.types import Principal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionLimits:
    """How many handshake-era sessions there may be, and how long an idle one lives."""

    max_sessions: int = 10_000
    per_caller: int = 100
    idle_seconds: float = 30 * 60
    handshake_seconds: float = 60.0


@dataclass(frozen=True)
class Caller:
    """Whose a request is: ``owner`` for binding a session, ``quota`` for counting sessions."""

    owner: str
    quota: str

    @property
    def tenant(self) -> str:
        return self.owner.partition("/")[0]


def caller_of(scope: Scope, principal: Principal | None) -> Caller:
    """The caller of an HTTP request: its principal, or (anonymous) where it comes from."""
    if principal is not None and principal.subject != "anonymous":
        who = f"{principal.tenant}/{principal.subject}"
        return Caller(owner=who, quota=f"principal:{who}")
    tenant = principal.tenant if principal is not None else ""
    client = scope.get("client")
    address = str(client[0]) if client else ""
    try:
        ip = ipaddress.ip_address(address)
        # One IPv6 host usually has a whole /64: count it as one address.
        address = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
    except ValueError:
        pass  # a Unix socket or a made-up address: counted as given
    return Caller(owner=f"{tenant}/anonymous", quota=f"address:{address}")


@dataclass(eq=False)
class _Entry:
    caller: Caller
    transport: StreamableHTTPServerTransport
    established: bool = False  # a request came back after the opening one
    in_flight: int = 0  # requests of ours using it (either path)


_OPENING: ContextVar[Caller | None] = ContextVar("switchboard_opening_caller", default=None)


class SessionTable(StreamableHTTPSessionManager):
    """The SDK's session manager with per-caller limits and least-recently-used eviction.

    Built on mcp 2.3.0's manager (pinned): sessions are admitted in ``_admit_session``
    (under the manager's creation lock, so admission is exact) and forgotten in
    ``_discard_session``, however they end.
    """

    def __init__(
        self,
        server: Server[Any],
        *,
        security_settings: TransportSecuritySettings,
        max_request_body_size: int,
        limits: SessionLimits,
        on_end: Any = None,
    ) -> None:
        super().__init__(
            server,
            security_settings=security_settings,
            max_request_body_size=max_request_body_size,
            # The SDK restarts this countdown after each of its requests; ours (below) moves
            # it to idle_seconds once a session is in use.
            session_idle_timeout=limits.handshake_seconds,
            max_sessions=None,  # room is made here instead of refusing
        )
        self.limits = limits
        self.on_end = on_end
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        # Sessions by caller (``q:`` + quota) and by tenant (``t:`` + tenant), least recent first.
        self._groups: dict[str, OrderedDict[str, None]] = {}

    # -- the front's side -----------------------------------------------------------

    def known(self, session_id: str) -> bool:
        return session_id in self._entries

    def belongs_to(self, session_id: str, caller: Caller) -> bool:
        """False when the session is another principal's (then it does not exist for this one)."""
        entry = self._entries.get(session_id)
        return entry is None or entry.caller.owner == caller.owner

    def refusal(self, caller: Caller) -> str | None:
        """Why ``caller`` cannot open a session now (every one it holds is busy), or None."""
        held = self._groups.get(f"q:{caller.quota}")
        if held is None or len(held) < self.limits.per_caller:
            return None
        if any(self._idle(sid) for sid in held):
            return None
        return (
            f"Too many sessions: you hold {len(held)} sessions, all with requests in flight "
            f"(at most {self.limits.per_caller} per caller). End one with DELETE, or reuse one."
        )

    @contextmanager
    def opening(self, caller: Caller) -> Iterator[None]:
        """Requests without a session id in this block may open a session for ``caller``."""
        token = _OPENING.set(caller)
        try:
            yield
        finally:
            _OPENING.reset(token)

    @contextmanager
    def using(self, session_id: str) -> Iterator[None]:
        """A request of the session in this block: it is busy, then used just now."""
        entry = self._entries.get(session_id)
        if entry is None:
            yield
            return
        entry.in_flight += 1
        if not entry.established:
            entry.established = True
            # The SDK restarts the countdown with this after each of its requests, and the
            # opening request's may end after this one has (its SSE answer winds down late):
            # from now on every restart, the SDK's or ours, counts the long wait.
            entry.transport._idle_timeout = self.limits.idle_seconds
        self._touch(session_id, entry)
        try:
            yield
        finally:
            entry.in_flight -= 1
            self._touch(session_id, entry)
            self._restart_countdown(entry)

    # -- admission and eviction ----------------------------------------------------

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        caller = _OPENING.get() or Caller(owner="", quota="")
        held = self._groups.get(f"q:{caller.quota}", OrderedDict())
        while len(held) >= self.limits.per_caller:
            if not self._evict_one(held):
                return None
        while len(self._entries) >= self.limits.max_sessions:
            if not self._make_room(caller):
                return None  # no idle session the caller may end: the SDK answers 503
        transport = super()._admit_session(requestor)
        if transport is not None and transport.mcp_session_id is not None:
            sid = transport.mcp_session_id
            self._entries[sid] = _Entry(caller, transport)
            for key in _group_keys(caller):
                self._groups.setdefault(key, OrderedDict())[sid] = None
        return transport

    def _make_room(self, caller: Caller) -> bool:
        """End one idle session to admit ``caller``'s: from the tenants holding more sessions
        than the caller's tenant (the most first), else from the caller's own tenant. One
        tenant's callers, however many and however busy, never end another tenant's sessions
        while that tenant holds fewer."""
        own = self._groups.get(f"t:{caller.tenant}", OrderedDict())
        larger = sorted(
            (g for k, g in self._groups.items() if k.startswith("t:") and len(g) > len(own)),
            key=len,
            reverse=True,
        )
        return any(self._evict_one(group) for group in [*larger, own])

    def _evict_one(self, order: OrderedDict[str, Any]) -> bool:
        """End the least recently used idle session in ``order``; False when none is idle."""
        for sid in order:
            if self._idle(sid):
                logger.debug("session %s ended to make room for a new one", sid[:8])
                entry = self._forget(sid)
                # Gone at once (its id answers 404); its transport ends with its server task.
                self._server_instances.pop(sid, None)
                self._session_owners.pop(sid, None)
                if entry is not None and entry.transport.idle_scope is not None:
                    entry.transport.idle_scope.cancel()
                return True
        return False

    def _idle(self, session_id: str) -> bool:
        entry = self._entries.get(session_id)
        if entry is None or entry.in_flight:
            return False
        scope = entry.transport.idle_scope
        # No scope yet: still opening. An infinite deadline: the SDK is serving a request.
        return scope is not None and scope.deadline != math.inf

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        entry = self._forget(session_id)  # (None: already evicted, or ended twice)
        if entry is not None and transport.idle_scope is not None and transport.idle_scope.cancel_called:
            after = "a request" if entry.established else "its initialize"
            logger.debug("session %s ended: idle too long after %s", session_id, after)
        await super()._discard_session(session_id, transport)

    def _forget(self, session_id: str) -> _Entry | None:
        entry = self._entries.pop(session_id, None)
        if entry is not None:
            for key in _group_keys(entry.caller):
                held = self._groups.get(key)
                if held is not None:
                    held.pop(session_id, None)
                    if not held:
                        del self._groups[key]
            if self.on_end is not None:
                self.on_end(session_id)
        return entry

    def _touch(self, session_id: str, entry: _Entry) -> None:
        if session_id in self._entries:
            self._entries.move_to_end(session_id)
            for key in _group_keys(entry.caller):
                held = self._groups.get(key)
                if held is not None and session_id in held:
                    held.move_to_end(session_id)

    def _restart_countdown(self, entry: _Entry) -> None:
        scope = entry.transport.idle_scope
        if entry.in_flight or scope is None or scope.cancel_called or scope.deadline == math.inf:
            return  # still busy (here or on the SDK's side), or already ending
        wait = self.limits.idle_seconds if entry.established else self.limits.handshake_seconds
        scope.deadline = anyio.current_time() + wait


__all__ = ["Caller", "SessionLimits", "SessionTable", "caller_of"]


def _group_keys(caller: Caller) -> tuple[str, str]:
    return f"q:{caller.quota}", f"t:{caller.tenant}"
