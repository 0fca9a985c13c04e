"""Changes to a tenant's configuration, made the same way whichever front asks (the admin API,
the AgentCore control plane): checked against what only the operator may configure, compiled
in a scratch hub before anything is stored, stored, then served.

Every function raises ``ConfigError`` (the change is refused, with located issues; nothing was
stored), ``Missing`` (what it names does not exist) or ``Exists`` (a create found it there).
"""

from __future__ import annotations

import dataclasses

from gateway import capabilities
from gateway.config import GatewaySpec, TargetBase, to_store
from gateway.core.errors import ConfigError
from gateway.store import Change
from gateway.system import Switchboard, compile_check


class Missing(LookupError):
    """What the change names does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Exists(Exception):
    """A create found what it would make there already."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def specs(system: Switchboard, tenant: str) -> dict[str, GatewaySpec]:
    """The tenant's gateways as stored, by name."""
    return {s.name: s for s in await system.load_specs(tenant)}


async def guard(
    system: Switchboard, tenant: str, spec: GatewaySpec, kept: GatewaySpec | None, target: int | None = None
) -> None:
    """A tenant admin's change may not reach the gateway's host (see gateway/capabilities.py).

    ``target``: the change was this one target of ``spec``; fields are named within it."""
    if capabilities.is_operator(tenant):
        return
    try:
        await capabilities.check_tenant_change(spec, kept, allow=system.settings.egress_allow)
    except ConfigError as exc:
        if target is None:
            raise
        inside = f"targets[{target}]."
        raise ConfigError(
            [
                dataclasses.replace(i, location=i.location.removeprefix(inside))
                if i.location.startswith(inside)
                else i
                for i in exc.issues
            ]
        ) from None


async def put_gateway(
    system: Switchboard, tenant: str, spec: GatewaySpec, *, create: bool = False
) -> list[tuple[str, str, Change]]:
    """Create or replace a gateway with its targets; returns what changed (kind, name, change)."""
    kept = await system.load_spec(tenant, spec.name)
    if create and kept is not None:
        raise Exists(f"gateway {spec.name!r} exists")
    await guard(system, tenant, spec, kept)
    await compile_check(tenant, [spec])
    changes = await system.store.apply(tenant, [to_store(spec)])
    await system.reload()
    return changes


async def delete_gateway(system: Switchboard, tenant: str, name: str) -> None:
    if not await system.store.delete_gateway(tenant, name):
        raise Missing(f"no gateway named {name!r}")
    await system.reload()


async def put_target(
    system: Switchboard, tenant: str, gateway: str, target: TargetBase, *, create: bool = False
) -> Change:
    """Add or replace one target of a gateway."""
    gw = await system.load_spec(tenant, gateway)
    if gw is None:
        raise Missing(f"no gateway named {gateway!r}")
    exists = any(t.name == target.name for t in gw.targets)
    if create and exists:
        raise Exists(f"target {target.name!r} exists in gateway {gateway!r}")
    targets = [target if t.name == target.name else t for t in gw.targets]
    if not exists:
        targets.append(target)
    candidate = gw.model_copy(update={"targets": targets})
    await guard(system, tenant, candidate, gw, target=targets.index(target))
    await compile_check(tenant, [candidate])
    doc = target.model_dump(mode="json", exclude={"name"}, exclude_defaults=True)
    change = await system.store.put_target(tenant, gateway, target.name, doc)
    await system.reload()
    return change


async def delete_target(system: Switchboard, tenant: str, gateway: str, name: str) -> None:
    """Remove one target; refused (ConfigError) when the gateway would not load without it (a
    policy names one of its tools, say)."""
    gw = await system.load_spec(tenant, gateway)
    if gw is None or not any(t.name == name for t in gw.targets):
        raise Missing(f"no target {name!r} in gateway {gateway!r}")
    kept = [t for t in gw.targets if t.name != name]
    await compile_check(tenant, [gw.model_copy(update={"targets": kept})])
    if not await system.store.delete_target(tenant, gateway, name):
        raise Missing(f"no target {name!r} in gateway {gateway!r}")
    await system.reload()
