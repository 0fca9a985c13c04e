"""A gateway's call pipeline: which stages it has, in what order, built from its spec.

The order is declared once, in ``ORDER``, outermost first::

    observe -> audit -> policy -> rate_limit -> interceptors -> approval -> cache -> resilience
    -> the catalog's router (the hub's) -> the target

- ``observe`` and ``audit`` see every call, refused or not, with its outcome.
- ``policy`` decides before anything is spent: a denied call takes no rate-limit quota, reaches
  no interceptor and asks no approver.
- ``interceptors`` may rewrite the arguments; ``approval`` comes after them, so an approver
  sees the arguments that will run.
- ``cache`` answers before ``resilience``: a cached answer needs no deadline, retry or breaker.

A stage a gateway does not configure is not in its chain at all (nothing to pass through).
The stages that decide something (``decides``) get a span and a count of their decision when
the gateway is observed (``gateway.telemetry.decided``).

Adding a stage: its module in this package (a class with the stage protocol,
``gateway.core.pipeline.Stage``), a function here that builds it from a gateway's spec (or
returns None when the spec does not ask for it), and its line in ``ORDER``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gateway.config import GatewaySpec
from gateway.core.catalog import Catalog
from gateway.core.pipeline import Stage, compose
from gateway.core.types import CallNext
from gateway.stages.approval import ApprovalRule, GatewayApprovals
from gateway.stages.audit import AuditLog, GatewayAudit
from gateway.stages.cache import (
    CacheRule,
    Declared,
    GatewayCache,
    ResultStore,
    declared_annotations,
    result_store,
)
from gateway.stages.interceptors import GatewayInterceptors, build_interceptors
from gateway.stages.policy import GatewayPolicy
from gateway.stages.ratelimit import Counters, GatewayLimits, parse_rule
from gateway.stages.resilience import GatewayResilience, Settings
from gateway.store import StoreApprovals
from gateway.telemetry import GatewayTelemetry, decided


@runtime_checkable
class ForSomeTools(Protocol):
    """A stage that decides only for some tools (the others pass through it untouched)."""

    def applies(self, tool: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Shared:
    """What the stages of every gateway share, made once at start-up.

    ``observe``: trace and count calls, recording arguments and results on spans or not,
    capped at a size (``(content, bytes)``); None where nobody is served (a check, a CLI listing).
    ``audit`` and ``approvals``: None where there is no store to write to."""

    counters: Counters = field(default_factory=Counters)
    results: ResultStore = field(default_factory=lambda: result_store(None))
    audit: AuditLog | None = None
    approvals: StoreApprovals | None = None
    observe: tuple[bool, int] | None = None


@dataclass(frozen=True, slots=True)
class Building:
    """What a stage is built from: one gateway of one tenant, and the stages built before it."""

    tenant: str
    spec: GatewaySpec
    catalog: Catalog
    shared: Shared
    egress_allow: tuple[str, ...] | None  # a tenant's gateway: where its HTTP interceptors may connect
    declared: Declared  # what the configuration itself says of its tools (never an upstream's hints)
    made: dict[str, Stage]


def _observe(b: Building) -> Stage | None:
    if b.shared.observe is None:
        return None
    snapshot_of = b.catalog

    def target_of(name: str) -> str:
        entry = snapshot_of.snapshot.tools.get(name)
        return entry.provider.id if entry is not None else ""

    content, size = b.shared.observe
    return GatewayTelemetry(b.tenant, b.spec.name, target_of, capture_content=content, capture_bytes=size)


def _audit(b: Building) -> Stage | None:
    return GatewayAudit(b.tenant, b.spec.name, b.shared.audit) if b.shared.audit is not None else None


def _policy(b: Building) -> Stage | None:
    s = b.spec
    return GatewayPolicy(s.name, s.policies, s.policy_mode, b.catalog) if s.policies else None


def _rate_limit(b: Building) -> Stage | None:
    if not b.spec.rate_limits:
        return None
    rules = [parse_rule(r.limit, r.per, r.tools, r.callers, r.group) for r in b.spec.rate_limits]
    return GatewayLimits(b.tenant, b.spec.name, rules, b.shared.counters, b.catalog)


def _interceptors(b: Building) -> Stage | None:
    if not b.spec.interceptors:
        return None
    return GatewayInterceptors(b.spec.name, build_interceptors(b.spec, b.egress_allow))


def _approval(b: Building) -> Stage | None:
    policy = b.made.get("policy")
    wants = b.spec.approvals or (isinstance(policy, GatewayPolicy) and policy.asks_for_approval)
    if not wants or b.shared.approvals is None:  # (a check or a CLI listing has no store)
        return None
    holds = [ApprovalRule(tuple(a.tools), a.timeout_seconds, a.approver) for a in b.spec.approvals]
    return GatewayApprovals(b.tenant, b.spec.name, holds, b.shared.approvals)


def _cache(b: Building) -> Stage | None:
    if not b.spec.cache:
        return None
    rules = [CacheRule(tuple(c.tools), c.ttl_seconds) for c in b.spec.cache]
    prints = {t.name: hashlib.sha256(t.model_dump_json().encode()).hexdigest() for t in b.spec.targets}
    return GatewayCache(b.tenant, b.spec.name, rules, b.shared.results, b.catalog, prints, b.declared)


def _resilience(b: Building) -> Stage | None:
    r = b.spec.resilience
    if r is None:
        return None
    settings = Settings(
        r.call_timeout_seconds, r.retries, r.retry_ratio, r.failures, r.open_seconds, r.max_concurrent
    )
    return GatewayResilience(b.catalog, settings, b.declared)


@dataclass(frozen=True, slots=True)
class StageKind:
    """One stage of the pipeline: its name (in traces and metrics), how a gateway's spec builds
    it, and whether it decides something (traced as ``switchboard.{name}``)."""

    name: str
    build: Callable[[Building], Stage | None]
    decides: bool = True
    some_tools: bool = False  # it decides only for the tools its ``applies(tool)`` says


ORDER: tuple[StageKind, ...] = (
    StageKind("observe", _observe, decides=False),
    StageKind("audit", _audit, decides=False),
    StageKind("policy", _policy),
    StageKind("rate_limit", _rate_limit, some_tools=True),
    StageKind("interceptors", _interceptors, some_tools=True),
    StageKind("approval", _approval),
    StageKind("cache", _cache, some_tools=True),
    StageKind("resilience", _resilience, decides=False),
)


@dataclass(frozen=True, slots=True)
class Chain:
    """A gateway's pipeline: the composed handler, and its stages by name."""

    handler: CallNext
    stages: Mapping[str, Stage]

    @property
    def policy(self) -> GatewayPolicy | None:
        found = self.stages.get("policy")
        return found if isinstance(found, GatewayPolicy) else None

    @property
    def resilience(self) -> GatewayResilience | None:
        found = self.stages.get("resilience")
        return found if isinstance(found, GatewayResilience) else None


def build_chain(
    tenant: str,
    spec: GatewaySpec,
    catalog: Catalog,
    shared: Shared,
    terminal: CallNext,
    *,
    egress_allow: tuple[str, ...] | None = None,
    extra: Sequence[Stage] = (),
) -> Chain:
    """The chain of one gateway, in ``ORDER``, then ``extra`` (innermost), then ``terminal``.

    Raises:
        ConfigError: a stage's settings cannot be used (a policy that does not validate against
            the catalog, an interceptor's function that cannot be imported).
    """
    building = Building(tenant, spec, catalog, shared, egress_allow, declared_annotations(spec.targets), {})
    stages: list[Stage] = []
    for kind in ORDER:
        stage = kind.build(building)
        if stage is None:
            continue
        building.made[kind.name] = stage
        if kind.decides and shared.observe is not None:
            applies: Callable[[str], bool] | None = (
                stage.applies if kind.some_tools and isinstance(stage, ForSomeTools) else None
            )
            stage = decided(kind.name, stage, tenant, spec.name, applies)
        stages.append(stage)
    return Chain(compose([*stages, *extra], terminal), dict(building.made))
