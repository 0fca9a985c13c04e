"""The process's hosted agents (``runtime/``, ADR 0039, 0041): each tenant's versions under
``{data_dir}/runtimes/{tenant}``, sessions in sandboxes owned by their tenant, ended when idle or
old, a warm pool per version; what each session is given from the host (the gateway's link,
secrets from the vault, its own access key for the token vault, a workload access token per
invocation); ``switchboard.yaml``'s runtimes applied. The HTTP routes are ``runtime_routes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.abc import TaskGroup

from gateway.auth import TENANT_VAULT, WORKLOAD, AccessKey, AccessKeys, qualified
from gateway.config import RuntimeSpec
from gateway.core.errors import ConfigError, ConfigIssue
from gateway.interpreters import sandbox_root
from gateway.settings import Settings
from gateway.stages import AuditLog
from gateway.store import CallRecord
from gateway.telemetry import trace_headers
from identity.api import WorkloadTokens
from identity.outbound import SERVICE
from identity.vault import Owner, Vault
from runtime import (
    Backend,
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
from sandbox import BwrapBackend, GvisorBackend, Options, backend_problem

MIB = 1024 * 1024
GATEWAY_INSIDE = 7070  # where a session's app reaches the gateway
AGENT_REGION = "us-east-1"  # (the region a hosted agent's AWS clients sign for)
WORKLOAD_TOKEN = "WorkloadAccessToken"  # (the SDK's header: BedrockAgentCoreContext's token)
USER_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"
CARD_USER = "\x00card"  # (the host's own session for a card: no caller's)
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
        self._deploying = anyio.Semaphore(2)  # (deploys at once, every tenant's)
        self._cards: dict[tuple[str, str], dict[str, Any]] = {}  # (tenant, version): its card
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
            session = await self.sessions.session(
                version, session_id, owner=caller.tenant, user=caller.subject
            )
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
            subject = f"runtime:{runtime}"  # (_identity.RUNTIME_SUBJECT: its tokens its own only)
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
        """The Agent Card of an A2A server: read once per version from a session of its own (ended
        once read), its URLs those where callers reach it through this gateway.

        Raises:
            DeployError, EndpointError: no such runtime, version or endpoint; SessionError: not an
            A2A server, or it did not answer with a card.
        """
        if self.sessions is None:
            raise SessionError(f"hosted agents cannot run here: {self.problem}")
        key = hashlib.sha256(f"{caller.tenant}\x00{runtime}\x00{qualifier or ''}".encode()).hexdigest()
        session_id = f"card-{key[:40]}"
        version = self.choose(caller.tenant, runtime, qualifier, session_id)
        if version.protocol != "A2A":
            raise SessionError(f"{version.tag} is an {version.protocol} server: only A2A servers have a card")
        known = self._cards.get((caller.tenant, version.tag))
        if known is not None:
            return dict(known)
        session = await self.sessions.session(version, session_id, owner=caller.tenant, user=CARD_USER)
        try:
            answer = await session.http.get(CARD, headers=session.headers())
            found: dict[str, Any] = answer.raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SessionError(f"{version.tag} did not answer its Agent Card: {exc}") from None
        finally:
            await self.sessions.stop(session_id, caller.tenant)
        if not isinstance(found, dict):
            raise SessionError(f"{version.tag} answered a card that is not a JSON object")
        # Callers reach it here, whatever the app wrote (never a URL of its choosing, where a
        # caller's token would go next).
        url = self.runtime_url(caller.tenant, runtime)
        if "url" in found:
            found["url"] = url
        for interface in found.get("supportedInterfaces") or found.get("additionalInterfaces") or []:
            if isinstance(interface, dict):
                interface["url"] = url
        self._cards[(caller.tenant, version.tag)] = found
        return dict(found)

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
            found = self._deployments[tenant] = Deployments(self.root / tenant, self._deploying)
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
        self.problem = backend_problem(self.settings.runtime_backend)
        if self.problem is not None:  # (sessions are refused, saying why; the rest serves)
            yield
            return
        settings = self.settings
        # The gateway, for its tools (ADR 0040), from the sandbox's 7070: on the socket serve made
        # for it, where a request is never taken as a loopback client's (it comes from a sandbox).
        services = parse_services(settings.runtime_services)
        if settings.runtime_gateway_socket is not None:
            gateway = Service("gateway", "", 0, GATEWAY_INSIDE, settings.runtime_gateway_socket)
            services.insert(0, gateway)
        links = Links(services)
        options = Options(
            memory_bytes=settings.runtime_memory_mb * MIB,
            disk_bytes=settings.runtime_disk_mb * MIB,
            environment={"SWITCHBOARD_GATEWAY_URL": f"http://127.0.0.1:{GATEWAY_INSIDE}"},
        )
        lifecycle = Lifecycle(
            settings.runtime_idle_seconds, settings.runtime_max_seconds, settings.runtime_warm
        )
        # gVisor: the box binds its app's socket on the host and reaches the links' (ADR 0043).
        backend: Backend = (
            GvisorBackend(sandbox_root(settings) / "runtime-gvisor", host_uds="all")
            if settings.runtime_backend == "gvisor"
            else BwrapBackend(sandbox_root(settings) / "runtime")
        )
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
