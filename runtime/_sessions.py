"""Runtime sessions: each a sandbox running one version's app (ADR 0039).

A session starts the app as AgentCore Runtime would (``python ENTRY`` in the code folder, the
HTTP contract on 8080: ``POST /invocations``, ``GET /ping``), inside a sandbox (bubblewrap or
gVisor) with no network: the version's code and environment bound read-only, a work directory of
its own. The host reaches the app through the forwarder (``forward.py``): a UNIX socket in the
sandbox's home, out of the sandbox's reach, piped to 127.0.0.1:8080 inside (``_reach`` says how,
per backend). A session is found by its id; the same id reaches the same sandbox, with its files
and its app's memory, until it is stopped or ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
from anyio.abc import Process, TaskGroup

from runtime._deploy import Version
from runtime._links import Links
from runtime._reach import APP_SOCKET, Backend, Box, Unreachable, launch, problem
from sandbox import APP_NOT_LISTENING, FORWARD, FORWARD_INSIDE, BwrapBackend, Options, SandboxError

Secrets = Callable[[str, Version], Awaitable[Mapping[str, str]]]  # (owner, version) -> variables

START_SECONDS = 60.0
LOG_BYTES = 1024 * 1024  # the app's first healthy ping, after its imports
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
REQUEST_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id"
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{32,255}")  # AgentCore's length; a UUID's characters


class SessionError(Exception):
    """A session could not be started or answered; the message says why."""


class NotYours(SessionError):
    """The session named is another caller's."""


class AtCapacity(SessionError):
    """No more sessions may start now (the tenant's, or the process's, limit)."""


