"""The process's hosted agents (``runtime/``, ADR 0039): each tenant's versions under
``{data_dir}/runtimes/{tenant}`` (``switchboard runtime deploy`` writes them), sessions in
bubblewrap sandboxes owned by their tenant, ended when idle or old, a warm pool per version.

Invocations come over plain HTTP, for clients without SigV4:

    POST /runtimes/{runtime}/invocations                    the default tenant's
    POST /tenants/{tenant}/runtimes/{runtime}/invocations

authenticated as the tenant's ``default`` gateway authenticates its callers; the session is the
``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`` header's (a new one without it, said in the
answer's header); ``?version=N`` picks a version (the latest by default). The app's answer, JSON
or a stream of server-sent events, is relayed as it comes. ``/runtimes/{runtime}/ws`` (and the
tenant's) relays a WebSocket both ways to the app's ``/ws`` in the session's sandbox.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.abc import TaskGroup
from starlette.background import BackgroundTask
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gateway.auth import TENANT_VAULT, WORKLOAD, AccessKey, AccessKeys, qualified
from gateway.config import RuntimeSpec
from gateway.core.errors import ConfigError, ConfigIssue
from gateway.interpreters import sandbox_root
from gateway.serving import read_body
from gateway.settings import Settings
from gateway.stages import AuditLog
from gateway.store import CallRecord
from gateway.telemetry import trace_headers
from identity.api import WorkloadTokens
from identity.outbound import SERVICE
from identity.vault import Owner, Vault
from runtime import (
    SESSION_HEADER,
    AtCapacity,
    DeployError,
    Deployments,
    EndpointError,
    Lifecycle,
    Links,
    Service,
    Session,
    SessionError,
    Sessions,
    Version,
    fingerprint,
    parse_services,
)
from runtime import Settings as VersionSettings
from sandbox import BwrapBackend, Options, available

MIB = 1024 * 1024
GATEWAY_INSIDE = 7070  # where a session's app reaches the gateway
AGENT_REGION = "us-east-1"  # (the region a hosted agent's AWS clients sign for)
WORKLOAD_TOKEN = "WorkloadAccessToken"  # (the SDK's header: BedrockAgentCoreContext's token)
USER_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"
AWS_KIND = "agent_runtime"  # (a runtime's AgentCore record: the id the control plane gave out)
# What a caller may pass on to the app: AgentCore's custom headers. Never the caller's credential
# (the app is not trusted with it: AgentCore passes Authorization only when a runtime asks).
PASSED = ("x-amzn-bedrock-agentcore-runtime-custom-",)
A2A_PASSED = ("accept", "a2a-version", "x-a2a-extensions")
CARD = "/.well-known/agent-card.json"
# The app's answer goes out under the gateway's origin: never as a page that runs script there.
RELAYED = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'"}


class Runtimes:
    """Every tenant's hosted agents in this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = (settings.data_dir / "runtimes").resolve()
        self.sessions: Sessions | None = None
        self.problem: str | None = None
        self.audit: AuditLog | None = None  # (set with the services: every invocation recorded)
        self.vault: Vault | None = None  # (set with the services: versions' secrets)
        self.tasks: TaskGroup | None = None
        self._deployments: dict[str, Deployments] = {}
        # (set with the services) Workload access tokens for each invocation, and each runtime's
        # own access key for AgentCore's token vault (ADR 0041): the SDK's @requires_* work.
        self.tokens: WorkloadTokens | None = None
        self.aws_keys: AccessKeys | None = None
        self._keys: dict[tuple[str, str], AccessKey] = {}
        self._keys_lock = anyio.Lock()

    def choose(self, tenant: str, runtime: str, qualifier: str | None, session_id: str) -> Version:
        """The version ``session_id`` runs: its live session's (affinity), or the one the endpoint
        (``qualifier``: a name, DEFAULT when None, or a version's number) gives a new session.

        Raises:
            DeployError, EndpointError: no such runtime, version or endpoint.
        """
        deployments = self.deployments(tenant)
        live = None if self.sessions is None else self.sessions.live_version(session_id, tenant)
        kept = live is not None and live.runtime == runtime and not (qualifier or "").isdigit()
        if kept and live is not None and deployments.versions(runtime):  # (not a runtime deleted since)
            return live
        return deployments.resolve(runtime, qualifier, session_id)

    async def secrets(self, tenant: str, version: Version) -> dict[str, str]:
        """A session's variables from the host: the version's secrets (API keys from the tenant's
        vault, by provider name), and the runtime's own access key for AgentCore's token vault,
        reached through the gateway's link (the SDK's IdentityClient signs with it).

        Raises:
            SessionError: a provider the tenant does not have (the session does not start).
        """
        out: dict[str, str] = {"AGENTCORE_RUNTIME_URL": self.runtime_url(tenant, version.runtime)}
        own = await self._agent_key(tenant, version.runtime)
        if own is not None:
            api = f"http://127.0.0.1:{GATEWAY_INSIDE}/aws/agentcore"
            out |= {
                "AWS_ACCESS_KEY_ID": own.access_key_id,
                "AWS_SECRET_ACCESS_KEY": own.secret,
                "AWS_REGION": AGENT_REGION,
                "AWS_DEFAULT_REGION": AGENT_REGION,
                "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": api,
                "BEDROCK_AGENTCORE_DP_ENDPOINT": api,
            }
        for variable, provider in version.secrets.items():
            owner = Owner(tenant, SERVICE, qualified(TENANT_VAULT, provider), "api_key")
            kept = None if self.vault is None else await self.vault.get(owner, tool=f"runtime/{version.tag}")
            if kept is None:
                raise SessionError(
                    f"{version.tag} takes {variable} from API key credential provider {provider!r}, "
                    f"which tenant {tenant!r} does not have: create it (CreateApiKeyCredentialProvider)"
                )
            out[variable] = kept.decode()
        return out

    @contextlib.asynccontextmanager
    async def invoke(
        self,
        caller: Caller,
        version: Version,
        session_id: str | None,
        payload: bytes,
        headers: Mapping[str, str],
        content_type: str,
    ) -> AsyncIterator[tuple[Session, httpx.Response]]:
        """One invocation in ``session_id`` (a new session when None), its answer read as it comes;
        recorded in the call audit (``runtime/{name}:{version}``) once its answer has been read, and
        sent with the trace context of the span it runs under (the app's own spans join it).

        Raises:
            SessionError: the session could not start, or the app did not answer.
        """
        if self.sessions is None:
            raise SessionError(f"hosted agents cannot run here: {self.problem}")
        began = time.perf_counter()
        outcome, error = "ok", None
        try:
            session = await self.sessions.session(version, session_id, owner=caller.tenant)
            user = headers.get(USER_HEADER) or caller.subject
            traced = {**headers, **trace_headers(), **self.token(caller.tenant, version, user)}
            async with session.invoke(payload, traced, content_type=content_type) as answer:
                if answer.status_code >= 400:
                    outcome, error = "tool_error", f"the app answered {answer.status_code}"
                yield session, answer
        except BaseException as exc:
            outcome, error = "error", str(exc)[:500] or type(exc).__name__
            raise
        finally:
            if self.audit is not None:
                record = CallRecord(
                    time.time(),
                    caller.tenant,
                    "runtime",
                    caller.subject,
                    caller.client,
                    f"runtime/{version.tag}",
                    "allow",
                    hashlib.sha256(payload).hexdigest(),
                    outcome,
                    error,
                    (time.perf_counter() - began) * 1000,
                )
                with contextlib.suppress(Exception):  # (the answer went out; a failed record is logged there)
                    await self.audit.record(record)

    async def _agent_key(self, tenant: str, runtime: str) -> AccessKey | None:
        """The runtime's own access key (workload plane only), made on first use and kept."""
        if self.aws_keys is None:
            return None
        async with self._keys_lock:
            found = self._keys.get((tenant, runtime))
            if found is not None:
                return found
            subject = f"runtime:{runtime}"
            for row in await self.aws_keys.list(tenant):
                if row["subject"] == subject and list(row["planes"] or []) == [WORKLOAD]:
                    found = await self.aws_keys.find(str(row["access_key_id"]))
                    if found is not None:
                        break
            if found is None:
                found = await self.aws_keys.create(tenant, subject, frozenset({WORKLOAD}))
            self._keys[(tenant, runtime)] = found
            return found

    async def forget(self, tenant: str, runtime: str) -> None:
        """A runtime was deleted: its access key goes too."""
        self._keys.pop((tenant, runtime), None)
        if self.aws_keys is None:
            return
        for row in await self.aws_keys.list(tenant):
            if row["subject"] == f"runtime:{runtime}":
                await self.aws_keys.revoke(tenant, str(row["access_key_id"]))

    def token(self, tenant: str, version: Version, user: str) -> dict[str, str]:
        """The header that hands the app its workload access token for ``user`` (vault only)."""
        if self.tokens is None:
            return {}
        return {WORKLOAD_TOKEN: self.tokens.issue(tenant, version.runtime, user, vault_only=True)}

    async def card(self, caller: Caller, runtime: str, qualifier: str | None) -> dict[str, Any]:
        """The Agent Card of an A2A server (from a session of its own: the card is the version's).

        Raises:
            DeployError, EndpointError: no such runtime, version or endpoint; SessionError: not an
            A2A server, or it did not answer with a card.
        """
        if self.sessions is None:
            raise SessionError(f"hosted agents cannot run here: {self.problem}")
        key = hashlib.sha256(f"{caller.tenant}\x00{runtime}".encode()).hexdigest()
        session_id = f"card-{key[:40]}"
        version = self.choose(caller.tenant, runtime, qualifier, session_id)
        if version.protocol != "A2A":
            raise SessionError(f"{version.tag} is an {version.protocol} server: only A2A servers have a card")
        session = await self.sessions.session(version, session_id, owner=caller.tenant)
        try:
            answer = await session.http.get(CARD, headers=session.headers())
            found: dict[str, Any] = answer.raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SessionError(f"{version.tag} did not answer its Agent Card: {exc}") from None
        return found

    def runtime_url(self, tenant: str, runtime: str) -> str:
        """Where callers reach a runtime's invocations through this gateway (an A2A card's URL)."""
        settings = self.settings
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        base = (settings.public_url or f"http://{host}:{settings.port}").rstrip("/")
        where = "" if tenant == "default" else f"/tenants/{tenant}"
        return f"{base}{where}/runtimes/{runtime}/invocations/"

    def deployments(self, tenant: str) -> Deployments:
        """The tenant's versions and endpoints (one object a tenant: what it read is kept until
        the files change, and its deploys take turns)."""
        found = self._deployments.get(tenant)
        if found is None:
            found = self._deployments[tenant] = Deployments(self.root / tenant)
        return found

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[Runtimes]:
        async with anyio.create_task_group() as tasks:  # (deploys the control plane started)
            self.tasks = tasks
            try:
                async with self._sessions():
                    yield self
            finally:
                self.tasks = None
                tasks.cancel_scope.cancel()

    def later(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work`` in the background while the process runs (a deploy AgentCore asked for)."""
        if self.tasks is None:
            raise SessionError("hosted agents are not running in this process")
        self.tasks.start_soon(work)

    @contextlib.asynccontextmanager
    async def _sessions(self) -> AsyncIterator[None]:
        self.problem = available()
        if self.problem is not None:  # (sessions are refused, saying why; the rest serves)
            yield
            return
        settings = self.settings
        # The gateway, for its tools (ADR 0040): reached where it listens, from the sandbox's 7070.
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        gateway = Service("gateway", host, settings.port, GATEWAY_INSIDE)
        links = Links([gateway, *parse_services(settings.runtime_services)])
        options = Options(
            memory_bytes=settings.runtime_memory_mb * MIB,
            disk_bytes=settings.runtime_disk_mb * MIB,
            environment={"SWITCHBOARD_GATEWAY_URL": f"http://127.0.0.1:{GATEWAY_INSIDE}"},
        )
        lifecycle = Lifecycle(
            settings.runtime_idle_seconds, settings.runtime_max_seconds, settings.runtime_warm
        )
        backend = BwrapBackend(sandbox_root(settings) / "runtime")
        live = Sessions(backend, options, lifecycle, links, self.secrets)
        async with links.open(), live.running() as sessions:
            self.sessions = sessions
            try:
                yield
            finally:
                self.sessions = None


async def apply_runtimes(
    specs: Sequence[RuntimeSpec], deployments: Deployments, base: Path, source: str
) -> list[str]:
    """``switchboard.yaml``'s runtimes: each deployed as a new version when its folder or settings
    changed since its latest version, and its named endpoints set (the others of it deleted).
    What happened, a line each.

    Raises:
        ConfigError: a folder, setting, deploy or endpoint that failed, naming ``runtimes[i]``
            (the runtimes before it applied; the versions before it serving).
    """
    said: list[str] = []
    for index, spec in enumerate(specs):
        settings = VersionSettings(
            spec.entry, spec.protocol, spec.environment, spec.secrets, spec.description
        )
        folder = (base / spec.path).resolve()
        try:
            settings.check()
            if not folder.is_dir():
                raise DeployError(f"{spec.path}: not a directory (the folder is relative to {source})")
            made = await anyio.to_thread.run_sync(fingerprint, folder, settings)
            versions = deployments.versions(spec.name)
            if versions and versions[-1].source == made:
                said.append(f"runtime {spec.name} unchanged ({versions[-1].tag})")
            else:
                version = await deployments.deploy(spec.name, folder, settings=settings)
                said.append(f"runtime {spec.name} deployed {version.tag}")
            numbers = [v.number for v in deployments.versions(spec.name)]
            declared = {e.name for e in spec.endpoints}
            for kept in deployments.endpoints.all(spec.name)[1:]:
                if kept.name not in declared:
                    deployments.endpoints.delete(spec.name, kept.name)
            for e in spec.endpoints:
                deployments.endpoints.put(
                    spec.name,
                    e.name,
                    numbers,
                    version=e.version,
                    canary=e.canary,
                    weight=e.weight,
                    description=e.description,
                )
        except (DeployError, EndpointError) as exc:
            raise ConfigError([ConfigIssue(str(exc), location=f"runtimes[{index}]", source=source)]) from None
    return said


@dataclass(frozen=True, slots=True)
class Caller:
    """Who invokes: the tenant, and whom the audit names."""

    tenant: str
    subject: str
    client: str | None = None


Authenticate = Callable[
    [str, HTTPConnection], Awaitable[Any]
]  # the caller's principal, or a refusal Response


def runtime_routes(
    runtimes: Callable[[], Runtimes], authenticate: Authenticate, max_bytes: int
) -> list[BaseRoute]:
    """The invocation routes; ``authenticate(tenant, request)`` answers the caller's principal, or
    a Response that refuses them."""

    async def invoke(request: Request) -> Response:
        tenant = request.path_params.get("tenant", "default")
        name = request.path_params["runtime"]
        refused = await authenticate(tenant, request)
        if isinstance(refused, Response):
            return refused
        hosted = runtimes()
        if hosted.sessions is None:
            return _error(503, f"hosted agents cannot run here: {hosted.problem}")
        declared = request.headers.get("content-length", "")
        body = (
            None
            if declared.isdigit() and int(declared) > max_bytes
            else (await read_body(request.receive, max_bytes))[0]
        )
        if body is None:  # (over the limit, or the client left: read no further)
            return _error(
                413, f"the payload is larger than {max_bytes} bytes (SWITCHBOARD_MAX_REQUEST_BYTES)"
            )
        wanted, endpoint = request.query_params.get("version"), request.query_params.get("endpoint")
        if wanted is not None and not wanted.isdigit():
            return _error(400, f"version must be a number, not {wanted!r}")
        if wanted is not None and endpoint is not None:
            return _error(400, "give a version or an endpoint, not both")
        session_id = request.headers.get(SESSION_HEADER) or secrets.token_hex(20)
        try:
            version = hosted.choose(tenant, name, wanted or endpoint, session_id)
        except (DeployError, EndpointError) as exc:
            return _error(404, str(exc))
        if version.protocol == "MCP":
            return _error(400, _not_http(version))
        # An A2A server's JSON-RPC also needs what the client accepts and its A2A version.
        allowed = PASSED if version.protocol == "HTTP" else (*PASSED, *A2A_PASSED)
        passed = {k: v for k, v in request.headers.items() if k.lower().startswith(allowed)}
        content_type = request.headers.get("content-type", "application/json")
        caller = Caller(
            tenant, str(getattr(refused, "subject", "anonymous")), getattr(refused, "client_id", None)
        )
        streams = contextlib.AsyncExitStack()
        try:
            session, answer = await streams.enter_async_context(
                hosted.invoke(caller, version, session_id, body, passed, content_type)
            )
        except AtCapacity as exc:
            await streams.aclose()
            return _error(429, str(exc))
        except SessionError as exc:
            await streams.aclose()
            return _error(400 if "characters" in str(exc) else 502, str(exc))
        headers = {SESSION_HEADER: session.id}
        kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "cache-control")}
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers={**kept, **headers, **RELAYED},
            background=BackgroundTask(streams.aclose),
        )

    async def card(request: Request) -> Response:
        """An A2A server's Agent Card (AgentCore's GetAgentCard, over plain HTTP)."""
        tenant = request.path_params.get("tenant", "default")
        refused = await authenticate(tenant, request)
        if isinstance(refused, Response):
            return refused
        hosted = runtimes()
        caller = Caller(tenant, str(getattr(refused, "subject", "anonymous")))
        qualifier = request.query_params.get("endpoint") or request.query_params.get("version")
        try:
            found = await hosted.card(caller, request.path_params["runtime"], qualifier)
        except (DeployError, EndpointError) as exc:
            return _error(404, str(exc))
        except SessionError as exc:
            return _error(502, str(exc))
        return JSONResponse(found)

    async def talk(websocket: WebSocket) -> None:
        """``/ws``: the caller's WebSocket relayed both ways to the app's, in the session's sandbox."""
        tenant = websocket.path_params.get("tenant", "default")
        refused = await authenticate(tenant, websocket)
        hosted = runtimes()
        if isinstance(refused, Response) or hosted.sessions is None:
            await websocket.close(
                code=1008,
                reason="not authenticated" if isinstance(refused, Response) else "no sandboxes here",
            )
            return
        session_id = websocket.headers.get(SESSION_HEADER) or secrets.token_hex(20)
        try:
            qualifier = websocket.query_params.get("endpoint") or websocket.query_params.get("version")
            version = hosted.choose(tenant, websocket.path_params["runtime"], qualifier, session_id)
            if version.protocol != "HTTP":
                raise SessionError(_not_http(version))
            session = await hosted.sessions.session(version, session_id, owner=tenant)
        except (DeployError, EndpointError, SessionError) as exc:
            await websocket.close(code=1008, reason=str(exc)[:120])
            return
        subject = str(getattr(refused, "subject", "anonymous"))
        headers = {SESSION_HEADER: session.id, **trace_headers(), **hosted.token(tenant, version, subject)}
        try:
            async with unix_connect(
                session.socket, "ws://127.0.0.1:8080/ws", additional_headers=headers
            ) as app:
                await websocket.accept(headers=[(SESSION_HEADER.lower().encode(), session.id.encode())])
                session.used = time.monotonic()
                async with anyio.create_task_group() as both:

                    async def upward() -> None:
                        with contextlib.suppress(WebSocketDisconnect):
                            while True:
                                message = await websocket.receive()
                                if message["type"] == "websocket.disconnect":
                                    break
                                await app.send(message.get("text") or message.get("bytes") or "")
                        both.cancel_scope.cancel()

                    async def downward() -> None:
                        with contextlib.suppress(ConnectionClosed):
                            async for message in app:
                                await (
                                    websocket.send_text(message)
                                    if isinstance(message, str)
                                    else websocket.send_bytes(message)
                                )
                        both.cancel_scope.cancel()

                    both.start_soon(upward)
                    both.start_soon(downward)
        except (OSError, InvalidHandshake) as exc:
            with contextlib.suppress(RuntimeError):
                await websocket.close(code=1011, reason=f"the app's /ws did not answer: {exc}"[:120])
            return
        with contextlib.suppress(RuntimeError):
            await websocket.close()

    return [
        Route("/runtimes/{runtime}/invocations", invoke, methods=["POST"]),
        Route("/runtimes/{runtime}/invocations/", invoke, methods=["POST"]),  # (an A2A card's URL)
        Route("/tenants/{tenant}/runtimes/{runtime}/invocations", invoke, methods=["POST"]),
        Route("/tenants/{tenant}/runtimes/{runtime}/invocations/", invoke, methods=["POST"]),
        Route(f"/runtimes/{{runtime}}/invocations{CARD}", card, methods=["GET"]),
        Route(f"/tenants/{{tenant}}/runtimes/{{runtime}}/invocations{CARD}", card, methods=["GET"]),
        WebSocketRoute("/runtimes/{runtime}/ws", talk),
        WebSocketRoute("/tenants/{tenant}/runtimes/{runtime}/ws", talk),
    ]


def _not_http(version: Version) -> str:
    return f"{version.tag} is an {version.protocol} server, not an HTTP agent: " + (
        "call its tools through a gateway target of kind runtime"
        if version.protocol == "MCP"
        else "reach it over A2A"
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)
