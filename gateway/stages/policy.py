"""Policy outside the model: Cedar decides every tools/call, and what tools/list shows.

A gateway's `policies` are Cedar source. The request for one call is:

- principal ``Switchboard::User::"<subject>"`` with attributes ``tenant``, ``client`` and
  ``scopes`` (a set);
- action ``Switchboard::Action::"<target>___<tool>"`` (the published tool name);
- resource ``Switchboard::Target::"<target>"``, a member of ``Switchboard::Gateway::"<name>"``;
- context: the call's arguments that some policy of the tool reads, as exact Cedar values.

Policy sees exact values (ADR 0011): integers, and whole floats (``1e6``, ``1000000.0``) as the
integer they equal; strings, booleans, arrays (as sets) and objects (as records) as they are. A
value a policy reads that Cedar cannot hold exactly — a fraction, NaN or infinity, an integer
outside Cedar's 64-bit range, ``null``, a record member named like Cedar's ``__entity`` or
``__extn`` escapes — refuses the call with the argument and the reason; it is never dropped.
A ``forbid`` whose evaluation fails (a type error, say) denies the call instead of being skipped.

Once a gateway has any policy, what no policy permits is denied, and a `forbid` wins over
every `permit` (Cedar's semantics). ``policy_mode: log_only`` lets everything through and
logs what would have been denied. tools/list shows a caller only the tools some policy
could permit them (partial evaluation with the arguments unknown), and a call to a hidden
tool is refused like any other denied call.

A permit annotated ``@approval("required")`` allows the call only once a person approves it
(the approval stage asks or holds it).

Policies are validated against a schema generated from the catalog when the gateway is
applied: a policy naming a tool that does not exist, or an attribute the tool does not
take, refuses the change.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gateway.core.catalog import Catalog
from gateway.core.errors import ConfigError, ConfigIssue, ToolExecutionError
from gateway.core.types import JSON, CallContext, CallNext, Principal, ToolCall, ToolResult

if TYPE_CHECKING:  # cedarpy is imported by the first gateway that has policies, not at start-up
    import cedarpy

logger = logging.getLogger(__name__)
NS = "Switchboard"


class Denied(ToolExecutionError):
    """A policy refused the call."""


def _cedar_type(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = schema.get("type")
    if kind == "string":
        return {"type": "String"}
    if kind in ("integer", "number"):  # whole numbers only: a fraction is refused at call time
        return {"type": "Long"}
    if kind == "boolean":
        return {"type": "Boolean"}
    if kind == "array":
        inner = _cedar_type(schema.get("items") or {})
        return {"type": "Set", "element": inner} if inner is not None else None
    if kind == "object":
        return {"type": "Record", "attributes": _attributes(schema)}
    return None  # unions, untyped values: not comparable in a policy


def _attributes(schema: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, sub in dict(schema.get("properties") or {}).items():
        typed = _cedar_type(sub) if isinstance(sub, Mapping) else None
        if typed is not None:
            out[name] = {**typed, "required": False}
    return out


def schema_for(catalog: Catalog) -> dict[str, Any]:
    """The Cedar schema of a gateway: its users, targets, and one action per tool."""
    actions = {
        name: {
            "appliesTo": {
                "principalTypes": ["User"],
                "resourceTypes": ["Target"],
                "context": {"type": "Record", "attributes": _attributes(entry.spec.input_schema)},
            }
        }
        for name, entry in catalog.snapshot.tools.items()
    }
    user = {
        "shape": {
            "type": "Record",
            "attributes": {
                "tenant": {"type": "String"},
                "client": {"type": "String", "required": False},
                "scopes": {"type": "Set", "element": {"type": "String"}},
            },
        }
    }
    return {
        NS: {
            "entityTypes": {"User": user, "Gateway": {}, "Target": {"memberOfTypes": ["Gateway"]}},
            "actions": actions,
        }
    }


LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
_ESCAPES = frozenset({"__entity", "__extn", "__expr"})  # Cedar's JSON reads these as non-records
_FAILED = re.compile(r"policy `([^`]+)`")


class Unrepresentable(ValueError):
    """An argument a policy reads has a value Cedar cannot hold exactly."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def exact(value: Any, path: str) -> Any:
    """``value`` as the Cedar JSON value equal to it, or `Unrepresentable` naming ``path``.

    Whole floats become the integer they equal, so ``1e6`` and ``1000000.0`` meet the same rule
    as ``1000000``; nothing is ever left out.
    """
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not LONG_MIN <= value <= LONG_MAX:
            raise Unrepresentable(path, f"{value} is outside the policy engine's 64-bit integer range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unrepresentable(path, f"{value} is not a finite number")
        if not value.is_integer():
            raise Unrepresentable(path, f"{value!r} has a fraction, which the policy cannot compare exactly")
        return exact(int(value), path)
    if value is None:
        raise Unrepresentable(path, "null has no value the policy can compare; leave the argument out")
    if isinstance(value, list | tuple):
        return [exact(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _ESCAPES:
                raise Unrepresentable(
                    f"{path}.{key}", f"a member named {key!r} is reserved by the policy engine"
                )
            out[str(key)] = exact(item, f"{path}.{key}")
        return out
    raise Unrepresentable(path, f"a {type(value).__name__} is not a JSON value")


def context_for(arguments: Mapping[str, Any], reads: frozenset[str] | None) -> dict[str, Any]:
    """The Cedar context of a call: the arguments the policies read (``None``: all), exactly."""
    names = arguments.keys() if reads is None else reads.intersection(arguments)
    return {str(name): exact(arguments[name], str(name)) for name in names}


class GatewayPolicy:
    """The compiled policies of one gateway."""

    def __init__(self, gateway: str, sources: Sequence[str], mode: str, catalog: Catalog) -> None:
        import cedarpy

        self.gateway = gateway
        self.mode = mode
        self.catalog = catalog
        text = "\n".join(sources)
        # Each decision needs only the policies whose action scope can match the tool: a set per
        # tool keeps a decision's cost with the policies about that tool, not all of them.
        try:
            self._policies: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
        except ValueError as exc:
            raise ConfigError([ConfigIssue(f"a policy does not parse: {exc}", "policies")]) from None
        self.text = text
        self.validate()
        self._by_tool: dict[str, cedarpy.PolicySet] = {}
        self._decisions: dict[tuple[Any, ...], tuple[bool, str, bool]] = {}
        # Worked out per tool on its first decision, not from the catalog at build: a tool that
        # appears later (an upstream's list_changed, a target that recovers) is no exception.
        self._reading = [
            p for p in self._policies.values() if '"context"' in json.dumps(p.get("conditions") or [])
        ]
        self._contextual: dict[str, bool] = {}
        self._reads: dict[str, frozenset[str] | None] = {}

    def _read_by(self, tool: str) -> frozenset[str] | None:
        """The arguments the tool's policies read (``None``: the whole context)."""
        if tool not in self._reads:
            relevant = [p for p in self._policies.values() if _names(p.get("action") or {}, tool)]
            self._reads[tool] = _context_reads(relevant)
        return self._reads[tool]

    def _for(self, tool: str) -> cedarpy.PolicySet:
        import cedarpy

        found = self._by_tool.get(tool)
        if found is None:
            relevant = {pid: p for pid, p in self._policies.items() if _names(p.get("action") or {}, tool)}
            doc = {"staticPolicies": relevant, "templates": {}, "templateLinks": []}
            found = self._by_tool[tool] = cedarpy.PolicySet.from_json_str(json.dumps(doc))
        return found

    def validate(self) -> None:
        """Refuse policies that name tools or attributes this gateway does not have."""
        import cedarpy

        result = cedarpy.validate_policies(self.text, schema_for(self.catalog))
        if not result.validation_passed:
            issues = [ConfigIssue(f"policy {e.policy_id}: {e.error}", "policies") for e in result.errors]
            raise ConfigError(issues or [ConfigIssue("the policies do not validate", "policies")])

    def _entities(self, principal: Principal, target: str) -> list[JSON]:
        attrs: JSON = {"tenant": principal.tenant, "scopes": sorted(principal.scopes)}
        if principal.client_id:
            attrs["client"] = principal.client_id
        return [
            {"uid": {"type": f"{NS}::User", "id": principal.subject}, "attrs": attrs, "parents": []},
            {
                "uid": {"type": f"{NS}::Target", "id": target},
                "attrs": {},
                "parents": [{"type": f"{NS}::Gateway", "id": self.gateway}],
            },
            {"uid": {"type": f"{NS}::Gateway", "id": self.gateway}, "attrs": {}, "parents": []},
        ]

    def _request(self, principal: Principal, tool: str, target: str, context: JSON | None) -> JSON:
        request: JSON = {
            "principal": f'{NS}::User::"{_quote(principal.subject)}"',
            "action": f'{NS}::Action::"{_quote(tool)}"',
            "resource": f'{NS}::Target::"{_quote(target)}"',
        }
        if context is not None:
            request["context"] = context
        return request

    def allows(
        self, principal: Principal, tool: str, target: str, arguments: Mapping[str, Any]
    ) -> tuple[bool, str]:
        """(allowed, why) for one call."""
        allowed, why, _ = self.decide(principal, tool, target, arguments)
        return allowed, why

    def decide(
        self, principal: Principal, tool: str, target: str, arguments: Mapping[str, Any]
    ) -> tuple[bool, str, bool]:
        """(allowed, why, needs a person's approval) for one call.

        When none of the tool's policies looks at the arguments (``context``), the decision
        depends on the caller and the tool alone and is remembered (bounded).

        Raises:
            Unrepresentable: an argument a policy reads has a value Cedar cannot hold exactly.
        """
        import cedarpy

        key = None
        contextual = self._contextual.get(tool)
        if contextual is None:
            contextual = self._contextual[tool] = any(
                _names(p.get("action") or {}, tool) for p in self._reading
            )
        if not contextual:
            key = (tool, target, principal.tenant, principal.subject, principal.client_id, principal.scopes)
            hit = self._decisions.get(key)
            if hit is not None:
                return hit
        context = context_for(arguments, self._read_by(tool)) if key is None else {}
        result = cedarpy.is_authorized(
            self._request(principal, tool, target, context),
            self._for(tool),
            self._entities(principal, target),
        )
        reasons = ", ".join(result.diagnostics.reasons) or "no policy permits it"
        allowed = result.decision == cedarpy.Decision.Allow
        failed = self._failed_forbids(result.diagnostics.errors)
        if failed:  # a forbid that cannot be evaluated must not be skipped: deny
            allowed, reasons = False, f"{failed}; a forbid that cannot be evaluated denies the call"
        needs_approval = allowed and any(
            (self._policies.get(pid) or {}).get("annotations", {}).get("approval") == "required"
            for pid in result.diagnostics.reasons
        )
        if key is not None:
            if len(self._decisions) >= 10_000:
                self._decisions.clear()
            self._decisions[key] = (allowed, reasons, needs_approval)
        return allowed, reasons, needs_approval

    def _failed_forbids(self, errors: Sequence[str]) -> str:
        """The evaluation errors that belong to a forbid (or to no policy we can name), joined."""
        failed = []
        for error in errors:
            named = _FAILED.search(error)
            policy = self._policies.get(named.group(1)) if named else None
            if policy is None or policy.get("effect") == "forbid":
                failed.append(error)
        return "; ".join(failed)

    @property
    def asks_for_approval(self) -> bool:
        """Whether any policy carries ``@approval("required")``."""
        return any(p.get("annotations", {}).get("approval") == "required" for p in self._policies.values())

    def visible(self, principal: Principal, tools: Sequence[tuple[str, str]]) -> set[str]:
        """The tools (public name, target) some policy could permit this caller, arguments unknown."""
        import cedarpy

        shown: set[str] = set()
        for tool, target in tools:
            result = cedarpy.is_authorized_partial(
                self._request(principal, tool, target, None),
                self._for(tool),
                self._entities(principal, target),
            )
            if result.decision != cedarpy.Decision.Deny:
                shown.add(tool)
        return shown

    async def __call__(self, call: ToolCall, ctx: CallContext, call_next: CallNext) -> ToolResult:
        entry = self.catalog.snapshot.tools.get(call.public_name or call.name)
        target = entry.provider.id if entry is not None else ""
        try:
            allowed, why, needs_approval = self.decide(
                ctx.principal, call.public_name or call.name, target, call.arguments
            )
        except Unrepresentable as exc:
            if self.mode != "log_only":
                raise Denied(
                    f"The gateway's policy reads the argument `{exc.path}` of {call.public_name}, and "
                    f"{exc.reason}; the call was refused (send a value the policy can compare)."
                ) from None
            logger.warning("policy (log_only) cannot decide %s: %s", call.public_name, exc)
            return await call_next(call, ctx)
        if needs_approval:
            ctx.approval_required = True  # the approval stage holds it for a person
        if not allowed:
            if self.mode == "log_only":
                logger.warning(
                    "policy (log_only) would deny %s to %s/%s: %s",
                    call.public_name,
                    ctx.principal.tenant,
                    ctx.principal.subject,
                    why,
                )
            else:
                raise Denied(f"The gateway's policy does not allow {call.public_name} for you ({why}).")
        return await call_next(call, ctx)


def _context_reads(policies: Sequence[Mapping[str, Any]]) -> frozenset[str] | None:
    """The context attributes these policies read (``context.x``, ``context has x``); ``None`` when
    one uses the context as a whole (then every argument is its business)."""
    reads: set[str] = set()
    whole = False

    def walk(node: Any) -> None:
        nonlocal whole
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, Mapping):
            for op, body in node.items():
                if (
                    op in (".", "has")
                    and isinstance(body, Mapping)
                    and body.get("left") == {"Var": "context"}
                    and isinstance(body.get("attr"), str)
                ):
                    reads.add(body["attr"])
                elif op == "Var" and body == "context":
                    whole = True
                else:
                    walk(body)

    for policy in policies:
        walk(policy.get("conditions") or [])
    return None if whole else frozenset(reads)


def _names(scope: Mapping[str, Any], tool: str) -> bool:
    """Whether a policy's action scope can match ``tool``."""
    op = scope.get("op")
    if op == "All":
        return True
    entities = scope.get("entities") or ([scope["entity"]] if "entity" in scope else [])
    return any(isinstance(e, Mapping) and e.get("id") == tool for e in entities)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