@dataclass
class Session:
    """One session: its sandbox, its app, and when it was used."""

    id: str
    version: Version
    box: Box
    app: Process
    http: httpx.AsyncClient
    work: int  # a descriptor of its home, never of a place the sandbox can write (_reach)
    socket: str = ""  # the app's socket, ``/proc/self/fd/{work}/app.sock``, for a client of its own
    owner: str = ""
    user: str = ""  # who opened it: only they reach it again (the host: anyone)
    ended: bool = False  # (stopped: its descriptors are closed, their numbers free for others)
    started: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def held(self) -> Iterator[str]:
        """The app's socket by a name of the caller's own (a copy of the home's descriptor), for a
        client that connects while the session may end: once it has ended, its number may name
        another session's home, so a session already ended is refused here, before any copy.

        Raises:
            SessionError: the session has ended.
        """
        if self.ended:
            raise SessionError(f"session {self.id} has ended: call again for a new one")
        fd = os.dup(self.work)
        try:
            yield f"/proc/self/fd/{fd}/{APP_SOCKET}"
        finally:
            os.close(fd)

    def headers(
        self, request_id: str | None = None, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        return {**(extra or {}), SESSION_HEADER: self.id, REQUEST_HEADER: request_id or secrets.token_hex(16)}

    async def ping(self) -> dict[str, object]:
        answer = await self.http.get("/ping")
        answer.raise_for_status()
        found: dict[str, object] = answer.json()
        return found

    @asynccontextmanager
    async def invoke(
        self,
        payload: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str = "application/json",
    ) -> AsyncIterator[httpx.Response]:
        """``POST /invocations`` in this session (an A2A server's ``POST /``, its JSON-RPC: AgentCore's
        contract): the app's answer, its body read as it comes."""
        self.used = time.monotonic()
        # (identity: what is relayed is the app's bytes as they are, never compressed on loopback)
        sent = {**self.headers(extra=headers), "Content-Type": content_type, "Accept-Encoding": "identity"}
        path = "/" if self.version.protocol == "A2A" else "/invocations"
        request = self.http.build_request("POST", path, content=payload, headers=sent)
        try:
            answer = await self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise SessionError(f"the app of session {self.id} did not answer: {exc}") from None
        try:
            yield answer
        finally:
            await answer.aclose()
            self.used = time.monotonic()


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """How long sessions live (AgentCore's defaults: 15 minutes idle, 8 hours in all)."""

    idle_seconds: float = 900.0  # unused this long (and not HealthyBusy): ended
    max_seconds: float = 8 * 3600.0  # this long after it started: ended, busy or not
    warm: int = 0  # apps started ahead, per tenant and version in use, for the next new session
    owner_sessions: int = 16  # sessions (and pooled apps) one owner (tenant) may have at once
    max_sessions: int = 64  # in all, in this process
    sweep_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class Listed:
    """A live session as the admin sees it."""

    id: str
    version: str
    age_seconds: float
    idle_seconds: float
    cpu_seconds: float
    memory_bytes: int


class Sessions:
    """The live sessions of every runtime, on one sandbox backend (bubblewrap, or gVisor made
    with ``host_uds="all"``); ``running()`` ends the idle and the old ones and keeps ``warm`` apps
    started per version.

    Raises:
        SessionError: the backend cannot carry sessions (gVisor without host sockets).
    """

    def __init__(
        self,
        backend: Backend,
        options: Options | None = None,
        lifecycle: Lifecycle | None = None,
        links: Links | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        self.links = links or Links([])  # the services the apps reach (ADR 0040)
        wrong = problem(backend, self.links)
        if wrong is not None:
            raise SessionError(wrong)
        self.backend = backend
        self.secrets = secrets  # variables from the host for the owner's sessions (secrets, keys)
        self.options = options or Options()
        self.lifecycle = lifecycle or Lifecycle()
        self.live: dict[str, Session] = {}
        self.starting: dict[str, anyio.Lock] = {}
        self.pool: dict[str, list[Session]] = {}  # by version tag: started apps, no session yet
        self.versions: dict[str, Version] = {}  # the versions in use (the pool refills for them)
        self.filling: set[str] = set()
        self.tasks: TaskGroup | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Sessions]:
        """The sweeper and the pool's refills run while this is open; everything ends with it."""
        async with anyio.create_task_group() as tasks:
            self.tasks = tasks
            tasks.start_soon(self._sweep)
            try:
                yield self
            finally:
                self.tasks = None
                tasks.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await self.aclose()

    async def _sweep(self) -> None:
        while True:
            await anyio.sleep(self.lifecycle.sweep_seconds)
            now = time.monotonic()
            for session in list(self.live.values()):
                old = now - session.started > self.lifecycle.max_seconds
                if old or (now - session.used > self.lifecycle.idle_seconds and not await _busy(session)):
                    await self.stop(session.id, session.owner)

    def live_version(self, session_id: str, owner: str = "") -> Version | None:
        """The version session ``session_id`` of ``owner`` runs, if it is live (sessions keep theirs)."""
        found = self.live.get(_key(owner, session_id))
        return found.version if found is not None and found.app.returncode is None else None

    def listed(self, owner: str = "") -> list[Listed]:
        """The live sessions of ``owner``: age, last use, CPU and memory."""
        now = time.monotonic()
        out = []
        for session in self.live.values():
            if session.owner != owner:
                continue
            usage = session.box.usage()
            out.append(
                Listed(
                    session.id,
                    session.version.tag,
                    now - session.started,
                    now - session.used,
                    usage.cpu_seconds,
                    usage.memory_bytes,
                )
            )
        return out

    def _refill(self, version: Version, owner: str) -> None:
        """Start apps for ``owner``'s pool of ``version`` in the background, up to ``warm``."""
        tasks, pool = self.tasks, _pool(owner, version)
        if not self.lifecycle.warm or pool in self.filling or tasks is None:
            return
        self.filling.add(pool)

        async def fill() -> None:
            try:
                while len(self.pool.setdefault(pool, [])) < self.lifecycle.warm and self._room(owner):
                    self.pool[pool].append(await self._start(version, "", owner))
            except (SessionError, SandboxError, OSError):  # (the next one starts cold, and says why)
                pass
            finally:
                self.filling.discard(pool)

        tasks.start_soon(fill)

    def _room(self, owner: str) -> bool:
        """Whether one more sandbox may start for ``owner`` (the pools count too)."""
        pooled = sum(len(p) for k, p in self.pool.items() if k.startswith(f"{owner}\x00"))
        mine = sum(1 for s in self.live.values() if s.owner == owner) + pooled
        everyone = len(self.live) + sum(len(p) for p in self.pool.values())
        return mine < self.lifecycle.owner_sessions and everyone < self.lifecycle.max_sessions

    async def session(
        self, version: Version, session_id: str | None = None, owner: str = "", user: str | None = None
    ) -> Session:
        """The session ``session_id`` of ``owner`` (a tenant, say: owners' sessions never meet),
        started on first use; or a new one. ``user``: who calls; a session is its first caller's,
        and another user naming it is refused (``NotYours``); None: the host itself (no check).

        Raises:
            SessionError: a bad id, another user's session, a session of another version, an app
                that did not start; AtCapacity: no room.
        """
        session_id = session_id or secrets.token_hex(20)
        if not SESSION_ID.fullmatch(session_id):
            raise SessionError(
                f"a runtime session id has 33 to 256 characters, letters, digits, '-' or '_' "
                f"(a UUID will do), not {session_id[:40]!r} ({len(session_id)} characters)"
            )
        key = _key(owner, session_id)
        lock = self.starting.setdefault(key, anyio.Lock())
        async with lock:
            found = self.live.get(key)
            if found is not None:
                if user is not None and found.user != user:
                    raise NotYours(
                        f"session {session_id} is another caller's: start your own (a new session id)"
                    )
                if found.version.tag != version.tag:
                    raise SessionError(f"session {session_id} runs {found.version.tag}, not {version.tag}")
                if found.app.returncode is None:
                    return found
                await self.stop(session_id, owner)  # (its app ended: the next call starts it afresh)
            self.versions[version.tag] = version
            pooled = self.pool.get(_pool(owner, version)) or []
            while pooled and pooled[0].app.returncode is not None:  # (an app that ended while it waited)
                await _end(pooled.pop(0))
            if not pooled and not self._room(owner):
                self.starting.pop(key, None)
                raise AtCapacity(
                    f"no more sessions now: {self.lifecycle.owner_sessions} a tenant and "
                    f"{self.lifecycle.max_sessions} in all run; stop one, or wait for idle ones to end"
                )
            session = pooled.pop(0) if pooled else await self._start(version, session_id, owner)
            session.id, session.owner, session.user = session_id, owner, user or ""
            session.started = session.used = time.monotonic()
            self.live[key] = session
            self._refill(version, owner)
            return session

    async def _start(self, version: Version, session_id: str, owner: str) -> Session:
        if version.image and not isinstance(self.backend, BwrapBackend):
            raise SessionError(f"{version.tag} is an image: its sessions run on bubblewrap (ADR 0044)")
        code = () if version.image else ((version.code, "/app"), (version.venv, "/opt/venv"))
        binds = (*code, (str(FORWARD), FORWARD_INSIDE), *self.links.binds)
        # A folder's app runs with the version's environment; an image's, its own command.
        app = (
            shlex.split(version.entry) if version.image else ["/opt/venv/bin/python", f"/app/{version.entry}"]
        )
        secret = {} if self.secrets is None else await self.secrets(owner, version)
        environment = {
            **version.environment,
            **secret,
            **self.links.environment(),
            "DOCKER_CONTAINER": "1",
            "HOME": "/work",
            "PYTHONUNBUFFERED": "1",
        }
        options = Options(
            memory_bytes=self.options.memory_bytes,
            processes=self.options.processes,
            cpus=self.options.cpus,
            disk_bytes=self.options.disk_bytes,
            files=self.options.files,
            binds=(*self.options.binds, *binds),
            environment={**self.options.environment, **environment},
            root=version.image or None,
        )
        box: Box = await self.backend.start(options)
        work = -1
        try:
            # The app's socket is reached through the sandbox's home (only home/work and home/tmp
            # are bound inside), named through a descriptor of it held for the session's life.
            work = os.open(Path(box.home), os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            socket = f"/proc/self/fd/{work}/{APP_SOCKET}"
            forwarded = [str(version.port), *self.links.arguments(), "--"]
            launched = await launch(box, work, [*forwarded, *app])
            http = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=socket),
                base_url=f"http://127.0.0.1:{version.port}",
                timeout=httpx.Timeout(None, connect=10),
            )
            session = Session(session_id, version, box, launched.app, http, work, socket)
            await _healthy(session, launched.adopt)
        except BaseException:
            if work >= 0:
                os.close(work)
            await box.stop()
            raise
        return session

    async def stop(self, session_id: str, owner: str = "", user: str | None = None) -> bool:
        """End a session at once (its sandbox and everything in it); False: no such session (or,
        ``user`` given, none of theirs)."""
        key = _key(owner, session_id)
        found = self.live.get(key)
        if found is not None and user is not None and found.user != user:
            return False
        session = self.live.pop(key, None)
        self.starting.pop(key, None)
        if session is None:
            return False
        await _end(session)
        return True

    async def aclose(self) -> None:
        for session in list(self.live.values()):
            await self.stop(session.id, session.owner)
        for pooled in self.pool.values():
            while pooled:
                await _end(pooled.pop())


