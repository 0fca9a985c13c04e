"""The running system of one process: the store, the hub of live gateways, reloading one
from the other, and the admin keys; what the admin API, the UI and the CLI act on. The
ASGI app that serves it is wired in ``gateway.app``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import anyio

from gateway.auth import AccessKeys, Authenticator, provider_specs
from gateway.config import GatewaySpec, gateway_from_store
from gateway.core.errors import ConfigError
from gateway.hub import Hub
from gateway.interpreters import CodeInterpreters
from gateway.pins import pinned_of
from gateway.runtimes import Runtimes
from gateway.settings import Settings
from gateway.store import Store
from gateway.telemetry import tag_tenant
from identity.inbound import key_id_of, new_key, same_secret
from identity.outbound import Broker, ProviderSpec
from identity.vault import Vault
from memory import MemoryService

logger = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
DEFAULT_GATEWAY = "default"
CALLBACK_PATH = "/identity/oauth/callback"
ADMIN_PURPOSE = "admin"
KEY_PREFIX = "sb_admin_"


def new_admin_key() -> tuple[str, str, str]:
    """A fresh admin key: (key id, full key to show once, hash to store)."""
    return new_key(KEY_PREFIX)


def parse_admin_key(key: str) -> str | None:
    """The key id inside an admin key, or None when it is not shaped like one."""
    return key_id_of(key, KEY_PREFIX)


async def compile_check(
    tenant: str, specs: list[GatewaySpec], hub: Hub | None = None, source: str | None = None
) -> list[str]:
    """Build every target and catalog of ``specs`` in ``hub`` (by default a scratch hub, then closed).

    Returns:
        Warnings: what the targets could not serve (``gateway/target: problem``).

    Raises:
        ConfigError: what ``serve`` would refuse, found without serving (its issues name
            ``source``, the file the specs came from, unless they name another).
    """
    if hub is None:
        async with Hub() as scratch:
            return await compile_check(tenant, specs, scratch, source)
    try:
        await hub.apply(tenant, specs)
    except ConfigError as exc:
        raise ConfigError([dataclasses.replace(i, source=i.source or source) for i in exc.issues]) from None
    return [
        f"{gw.name}/{target}: {problem}"
        for gw in hub.gateways(tenant)
        for target, provider in gw.catalog.providers.items()
        for problem in provider.problems()
    ]


class Switchboard:
    """The running system for one process."""

    def __init__(self, settings: Settings, store: Store, hub: Hub) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.revision = -1
        self._reload_lock = anyio.Lock()
        self.authenticator: Authenticator | None = None
        self.vault: Vault | None = None
        self.broker: Broker | None = None
        self.aws_keys: AccessKeys | None = None
        self.interpreters: CodeInterpreters | None = None
        self.runtimes: Runtimes | None = None  # the hosted agents (set by the services)
        self.memory: MemoryService | None = None  # agents' memory (set by the services)

    async def load_specs(self, tenant: str) -> list[GatewaySpec]:
        return [
            await self._spec_of(tenant, gw.name, gw.spec) for gw in await self.store.list_gateways(tenant)
        ]

    async def load_spec(self, tenant: str, name: str) -> GatewaySpec | None:
        """One stored gateway of the tenant (without reading the others), or None."""
        gw = await self.store.get_gateway(tenant, name)
        return await self._spec_of(tenant, gw.name, gw.spec) if gw is not None else None

    async def _spec_of(self, tenant: str, name: str, spec: dict[str, Any]) -> GatewaySpec:
        targets = [{**t.spec, "name": t.name} for t in await self.store.list_targets(tenant, name)]
        return gateway_from_store({**spec, "name": name}, targets, source=f"store:{name}")

    async def reload(self) -> list[str]:
        """Bring the hub in step with the store (every tenant); returns the gateways that changed."""
        async with self._reload_lock:
            revision = await self.store.revision()
            if revision != self.revision:
                # e.g. a key revoked by another process (without Redis): forgotten first, whether
                # or not the configuration below applies
                if self.authenticator is not None:
                    self.authenticator.forget()
                if self.aws_keys is not None:
                    self.aws_keys.forget()
            changed: list[str] = []
            for tenant in sorted({DEFAULT_TENANT, *await self.store.list_tenants()}):
                try:
                    specs = await self.load_specs(tenant)
                    moved = await self.hub.apply(tenant, specs)
                except ConfigError as exc:
                    if tenant == DEFAULT_TENANT:
                        raise  # the operator's own configuration: theirs to hear of at once
                    # One tenant's stored configuration that no longer loads (an upstream that
                    # changed or is down) keeps that tenant as it was, never the others.
                    logger.error(
                        "tenant %r: its configuration does not load now; it is served as it was: %s",
                        tenant,
                        exc,
                    )
                    continue
                # Tool approvals move the revision without changing a spec: gateways with pinned
                # targets are listed again (only those: listing can mean calling upstreams).
                await self.hub.refresh(
                    tenant, [s.name for s in specs if s.name not in moved and self._pins(tenant, s.name)]
                )
                changed += [name if tenant == DEFAULT_TENANT else f"{tenant}/{name}" for name in moved]
            self.revision = revision
            return changed

    def _pins(self, tenant: str, gateway: str) -> bool:
        live = self.hub.get(tenant, gateway)
        return live is not None and any(pinned_of(p) is not None for p in live.catalog.providers.values())

    async def create_tenant(self, tenant: str) -> str:
        """Make a tenant and its first admin key (returned, to show once)."""
        await self.store.ensure_tenant(tenant)
        key_id, key, digest = new_admin_key()
        await self.store.add_api_key(tenant, key_id, digest, ADMIN_PURPOSE)
        return key

    async def watch(self) -> None:
        """Follow changes other processes make to the store."""
        while True:
            await anyio.sleep(self.settings.config_poll_seconds)
            try:
                if await self.store.revision() != self.revision:
                    changed = await self.reload()
                    if changed:
                        logger.info("configuration changed: %s", ", ".join(changed))
            except ConfigError as exc:
                logger.error("the stored configuration cannot be served; keeping the running one:\n%s", exc)
            except Exception:  # boundary: the watcher must outlive a passing database error
                logger.exception("could not check the store for changes")

    async def ensure_admin_key(self) -> str | None:
        """Create the first admin key; returns it (to print once) or None when one exists."""
        if await self.store.count_api_keys(DEFAULT_TENANT, ADMIN_PURPOSE) > 0:
            return None
        key_id, key, digest = new_admin_key()
        await self.store.add_api_key(DEFAULT_TENANT, key_id, digest, ADMIN_PURPOSE)
        return key

    def providers_of(self, tenant: str, gateway: str) -> dict[str, ProviderSpec] | None:
        """A live gateway's credential providers by name (None: no such gateway)."""
        live = self.hub.get(tenant, gateway)
        return provider_specs(live.spec) if live is not None else None

    async def admin_tenant(self, authorization: str | None) -> str | None:
        """The tenant an ``Authorization: Bearer <admin key>`` header grants, or None."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        key = authorization[7:].strip()
        key_id = parse_admin_key(key)
        if key_id is None:
            return None
        found = await self.store.find_api_key(key_id)
        if found is None:
            return None
        tenant, digest, purpose = found
        if purpose != ADMIN_PURPOSE or not same_secret(digest, key):
            return None
        tag_tenant(str(tenant))  # this admin request's span belongs to the tenant's traces
        return str(tenant)


def state_key(data_dir: Path) -> bytes:
    """The secret that seals requestState; shared by every process using this data dir."""
    path = data_dir / "request-state.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


def mcp_path(tenant: str, gateway: str) -> str:
    """The path of a gateway's MCP endpoint (what ``mcp_endpoint`` reads back)."""
    if tenant == DEFAULT_TENANT:
        return "/mcp" if gateway == DEFAULT_GATEWAY else f"/gateways/{gateway}/mcp"
    return f"/tenants/{tenant}/gateways/{gateway}/mcp"


def mcp_endpoint(path: str) -> tuple[str, str] | None:
    """(tenant, gateway) an MCP endpoint path names: ``/mcp``, ``/gateways/{g}/mcp`` (the default
    tenant) or ``/tenants/{t}/gateways/{g}/mcp``; else None."""
    if path == "/mcp":
        return DEFAULT_TENANT, DEFAULT_GATEWAY
    tenant = DEFAULT_TENANT
    if path.startswith("/tenants/"):
        tenant, sep, path = path[len("/tenants/") :].partition("/")
        if not tenant or not sep:
            return None
        path = "/" + path
    if path.startswith("/gateways/") and path.endswith("/mcp"):
        name = path[len("/gateways/") : -len("/mcp")]
        if name and "/" not in name:
            return tenant, name
    return None
