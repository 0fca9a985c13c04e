"""OpenAPI Schema Objects to compact JSON Schema 2020-12.

Component schemas reached through `$ref` become entries of the tool's
``$defs`` (each converted once per direction and shared by every tool), so
recursive schemas stay references instead of expanding forever. OpenAPI 3.0
dialect is translated (``nullable``, boolean ``exclusiveMinimum``); what only
costs the model tokens is dropped (examples, xml, externalDocs, extensions,
titles); ``readOnly`` properties are left out of requests and ``writeOnly``
ones out of responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urldefrag, urljoin

from gateway.openapi.document import Document, DocumentError

Direction = Literal["request", "response"]
JSON = dict[str, Any]
DefKey = tuple[str, str]  # (document uri, JSON pointer)

MAX_DESCRIPTION = 300
_DROP = frozenset(
    {
        "example",
        "examples",
        "xml",
        "externalDocs",
        "discriminator",
        "deprecated",
        "title",
        "$schema",
        "$id",
        "nullable",
        "readOnly",
        "writeOnly",
        "$comment",
        "contentMediaType",
        "contentEncoding",
    }
)
# Output schemas describe the shape for the model; real APIs omit "required" fields and grow
# enums, so constraints that would make a usable response fail validation are left out.
_RESPONSE_LENIENT = frozenset(
    {
        "required",
        "enum",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
    }
)
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_ONE = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
)
_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def short(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Trim a description to ``limit`` characters at a sentence or word boundary."""
    head = " ".join(text[: 2 * limit + 64].split())  # documents' descriptions run to pages
    text = head if len(head) > limit + 1 else " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    for stop in (". ", "; ", ", ", " "):
        at = cut.rfind(stop)
        if at > limit // 2:
            return cut[: at + (1 if stop == ". " else 0)].rstrip() + ("" if stop == ". " else "…")
    return cut + "…"


@dataclass
class _Def:
    name: str
    schema: JSON
    deps: set[DefKey]


@dataclass
class SchemaCompiler:
    """Converts schemas of one document; caches component conversions across tools."""

    doc: Document
    openapi31: bool
    _defs: dict[tuple[DefKey, Direction], _Def] = field(default_factory=dict)
    _names: dict[DefKey, str] = field(default_factory=dict)
    _taken: set[str] = field(default_factory=set)
    _keys: dict[tuple[str, str], DefKey] = field(default_factory=dict)  # (base, $ref) -> resolved

    def convert(self, schema: Any, base: str, direction: Direction) -> tuple[JSON, set[DefKey]]:
        """A schema and the component schemas it refers to (directly)."""
        refs: set[DefKey] = set()
        out = self._convert(schema, base, direction, refs, depth=0)
        return out, refs

    def with_defs(self, schema: JSON, refs: set[DefKey], direction: Direction) -> JSON:
        """``schema`` plus the ``$defs`` it needs, transitively."""
        if not refs:
            return schema
        needed: dict[str, JSON] = {}
        todo = list(refs)
        seen: set[DefKey] = set()
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            d = self._def(key, direction)
            needed[d.name] = d.schema
            todo.extend(d.deps)
        return {**schema, "$defs": dict(sorted(needed.items()))}

    def _name_for(self, key: DefKey) -> str:
        name = self._names.get(key)
        if name is None:
            base = _NAME.sub("_", key[1].rsplit("/", 1)[-1]) or "schema"
            name, n = base, 2
            while name in self._taken:
                name, n = f"{base}_{n}", n + 1
            self._taken.add(name)
            self._names[key] = name
        return name

    def _def(self, key: DefKey, direction: Direction) -> _Def:
        cached = self._defs.get((key, direction))
        if cached is not None:
            return cached
        name = self._name_for(key)
        placeholder = _Def(name, {}, set())
        self._defs[(key, direction)] = placeholder  # breaks recursion: refs to it resolve by name
        node, uri, _ = self.doc.resolve("#" + key[1], key[0])
        deps: set[DefKey] = set()
        placeholder.schema = self._convert(node, uri, direction, deps, depth=0)
        placeholder.deps = deps
        return placeholder

    def _ref(self, ref: str, base: str, refs: set[DefKey]) -> JSON:
        key = self._keys.get((base, ref))
        if key is None:
            if ref.startswith("#"):  # the common case, and urljoin is a tenth of compiling a document
                uri, fragment = base, ref[1:]
            else:
                uri, fragment = urldefrag(urljoin(base, ref))
                uri = uri or base
            self.doc.resolve("#" + fragment, uri)  # raises, naming the pointer, when it does not exist
            key = self._keys[(base, ref)] = (uri, fragment)
        refs.add(key)
        return {"$ref": f"#/$defs/{self._name_for(key)}"}

    def _convert(self, node: Any, base: str, direction: Direction, refs: set[DefKey], depth: int) -> JSON:
        if depth > 64:
            raise DocumentError("a schema is nested more than 64 levels deep")
        if isinstance(node, bool):
            return {} if node else {"not": {}}
        if not isinstance(node, dict):
            raise DocumentError(f"expected a schema object, found {type(node).__name__}")
        if isinstance(node.get("$ref"), str):
            converted = self._ref(node["$ref"], base, refs)
            if self.openapi31:  # 3.1 allows siblings next to $ref (3.0 ignores them)
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                if siblings:
                    rest = self._convert(siblings, base, direction, refs, depth + 1)
                    if rest:
                        return {**rest, **converted}
            return converted
        out: JSON = {}
        for key, value in node.items():
            if key in _DROP or key.startswith("x-"):
                continue
            if direction == "response" and (
                key in _RESPONSE_LENIENT or (key == "additionalProperties" and value is False)
            ):
                continue
            if key == "description":
                if isinstance(value, str) and value.strip():
                    out[key] = short(value)
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [self._convert(v, base, direction, refs, depth + 1) for v in value]
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                target = "$defs" if key == "definitions" else key
                out[target] = {
                    k: self._convert(v, base, direction, refs, depth + 1) for k, v in value.items()
                }
            elif key in _SCHEMA_ONE and isinstance(value, dict | bool):
                out[key] = self._convert(value, base, direction, refs, depth + 1)
            elif key == "items" and isinstance(value, list):  # draft-4 tuple form
                out["prefixItems"] = [self._convert(v, base, direction, refs, depth + 1) for v in value]
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                if value and bound in node:
                    out[key] = node[bound]
            else:
                out[key] = value
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            if node.get(key) is True and bound in out:
                del out[bound]
        self._drop_one_sided(out, node, direction)
        if node.get("nullable") is True:
            out = _nullable(out)
        return out

    def _drop_one_sided(self, out: JSON, node: JSON, direction: Direction) -> None:
        props = node.get("properties")
        if not isinstance(props, dict) or "properties" not in out:
            return
        hide = "readOnly" if direction == "request" else "writeOnly"
        hidden = {k for k, v in props.items() if isinstance(v, dict) and v.get(hide) is True}
        if not hidden:
            return
        out["properties"] = {k: v for k, v in out["properties"].items() if k not in hidden}
        if isinstance(out.get("required"), list):
            out["required"] = [r for r in out["required"] if r not in hidden]
            if not out["required"]:
                del out["required"]


def _nullable(schema: JSON) -> JSON:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema = {**schema, "type": [kind, "null"]}
        if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
        return schema
    if isinstance(kind, list):
        return schema if "null" in kind else {**schema, "type": [*kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}