async def _healthy(session: Session, adopt: Callable[[], bool]) -> None:
    """Wait for the app's socket (``adopt``) and its first healthy ping (an MCP or A2A server's
    first answer: they have no ping), its imports done; or say why it did not come."""
    adopted = False
    with anyio.move_on_after(START_SECONDS):
        while session.app.returncode is None:
            try:
                adopted = adopted or await anyio.to_thread.run_sync(adopt)
            except Unreachable as exc:
                raise SessionError(f"the app of {session.version.tag} cannot be reached: {exc}") from None
            if not adopted:
                await anyio.sleep(0.02)
                continue
            try:
                if session.version.protocol != "HTTP":
                    answer = await session.http.get("/")
                    if answer.status_code != 502 or answer.content != APP_NOT_LISTENING:
                        return
                elif (await session.ping()).get("status") in ("Healthy", "HealthyBusy"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            await anyio.sleep(0.02)
        said = await _log(session)
        raise SessionError(
            f"the app of {session.version.tag} ended as it started (status {session.app.returncode}): {said}"
        )
    said = await _log(session)
    raise SessionError(
        f"the app of {session.version.tag} did not answer /ping within {START_SECONDS:.0f} s: {said}"
    )


async def _end(session: Session) -> None:
    """End a session (its clients, its descriptor, its sandbox)."""
    session.ended = True
    with anyio.CancelScope(shield=True):
        await session.http.aclose()
        os.close(session.work)
        await session.box.stop()


def _pool(owner: str, version: Version) -> str:
    """The pool of ``owner``'s apps of ``version`` (its code's folder: a version is one tenant's)."""
    return f"{owner}\x00{version.code}"


def _key(owner: str, session_id: str) -> str:
    return f"{owner}\x00{session_id}"


async def _busy(session: Session) -> bool:
    """Whether the app says it works in the background (``HealthyBusy``): kept past its idle time."""
    try:
        with anyio.fail_after(5):
            return (await session.ping()).get("status") == "HealthyBusy"
    except (httpx.HTTPError, ValueError, TimeoutError):
        return False


async def _log(session: Session) -> str:
    """The end of what the app printed: its log in the sandbox's work directory, read as any file
    of the sandbox's is (never through a link it may have put there)."""
    try:
        said = await session.box.read(".runtime/app.log", limit=LOG_BYTES)
    except (SandboxError, OSError):
        return "(its log could not be read)"
    return said[-800:].decode(errors="replace").strip() or "(it printed nothing)"
