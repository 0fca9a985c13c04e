"""Amazon Bedrock AgentCore's entity model for Cedar, so that policies written for AgentCore
govern a Switchboard gateway unchanged (ADR 0032).

The request for one call, as AgentCore's developer guide describes it:

- principal ``AgentCore::OAuthUser::"<sub>"``, with the attribute ``id`` (the same) and every
  claim of the caller's token as a *string* tag (``principal.hasTag("role")``,
  ``principal.getTag("role")``): a string as it is, a number or boolean as its JSON text
  (``"1735689600"``, ``"true"``), an array or object as its compact JSON text
  (``["a","b"]``); a null claim gives no tag. A caller without a token (``auth: none``, a
  gateway API key) is an OAuthUser too, made of what Switchboard knows of it: its subject as the
  id (``anonymous`` on an open gateway) and the tags a token would carry for it, ``sub``, and
  ``scope`` (space-separated) and ``client_id`` when it has them;
- action ``AgentCore::Action::"<target>___<tool>"``, a member of ``AgentCore::Action::"CallTool"``,
  itself in ``AgentCore::Action::"Mcp"``;
- resource ``AgentCore::Gateway::"<the gateway's ARN>"``;
- context ``{input: <the arguments>}``, typed from the tool's inputSchema: ``integer`` is Long,
  ``number`` is ``decimal`` (truncated to Cedar's four places, as AgentCore does), ``required``
  properties are required attributes.

A statement must scope its resource as AgentCore requires: ``resource == AgentCore::Gateway::
"<arn>"`` when it names actions, ``resource is AgentCore::Gateway`` when it does not, never a bare
``resource``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from gateway.core.catalog import Catalog
from gateway.core.types import JSON, Principal
from gateway.stages._cedar import Unrepresentable, attribute_reads, exact, names, reserved

NS = "AgentCore"
GROUPS = frozenset({"CallTool", "Mcp"})
INPUT: JSON = {".": {"left": {"Var": "context"}, "attr": "input"}}
DECIMAL_MIN = Decimal("-922337203685477.5808")
DECIMAL_MAX = Decimal("922337203685477.5807")
_PLACES = Decimal("0.0001")
_ACTIONS: list[JSON] = [
    {
        "uid": {"type": f"{NS}::Action", "id": "CallTool"},
        "attrs": {},
        "parents": [{"type": f"{NS}::Action", "id": "Mcp"}],
    },
    {"uid": {"type": f"{NS}::Action", "id": "Mcp"}, "attrs": {}, "parents": []},
]


def tags(principal: Principal) -> dict[str, str]:
    """The caller's claims as AgentCore's string tags (see the module's docstring)."""
    claims: Mapping[str, Any] = principal.claims
    if not claims:
        made: dict[str, str] = {"sub": principal.subject}
        if principal.scopes:
            made["scope"] = " ".join(sorted(principal.scopes))
        if principal.client_id:
            made["client_id"] = principal.client_id
        return made
    return {
        str(name): value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for name, value in claims.items()
        if value is not None
    }


def user_id(principal: Principal) -> str:
    """The OAuthUser's id: the token's ``sub``, else the caller's subject."""
    sub = principal.claims.get("sub") if principal.claims else None
    return sub if isinstance(sub, str) else principal.subject


def decimal(value: int | float, path: str) -> JSON:
    """A JSON number as Cedar's ``decimal``, truncated to four places as AgentCore does."""
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise Unrepresentable(path, "is not a number the policy can compare") from None
    if not number.is_finite():
        raise Unrepresentable(path, "is not a finite number")
    if not DECIMAL_MIN <= number <= DECIMAL_MAX:
        raise Unrepresentable(path, "is outside the policy engine's decimal range")
    text = format(number.quantize(_PLACES, rounding=ROUND_DOWN), "f")
    whole, _, places = text.partition(".")
    return {"__extn": {"fn": "decimal", "arg": f"{whole}.{places.rstrip('0') or '0'}"}}


def typed(value: Any, schema: Any, path: str) -> Any:
    """``value`` as the Cedar value AgentCore's schema gives it: ``number`` positions become
    decimals, everything else is exact (a whole float in an ``integer`` position is the integer)."""
    kind = schema.get("type") if isinstance(schema, Mapping) else None
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return decimal(value, path)
    if kind == "array" and isinstance(value, list | tuple):
        items = schema.get("items") or {}
        return [typed(item, items, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind == "object" and isinstance(value, Mapping):
        properties = schema.get("properties") or {}
        out: dict[str, Any] = {}
        for key, item in value.items():
            reserved(key, path)
            out[str(key)] = typed(item, properties.get(key) or {}, f"{path}.{key}")
        return out
    return exact(value, path)


def cedar_type(schema: Any) -> dict[str, Any] | None:
    """AgentCore's mapping of a JSON Schema type to a Cedar type (None: not comparable)."""
    if not isinstance(schema, Mapping):  # `true`, `false`: any value, nothing a policy compares
        return None
    kind = schema.get("type")
    if kind == "string":
        return {"type": "String"}
    if kind == "integer":
        return {"type": "Long"}
    if kind == "number":
        return {"type": "Extension", "name": "decimal"}
    if kind == "boolean":
        return {"type": "Boolean"}
    if kind == "array":
        inner = cedar_type(schema.get("items") or {})
        return {"type": "Set", "element": inner} if inner is not None else None
    if kind == "object":
        return {"type": "Record", "attributes": attributes(schema)}
    return None


def attributes(schema: Mapping[str, Any]) -> dict[str, Any]:
    listed = schema.get("required")
    required = {r for r in listed if isinstance(r, str)} if isinstance(listed, list) else set()
    out: dict[str, Any] = {}
    for name, sub in dict(schema.get("properties") or {}).items():
        found = cedar_type(sub) if isinstance(sub, Mapping) else None
        if found is not None:
            out[name] = {**found, "required": name in required}
    return out


def schema_for(catalog: Catalog) -> dict[str, Any]:
    """The Cedar schema AgentCore generates from a gateway's tools."""
    actions: dict[str, Any] = {"Mcp": {}, "CallTool": {"memberOf": [{"id": "Mcp"}]}}
    for name, entry in catalog.snapshot.tools.items():
        actions[name] = {
            "memberOf": [{"id": "CallTool"}],
            "appliesTo": {
                "principalTypes": ["OAuthUser"],
                "resourceTypes": ["Gateway"],
                "context": {
                    "type": "Record",
                    "attributes": {
                        "input": {"type": "Record", "attributes": attributes(entry.spec.input_schema)}
                    },
                },
            },
        }
    user = {"shape": {"type": "Record", "attributes": {"id": {"type": "String"}}}, "tags": {"type": "String"}}
    return {NS: {"entityTypes": {"OAuthUser": user, "Gateway": {}}, "actions": actions}}


_TAG_CALL = re.compile(r"\b(?:has|get)Tag\s*\(")
_LITERAL_TAG = re.compile(r'\b(?:has|get)Tag\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)')


def tags_read(texts: Sequence[str]) -> frozenset[str] | None:
    """The tag names the statements read with ``hasTag("x")`` / ``getTag("x")``; None when one
    names its tag otherwise than by a literal (then every tag may matter)."""
    names: set[str] = set()
    for text in texts:
        literal = _LITERAL_TAG.findall(text)
        if len(literal) != len(_TAG_CALL.findall(text)):
            return None
        names.update(literal)
    return frozenset(names)


class AgentCoreDialect:
    """AgentCore's entity model for one gateway, whose calls are made on ``gateway_arn``."""

    name = "agentcore"

    def __init__(self, gateway_arn: str, catalog: Catalog, read: frozenset[str] | None = None) -> None:
        self.gateway_arn = gateway_arn
        self.catalog = catalog
        self.read = read  # the tags the statements read (None: any of them, or not known)

    def caller(self, principal: Principal) -> tuple[str, dict[str, str]]:
        return user_id(principal), tags(principal)

    def caller_key(self, principal: Principal) -> tuple[Any, ...]:
        """What decisions depend on of the caller: its id and the tags the statements read (not a
        token's iat, exp or jti, which would make every new token a cache miss)."""
        uid, found = self.caller(principal)
        if self.read is not None:
            found = {k: v for k, v in found.items() if k in self.read}
        return (uid, tuple(sorted(found.items())))

    def matches(self, scope: Mapping[str, Any], tool: str) -> bool:
        return names(scope, tool, GROUPS)

    def reads(self, statements: Sequence[Mapping[str, Any]]) -> frozenset[str] | None:
        return attribute_reads(statements, INPUT)

    def context(self, tool: str, arguments: Mapping[str, Any], reads: frozenset[str] | None) -> JSON:
        entry = self.catalog.snapshot.tools.get(tool)
        properties = (entry.spec.input_schema.get("properties") if entry is not None else None) or {}
        wanted = arguments.keys() if reads is None else reads.intersection(arguments)
        return {"input": {str(n): typed(arguments[n], properties.get(n) or {}, str(n)) for n in wanted}}

    def request(
        self, caller: tuple[str, dict[str, str]], tool: str, target: str, context: JSON | None
    ) -> JSON:
        request: JSON = {
            "principal": {"type": f"{NS}::OAuthUser", "id": caller[0]},
            "action": {"type": f"{NS}::Action", "id": tool},
            "resource": {"type": f"{NS}::Gateway", "id": self.gateway_arn},
        }
        if context is not None:
            request["context"] = context
        return request

    def entities(self, caller: tuple[str, dict[str, str]], tool: str, target: str) -> list[JSON]:
        uid, found = caller
        return [
            {
                "uid": {"type": f"{NS}::OAuthUser", "id": uid},
                "attrs": {"id": uid},
                "parents": [],
                "tags": found,
            },
            {"uid": {"type": f"{NS}::Gateway", "id": self.gateway_arn}, "attrs": {}, "parents": []},
            {
                "uid": {"type": f"{NS}::Action", "id": tool},
                "attrs": {},
                "parents": [{"type": f"{NS}::Action", "id": "CallTool"}],
            },
            *_ACTIONS,
        ]

    def schema(self, catalog: Catalog) -> dict[str, Any]:
        return schema_for(catalog)

    def check(self, statement: Mapping[str, Any]) -> str | None:
        """AgentCore's rules for a statement's resource scope, which its schema cannot express."""
        action, resource = statement.get("action") or {}, statement.get("resource") or {}
        this = f'resource == {NS}::Gateway::"{self.gateway_arn}"'
        if resource.get("op") == "All":
            return (
                "a wildcard resource was detected: write `resource is AgentCore::Gateway` (any action) or "
                f"`{this}` (named actions)"
            )
        entities = action.get("entities") or ([action["entity"]] if "entity" in action else [])
        grouped = action.get("op") == "in" and "entity" in action and action["entity"].get("id") in GROUPS
        named = action.get("op") != "All" and not grouped and bool(entities)
        if resource.get("op") == "==":
            if action.get("op") == "All":
                return (
                    "a policy for every action scopes its resource by type: `resource is AgentCore::Gateway`"
                )
            found = (resource.get("entity") or {}).get("id")
            if found != self.gateway_arn:
                return f"names gateway {found!r}, but this gateway's calls are made on `{this}`"
            return None
        if resource.get("op") == "is" and "in" not in resource:
            if named:
                return f"names actions, so its resource must name this gateway: `{this}`"
            return None
        return f"the resource must be `resource is AgentCore::Gateway` or `{this}`"
