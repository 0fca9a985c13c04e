"""What the policy stage builds on: exact Cedar values, one compiled Cedar set, and Switchboard's
own dialect (its schema and its request).

A gateway's policies are split into sets, one per dialect and mode (``CedarSet``): each set is
evaluated on its own and ``policy.GatewayPolicy`` combines their verdicts. A set answers which of
its statements were satisfied (forbids, permits) and which forbids could not be evaluated; it never
decides alone, so that two dialects (two entity models, two schemas) can govern one gateway.

A dialect says what a request looks like in its entity model: the principal, action, resource and
context of one call, the entities they need, which arguments a statement reads, and the schema
its statements are validated against.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from gateway.core.catalog import Catalog
from gateway.core.types import JSON, Principal

if TYPE_CHECKING:  # cedarpy is imported by the first gateway that has policies, not at start-up
    import cedarpy

NS = "Switchboard"
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
ESCAPES = frozenset({"__entity", "__extn", "__expr"})  # Cedar's JSON reads these as non-records
_FAILED = re.compile(r"policy `([^`]+)`")
_UNSEEN: Any = object()


class Unrepresentable(ValueError):
    """An argument a policy reads has a value Cedar cannot hold exactly."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


MAX_COMPARED_CHARS = 65_536


def exact(value: Any, path: str) -> Any:
    """``value`` as the Cedar JSON value equal to it, or `Unrepresentable` naming ``path``.

    Whole floats become the integer they equal, so ``1e6`` and ``1000000.0`` meet the same rule
    as ``1000000``; nothing is ever left out.
    """
    # The messages never repeat the value: they reach the audit, which keeps no arguments.
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_COMPARED_CHARS:  # Cedar's `like` costs its length times the pattern's
            raise Unrepresentable(
                path, f"is longer than the {MAX_COMPARED_CHARS} characters a policy compares"
            )
        return value
    if isinstance(value, int):
        if not LONG_MIN <= value <= LONG_MAX:
            raise Unrepresentable(path, "is outside the policy engine's 64-bit integer range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unrepresentable(path, "is not a finite number")
        if not value.is_integer():
            raise Unrepresentable(path, "has a fraction, which the policy cannot compare exactly")
        return exact(int(value), path)
    if value is None:
        raise Unrepresentable(path, "null has no value the policy can compare; leave the argument out")
    if isinstance(value, list | tuple):
        return [exact(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            reserved(key, path)
            out[str(key)] = exact(item, f"{path}.{key}")
        return out
    raise Unrepresentable(path, f"a {type(value).__name__} is not a JSON value")


def reserved(key: Any, path: str) -> None:
    """Refuse a record member Cedar's JSON would read as an entity or extension escape."""
    if key in ESCAPES:
        raise Unrepresentable(f"{path}.{key}", f"a member named {key!r} is reserved by the policy engine")


def context_for(arguments: Mapping[str, Any], reads: frozenset[str] | None) -> dict[str, Any]:
    """The Cedar context of a call: the arguments the policies read (``None``: all), exactly."""
    names = arguments.keys() if reads is None else reads.intersection(arguments)
    return {str(name): exact(arguments[name], str(name)) for name in names}


class Dialect(Protocol):
    """One entity model Cedar statements are written against."""

    name: str

    def caller(self, principal: Principal) -> Any:
        """What requests are made from, worked out once per decision."""
        ...

    def caller_key(self, principal: Principal) -> tuple[Any, ...]:
        """What of the caller a decision that ignores the arguments depends on."""
        ...

    def matches(self, scope: Mapping[str, Any], tool: str) -> bool:
        """Whether a statement's action scope can match ``tool``."""
        ...

    def reads(self, statements: Sequence[Mapping[str, Any]]) -> frozenset[str] | None:
        """The arguments these statements read (``None``: every one)."""
        ...

    def context(self, tool: str, arguments: Mapping[str, Any], reads: frozenset[str] | None) -> JSON:
        """The request's context, with the arguments ``reads`` names, as exact Cedar values."""
        ...

    def request(self, caller: Any, tool: str, target: str, context: JSON | None) -> JSON: ...

    def entities(self, caller: Any, tool: str, target: str) -> list[JSON]: ...

    def schema(self, catalog: Catalog) -> dict[str, Any]:
        """The Cedar schema its statements are validated against."""
        ...

    def check(self, statement: Mapping[str, Any]) -> str | None:
        """What is wrong with a statement's scope beyond the schema's reach (None: nothing)."""
        ...


class Verdict(NamedTuple):
    """What one set said of one call: whether Cedar allowed it, the statements that decided
    (the permits that applied, or the forbids), and the forbids whose evaluation failed."""

    allowed: bool
    reasons: tuple[str, ...]
    failed: str  # forbids (or statements we cannot name) whose evaluation failed, joined


NOTHING = Verdict(False, (), "")


class CedarSet:
    """The statements of one dialect that share a mode, compiled per tool on first use.

    Each decision needs only the statements whose action scope can match the tool: a set per
    tool keeps a decision's cost with the statements about that tool, not all of them. What is
    worked out per tool is worked out on its first decision, not from the catalog at build: a
    tool that appears later (an upstream's list_changed, a target that recovers) is no exception.
    """

    def __init__(self, dialect: Dialect, statements: Mapping[str, JSON], enforced: bool) -> None:
        self.dialect = dialect
        self.statements = dict(statements)
        self.enforced = enforced
        self._by_tool: dict[str, cedarpy.PolicySet | None] = {}
        self._reading = [
            s for s in self.statements.values() if '"context"' in json.dumps(s.get("conditions") or [])
        ]
        self._contextual: dict[str, bool] = {}
        self._reads: dict[str, frozenset[str] | None] = {}

    def _about(self, tool: str) -> dict[str, JSON]:
        return {i: s for i, s in self.statements.items() if self.dialect.matches(s.get("action") or {}, tool)}

    def for_tool(self, tool: str) -> cedarpy.PolicySet | None:
        """The Cedar set of the statements about ``tool`` (None: there are none)."""
        import cedarpy

        if tool not in self._by_tool:
            relevant = self._about(tool)
            doc = {"staticPolicies": relevant, "templates": {}, "templateLinks": []}
            self._by_tool[tool] = cedarpy.PolicySet.from_json_str(json.dumps(doc)) if relevant else None
        return self._by_tool[tool]

    def contextual(self, tool: str) -> bool:
        """Whether a statement about ``tool`` reads the context (its decisions cannot be kept)."""
        found = self._contextual.get(tool)
        if found is None:
            found = self._contextual[tool] = any(
                self.dialect.matches(s.get("action") or {}, tool) for s in self._reading
            )
        return found

    def reads(self, tool: str) -> frozenset[str] | None:
        if tool not in self._reads:
            self._reads[tool] = self.dialect.reads(list(self._about(tool).values()))
        return self._reads[tool]

    def evaluate(self, caller: Any, tool: str, target: str, arguments: Mapping[str, Any] | None) -> Verdict:
        """The statements satisfied by one call (``arguments`` None: none is read).

        Raises:
            Unrepresentable: an argument a statement reads has a value Cedar cannot hold exactly.
        """
        import cedarpy

        found = self._by_tool.get(tool, _UNSEEN)
        if found is _UNSEEN:
            found = self.for_tool(tool)
        if found is None:
            return NOTHING
        dialect = self.dialect
        if arguments is None:
            context = dialect.context(tool, {}, frozenset())
        else:
            context = dialect.context(tool, arguments, self.reads(tool))
        result = cedarpy.is_authorized(
            dialect.request(caller, tool, target, context), found, dialect.entities(caller, tool, target)
        )
        diagnostics = result.diagnostics
        failed = self._failed_forbids(diagnostics.errors) if diagnostics.errors else ""
        return Verdict(result.decision == cedarpy.Decision.Allow, tuple(diagnostics.reasons), failed)

    def could(self, caller: Any, tool: str, target: str) -> str:
        """With the arguments unknown: ``forbid`` (a forbid applies whatever they are), ``permit``
        (a permit applies whatever they are), ``maybe``, or ``none`` (no permit can apply)."""
        import cedarpy

        found = self.for_tool(tool)
        if found is None:
            return "none"
        request = {k: _surface(v) for k, v in self.dialect.request(caller, tool, target, None).items()}
        try:
            result = cedarpy.is_authorized_partial(
                request, found, self.dialect.entities(caller, tool, target)
            )
        except (TypeError, ValueError):  # an id Cedar's surface syntax cannot hold: never hide on a guess
            return "maybe"
        if result.decision == cedarpy.Decision.Allow:
            return "permit"
        if result.decision == cedarpy.Decision.Deny:
            return "forbid" if result.diagnostics.reasons else "none"
        return "maybe"

    def _failed_forbids(self, errors: Sequence[str]) -> str:
        """The evaluation errors that belong to a forbid (or to no statement we can name), joined:
        Cedar skips a statement whose evaluation fails, and a forbid must not be sidestepped."""
        failed = []
        for error in errors:
            named = _FAILED.search(error)
            statement = self.statements.get(named.group(1)) if named else None
            if statement is None or statement.get("effect") == "forbid":
                failed.append(error)
        return "; ".join(failed)


# -- Switchboard's dialect ------------------------------------------------------


def cedar_type(schema: Any) -> dict[str, Any] | None:
    if not isinstance(schema, Mapping):  # `true`, `false`: any value, nothing a policy compares
        return None
    kind = schema.get("type")
    if kind == "string":
        return {"type": "String"}
    if kind in ("integer", "number"):  # whole numbers only: a fraction is refused at call time
        return {"type": "Long"}
    if kind == "boolean":
        return {"type": "Boolean"}
    if kind == "array":
        inner = cedar_type(schema.get("items") or {})
        return {"type": "Set", "element": inner} if inner is not None else None
    if kind == "object":
        return {"type": "Record", "attributes": _attributes(schema)}
    return None  # unions, untyped values: not comparable in a policy


def _attributes(schema: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, sub in dict(schema.get("properties") or {}).items():
        typed = cedar_type(sub) if isinstance(sub, Mapping) else None
        if typed is not None:
            out[name] = {**typed, "required": False}
    return out


def schema_for(catalog: Catalog) -> dict[str, Any]:
    """The Cedar schema of a gateway in Switchboard's dialect: its users, targets, one action per tool."""
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


class SwitchboardDialect:
    """Principal ``Switchboard::User`` (tenant, client, scopes), action the tool's public name,
    resource ``Switchboard::Target`` in ``Switchboard::Gateway``, context the arguments (ADR 0011)."""

    name = "switchboard"

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway

    def caller(self, principal: Principal) -> Principal:
        return principal

    def caller_key(self, principal: Principal) -> tuple[Any, ...]:
        return (principal.tenant, principal.subject, principal.client_id, principal.scopes)

    def matches(self, scope: Mapping[str, Any], tool: str) -> bool:
        return names(scope, tool)

    def reads(self, statements: Sequence[Mapping[str, Any]]) -> frozenset[str] | None:
        return attribute_reads(statements, {"Var": "context"})

    def context(self, tool: str, arguments: Mapping[str, Any], reads: frozenset[str] | None) -> JSON:
        return context_for(arguments, reads)

    def request(self, caller: Principal, tool: str, target: str, context: JSON | None) -> JSON:
        request: JSON = {
            "principal": f'{NS}::User::"{quote(caller.subject)}"',
            "action": f'{NS}::Action::"{quote(tool)}"',
            "resource": f'{NS}::Target::"{quote(target)}"',
        }
        if context is not None:
            request["context"] = context
        return request

    def entities(self, caller: Principal, tool: str, target: str) -> list[JSON]:
        attrs: JSON = {"tenant": caller.tenant, "scopes": sorted(caller.scopes)}
        if caller.client_id:
            attrs["client"] = caller.client_id
        return [
            {"uid": {"type": f"{NS}::User", "id": caller.subject}, "attrs": attrs, "parents": []},
            {
                "uid": {"type": f"{NS}::Target", "id": target},
                "attrs": {},
                "parents": [{"type": f"{NS}::Gateway", "id": self.gateway}],
            },
            {"uid": {"type": f"{NS}::Gateway", "id": self.gateway}, "attrs": {}, "parents": []},
        ]

    def schema(self, catalog: Catalog) -> dict[str, Any]:
        return schema_for(catalog)

    def check(self, statement: Mapping[str, Any]) -> str | None:
        return None


def attribute_reads(statements: Sequence[Mapping[str, Any]], record: JSON) -> frozenset[str] | None:
    """The attributes of ``record`` (``context``, or ``context.input``) these statements read
    (``.x``, ``has x``); ``None`` when one uses it as a whole (then every argument is its business)."""
    reads: set[str] = set()
    whole = False

    def walk(node: Any) -> None:
        nonlocal whole
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, Mapping):
            if node == record:
                whole = True
                return
            for op, body in node.items():
                if (
                    op in (".", "has")
                    and isinstance(body, Mapping)
                    and body.get("left") == record
                    and isinstance(body.get("attr"), str)
                ):
                    reads.add(body["attr"])
                elif op == "has" and isinstance(body, Mapping) and body.get("left") == {"Var": "context"}:
                    continue  # `context has input`: whether it is there, not what it holds
                elif op == "Var" and body == "context":
                    whole = True
                else:
                    walk(body)

    for statement in statements:
        walk(statement.get("conditions") or [])
    return None if whole else frozenset(reads)


def names(scope: Mapping[str, Any], tool: str, groups: frozenset[str] = frozenset()) -> bool:
    """Whether an action scope can match ``tool`` (``groups``: action groups every tool is in)."""
    if scope.get("op") == "All":
        return True
    entities = scope.get("entities") or ([scope["entity"]] if "entity" in scope else [])
    if not groups:
        return any(isinstance(e, Mapping) and e.get("id") == tool for e in entities)
    return any(isinstance(e, Mapping) and (e.get("id") == tool or e.get("id") in groups) for e in entities)


def _surface(uid: Any) -> Any:
    """An entity given as ``{type, id}`` in Cedar's surface syntax (partial evaluation takes no other)."""
    if isinstance(uid, Mapping) and set(uid) == {"type", "id"}:
        return f'{uid["type"]}::"{quote(str(uid["id"]))}"'
    return uid


def quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
