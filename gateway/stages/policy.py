"""Policy outside the model: Cedar decides every tools/call, and what tools/list shows.

A gateway's `policies` are Cedar source. A plain string is a statement (or several) of
Switchboard's dialect, enforced. The request for one call in that dialect is:

- principal ``Switchboard::User::"<subject>"`` with attributes ``tenant``, ``client`` and
  ``scopes`` (a set);
- action ``Switchboard::Action::"<target>___<tool>"`` (the published tool name);
- resource ``Switchboard::Target::"<target>"``, a member of ``Switchboard::Gateway::"<name>"``;
- context: the call's arguments that some policy of the tool reads, as exact Cedar values.

An entry written out (``{cedar, mode, dialect, id}``, ``config.PolicySpec``) may instead be in
AgentCore's dialect (``_agentcore``: principal ``AgentCore::OAuthUser`` with the caller's claims as
tags, resource the gateway's ARN, the arguments under ``context.input``), and may be log-only:
evaluated and recorded, never deciding (ADR 0032).

Policy sees exact values (ADR 0011): integers, and whole floats (``1e6``, ``1000000.0``) as the
integer they equal; strings, booleans, arrays (as sets) and objects (as records) as they are. A
value a policy reads that Cedar cannot hold exactly — a fraction, NaN or infinity, an integer
outside Cedar's 64-bit range, ``null``, a record member named like Cedar's ``__entity`` or
``__extn`` escapes — refuses the call with the argument and the reason; it is never dropped.
A ``forbid`` whose evaluation fails (a type error, say) denies the call instead of being skipped.

The decision, each dialect's statements evaluated on their own (each has its own entity model):
any enforced ``forbid`` that applies denies; else an enforced ``permit`` that applies allows;
else, once any enforced entry exists, the call is denied (a plain string, or an entry with mode
``enforce`` even without a statement, counts). ``policy_mode: log_only`` makes every entry
log-only. What the log-only entries would have changed (evaluated together with the enforced
ones) goes on the call's context (``policy_log``) for the audit and on the trace, and is logged.
tools/list shows a caller only the tools some enforced policy could permit them (partial
evaluation with the arguments unknown), and a call to a hidden tool is refused like any other.

A permit annotated ``@approval("required")`` allows the call only once a person approves it
(the approval stage asks or holds it).

Each dialect's statements are validated against a schema generated from the catalog when the
gateway is applied: a policy naming a tool that does not exist, or an attribute the tool does
not take, refuses the change, naming the policy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from opentelemetry import trace

from gateway.config import PolicySpec, cedar_shape
from gateway.core.catalog import Catalog
from gateway.core.errors import ConfigError, ConfigIssue, ToolExecutionError
from gateway.core.types import JSON, CallContext, CallNext, Principal, ToolCall, ToolResult
from gateway.stages._agentcore import AgentCoreDialect, tags_read
from gateway.stages._cedar import (
    NS,
    CedarSet,
    Dialect,
    SwitchboardDialect,
    Unrepresentable,
    Verdict,
    context_for,
    exact,
    schema_for,
)

__all__ = [
    "NS",
    "Decision",
    "Denied",
    "GatewayPolicy",
    "Unrepresentable",
    "context_for",
    "exact",
    "schema_for",
]

logger = logging.getLogger(__name__)
LOG_ATTRIBUTE = "switchboard.policy.log_only"


class Denied(ToolExecutionError):
    """A policy refused the call."""


class Decision(NamedTuple):
    """One call's decision: allowed or not, why (the deciding statements), whether a person must
    approve it, and what the log-only statements would have decided instead (``("allow"|"deny",
    why)``), when that differs."""

    allowed: bool
    why: str
    approval: bool = False
    logged: tuple[str, str] | None = None


@dataclass
class _Statements:
    """One dialect's statements while they are compiled: (id, JSON, enforced, where) each, and
    the Cedar texts they came from, in order (the validator numbers statements by position)."""

    items: list[tuple[str, JSON, bool, str]]
    texts: list[str]


def _parse(text: str, where: str, label: str, *, templates: bool) -> list[JSON]:
    import cedarpy

    problem = cedar_shape(text)
    if problem is not None:  # (the configuration refuses it too: deep nesting ends the process in cedarpy)
        raise ConfigError([ConfigIssue(f"{label}: the Cedar source {problem}", where)])
    try:
        doc = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        raise ConfigError([ConfigIssue(f"{label} does not parse: {exc}", where)]) from None
    if doc.get("templates") and not templates:
        raise ConfigError(
            [ConfigIssue(f"{label} is a template (?principal, ?resource): write it out", where)]
        )
    return list(doc["staticPolicies"].values())


class GatewayPolicy:
    """The compiled policies of one gateway.

    Raises (on construction):
        ConfigError: a policy does not parse, does not validate against its dialect's schema for
            this catalog, or breaks its dialect's rules; each issue names the policy.
    """

    def __init__(
        self, gateway: str, sources: Sequence[str | PolicySpec], mode: str, catalog: Catalog
    ) -> None:
        self.gateway = gateway
        self.mode = mode
        self.catalog = catalog
        everything_logged = mode == "log_only"
        found = {"switchboard": _Statements([], []), "agentcore": _Statements([], [])}
        self.has_enforced = self.has_logged = False
        plain = [s for s in sources if isinstance(s, str)]
        if plain:  # as ever: one text, its statements named policy0, policy1, ... in order
            text = "\n".join(plain)
            parsed = _parse(text, "policies", "a policy", templates=True)
            found["switchboard"].items += [
                (f"policy{k}", p, not everything_logged, "policies") for k, p in enumerate(parsed)
            ]
            found["switchboard"].texts.append(text)
            self.has_enforced, self.has_logged = not everything_logged, everything_logged
        arns: dict[str, list[str]] = {}
        for index, entry in enumerate(sources):
            if isinstance(entry, str):
                continue
            where = f"policies[{index}]"
            base = entry.id or where
            parsed = _parse(entry.cedar, where, f"policy {base}", templates=False)
            enforced = entry.mode == "enforce" and not everything_logged
            self.has_enforced |= enforced
            self.has_logged |= not enforced
            ids = [base] if len(parsed) == 1 else [f"{base}[{k}]" for k in range(len(parsed))]
            found[entry.dialect].items += [(i, p, enforced, where) for i, p in zip(ids, parsed, strict=True)]
            found[entry.dialect].texts.append(entry.cedar)
            if entry.dialect == "agentcore":
                arns.setdefault(entry.gateway_arn or gateway, []).append(where)
        if len(arns) > 1:
            issues = [
                ConfigIssue(f"gateway_arn {a!r} here; one gateway's agentcore policies share one", w[0])
                for a, w in arns.items()
            ]
            raise ConfigError(issues)
        dialects: dict[str, Dialect] = {"switchboard": SwitchboardDialect(gateway)}
        if arns:
            read = tags_read(found["agentcore"].texts)
            dialects["agentcore"] = AgentCoreDialect(next(iter(arns)), catalog, read)
        self._check(found, dialects)
        self.dialects = list(dialects.values())
        self.sets: list[CedarSet] = []
        for name, statements in found.items():
            for enforced in (True, False):
                chosen = {i: p for i, p, e, _ in statements.items if e is enforced}
                if chosen:
                    self.sets.append(CedarSet(dialects[name], chosen, enforced))
        self.enforced = [s for s in self.sets if s.enforced]
        self.logged = [s for s in self.sets if not s.enforced]
        self._approving = frozenset(
            i
            for s in self.enforced
            for i, p in s.statements.items()
            if p.get("effect") == "permit" and p.get("annotations", {}).get("approval") == "required"
        )
        self._only = self.enforced[0] if len(self.enforced) == 1 and not self.has_logged else None
        self._other_dialects = [d for d in self.dialects if d.name != "switchboard"]
        self._contextual: dict[str, bool] = {}
        self._decisions: dict[tuple[Any, ...], Decision] = {}

    def _check(self, found: Mapping[str, _Statements], dialects: Mapping[str, Dialect]) -> None:
        """Refuse statements that share an id, break their dialect's rules, or name tools or
        attributes this gateway does not have; every issue names the statement."""
        import cedarpy

        issues: list[ConfigIssue] = []
        seen: set[str] = set()
        for statements in found.values():
            for pid, _, _, where in statements.items:
                if pid in seen:
                    issues.append(
                        ConfigIssue(f"two policies are named {pid!r}; give each entry its own id", where)
                    )
                seen.add(pid)
        for name, statements in found.items():
            if not statements.items:
                continue
            dialect = dialects[name]
            for pid, statement, _, where in statements.items:
                problem = dialect.check(statement)
                if problem is not None:
                    issues.append(ConfigIssue(f"policy {pid}: {problem}", where))
            result = cedarpy.validate_policies("\n".join(statements.texts), dialect.schema(self.catalog))
            for error in result.errors:  # (the validator names statements by position: policy<n>)
                position = error.policy_id.removeprefix("policy")
                if not position.isdigit() or int(position) >= len(statements.items):
                    issues.append(ConfigIssue(f"policy {error.policy_id}: {error.error}", "policies"))
                    continue
                pid, _, _, where = statements.items[int(position)]
                message = error.error.removeprefix(f"for policy `{error.policy_id}`, ")
                issues.append(ConfigIssue(f"policy {pid}: {message}", where))
            if not result.validation_passed and not result.errors:
                issues.append(ConfigIssue(f"the {name} policies do not validate", "policies"))
        if issues:
            raise ConfigError(issues)

    def caller_key(self, principal: Principal) -> tuple[Any, ...]:
        """What of the caller decisions that ignore the arguments (and tools/list) depend on."""
        key = (principal.tenant, principal.subject, principal.client_id, principal.scopes)
        for dialect in self._other_dialects:
            key += dialect.caller_key(principal)
        return key

    def allows(
        self, principal: Principal, tool: str, target: str, arguments: Mapping[str, Any]
    ) -> tuple[bool, str]:
        """(allowed, why) for one call."""
        decision = self.judge(principal, tool, target, arguments)
        return decision.allowed, decision.why

    def decide(
        self, principal: Principal, tool: str, target: str, arguments: Mapping[str, Any]
    ) -> tuple[bool, str, bool]:
        """(allowed, why, needs a person's approval) for one call."""
        decision = self.judge(principal, tool, target, arguments)
        return decision.allowed, decision.why, decision.approval

    def judge(self, principal: Principal, tool: str, target: str, arguments: Mapping[str, Any]) -> Decision:
        """The decision for one call.

        When none of the tool's statements looks at the arguments (``context``), the decision
        depends on the caller and the tool alone and is remembered (bounded).

        Raises:
            Unrepresentable: an argument an enforced policy reads has a value Cedar cannot hold
                exactly (one only log-only policies read is recorded as their would-be denial).
        """
        contextual = self._contextual.get(tool)
        if contextual is None:
            contextual = self._contextual[tool] = any(s.contextual(tool) for s in self.sets)
        key = None
        if not contextual:
            key = (tool, target, principal.tenant, principal.subject, principal.client_id, principal.scopes)
            for dialect in self._other_dialects:
                key += dialect.caller_key(principal)
            hit = self._decisions.get(key)
            if hit is not None:
                return hit
        given = arguments if contextual else None
        only = self._only
        if only is not None:  # the usual gateway: one enforced set, nothing log-only (kept lean)
            allowed, reasons, failed = only.evaluate(only.dialect.caller(principal), tool, target, given)
            if failed:
                decision = Decision(False, f"{failed}; a forbid that cannot be evaluated denies the call")
            elif allowed:
                approval = bool(self._approving) and not self._approving.isdisjoint(reasons)
                decision = Decision(True, ", ".join(reasons), approval)
            else:
                decision = Decision(False, ", ".join(reasons) or "no policy permits it")
        else:
            callers = {d.name: d.caller(principal) for d in self.dialects}
            verdicts = [s.evaluate(callers[s.dialect.name], tool, target, given) for s in self.enforced]
            decision, forbidden = self._enforce(verdicts)
            if self.has_logged and not forbidden:  # (a forbid: nothing log-only can change that)
                decision = self._with_logged(decision, verdicts, callers, tool, target, given)
        if key is not None:
            if len(self._decisions) >= 10_000:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def _enforce(self, verdicts: Sequence[Verdict]) -> tuple[Decision, bool]:
        """The enforced sets' verdicts combined, and whether a forbid decided: a failed or applying
        forbid denies, else a permit allows, else the call is denied once anything is enforced."""
        forbids = [r for v in verdicts if not v.allowed for r in v.reasons]
        failed = [v.failed for v in verdicts if v.failed]
        if failed:
            return Decision(
                False, f"{'; '.join(failed)}; a forbid that cannot be evaluated denies the call"
            ), True
        if forbids:
            return Decision(False, ", ".join(forbids)), True
        permits = [r for v in verdicts if v.allowed for r in v.reasons]
        if permits:
            approval = bool(self._approving) and not self._approving.isdisjoint(permits)
            return Decision(True, ", ".join(permits), approval), False
        return Decision(not self.has_enforced, "no policy permits it"), False

    def _with_logged(
        self,
        decision: Decision,
        enforced: Sequence[Verdict],
        callers: Mapping[str, Any],
        tool: str,
        target: str,
        arguments: Mapping[str, Any] | None,
    ) -> Decision:
        """``decision`` with what the log-only statements, enforced too, would have decided."""
        try:
            verdicts = [s.evaluate(callers[s.dialect.name], tool, target, arguments) for s in self.logged]
        except Unrepresentable as exc:
            why = f"the argument `{exc.path}`: {exc.reason}"
            return decision._replace(logged=("deny", why)) if decision.allowed else decision
        forbids = [r for v in verdicts if not v.allowed for r in v.reasons]
        failed = [v.failed for v in verdicts if v.failed]
        permits = [r for v in verdicts if v.allowed for r in v.reasons]
        would_allow = not (forbids or failed) and (any(v.allowed for v in enforced) or bool(permits))
        if would_allow == decision.allowed:
            return decision
        if would_allow:
            return decision._replace(logged=("allow", ", ".join(permits)))
        return decision._replace(
            logged=("deny", "; ".join(failed) or ", ".join(forbids) or "no policy permits it")
        )

    @property
    def asks_for_approval(self) -> bool:
        """Whether any enforced permit carries ``@approval("required")``."""
        return bool(self._approving)

    def visible(self, principal: Principal, tools: Sequence[tuple[str, str]]) -> set[str]:
        """The tools (public name, target) some enforced policy could permit this caller, arguments
        unknown (every tool, when no policy is enforced)."""
        if not self.has_enforced:
            return {tool for tool, _ in tools}
        callers = {d.name: d.caller(principal) for d in self.dialects}
        shown: set[str] = set()
        for tool, target in tools:
            could = False
            for cedar_set in self.enforced:
                state = cedar_set.could(callers[cedar_set.dialect.name], tool, target)
                if state == "forbid":
                    could = False
                    break
                could = could or state != "none"
            if could:
                shown.add(tool)
        return shown

    async def __call__(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        tool = call.public_name or call.name
        entry = self.catalog.snapshot.tools.get(tool)
        target = entry.provider.id if entry is not None else ""
        try:
            decision = self.judge(ctx.principal, tool, target, call.arguments)
        except Unrepresentable as exc:
            raise Denied(
                f"The gateway's policy reads the argument `{exc.path}` of {call.public_name}, and its value "
                f"{exc.reason}; the call was refused (send a value the policy can compare)."
            ) from None
        if decision.logged is not None:
            ctx.policy_log = decision.logged
            self._record(tool, ctx.principal, decision.logged)
        if decision.approval:
            ctx.approval_required = True  # the approval stage holds it for a person
        if not decision.allowed:
            raise Denied(f"The gateway's policy does not allow {call.public_name} for you ({decision.why}).")
        return await call_next(call, ctx)

    def _record(self, tool: str, principal: Principal, logged: tuple[str, str]) -> None:
        """What the log-only policies would have decided, on the call's span and in the log."""
        would, why = logged
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(LOG_ATTRIBUTE, f"would {would}: {why}")
        level = logging.WARNING if would == "deny" else logging.INFO
        logger.log(
            level,
            "policy (log_only) would %s %s to %s/%s: %s",
            would,
            tool,
            principal.tenant,
            principal.subject,
            why,
        )
