"""The OpenAPI compiler: one tool per operation, with a plan for building its request.

Each operation becomes a ToolSpec (name from operationId, sanitised and made
unique, else method and path; description from summary and description;
inputSchema merging path, query, header and cookie parameters with the request
body; outputSchema from the JSON 2xx response; annotations from the method)
and an Operation (how each argument maps back onto the request). An operation
that cannot be compiled is skipped and reported, never fatal for the rest.

Every schema is checked against the JSON Schema 2020-12 metaschema here, once
(metaschema.py): an operation whose arguments' schema is not valid is skipped,
one whose response schema is not valid is served without an outputSchema, and
the catalog takes the rest as checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.core.catalog import CheckedSchema
from gateway.core.errors import ConfigError
from gateway.core.types import ToolSpec
from gateway.openapi.document import Document
from gateway.openapi.media import BodyMedia, base64_parts, pick
from gateway.openapi.metaschema import MetaSchema
from gateway.openapi.schema import JSON, SchemaCompiler, short

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_OUTPUT_SCHEMA_BYTES = 16 * 1024
_DEFAULT_STYLE = {"query": "form", "cookie": "form", "path": "simple", "header": "simple"}
_GATEWAY_HEADERS = frozenset(
    {"accept", "content-type", "authorization", "host", "content-length", "transfer-encoding", "connection"}
)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: where it goes and how it is serialised."""

    name: str
    location: str  # path | query | header | cookie
    arg: str  # the argument name in the tool's inputSchema
    style: str
    explode: bool
    required: bool
    allow_reserved: bool = False
    schema_type: str | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """How to turn a tool's arguments into the HTTP request the document describes."""

    tool: str
    method: str
    path: str
    params: tuple[Param, ...]
    body_media: str | None = None
    body_arg: str | None = None  # the argument holding the whole body, when not flattened
    body_fields: tuple[str, ...] = ()  # flattened body properties (argument name == property name)
    body_required: bool = False
    encoding: Mapping[str, Any] = field(default_factory=dict)
    servers: tuple[str, ...] = ()
    security: tuple[Mapping[str, Any], ...] = ()
    idempotent: bool = False
    tags: tuple[str, ...] = ()
    wrap_result: bool = False  # the outputSchema puts the response body under "result"
    file_fields: tuple[str, ...] = ()  # multipart properties sent as file parts
    raw_body: bool = False  # body_arg holds the body's bytes, base64-encoded (media.py)
    content_type_arg: str | None = None  # the argument naming the raw body's Content-Type
    default_content_type: str | None = None  # the raw body's Content-Type when none is named
    base64_fields: tuple[str, ...] = ()  # multipart file parts given base64-encoded (media.py)


@dataclass
class Compiled:
    """A compiled document: tools, their operations, and what was skipped (and why)."""

    tools: list[ToolSpec]
    operations: dict[str, Operation]
    skipped: list[str]
    servers: list[str]
    security_schemes: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # served, but not all of it (why)


def tool_name(op_id: str | None, method: str, path: str) -> str:
    if op_id:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", op_id).strip("_")
        if name:
            return name[:128]
    slug = re.sub(r"[{}]", "", path)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", slug).strip("_")
    return f"{method}_{slug}"[:128] if slug else method


def _annotations(method: str) -> JSON:
    if method in ("get", "head", "options"):
        return {"readOnlyHint": True}
    if method == "delete":
        return {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True}
    if method == "put":
        return {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True}
    return {"readOnlyHint": False, "destructiveHint": False}


def _describe(op: Mapping[str, Any]) -> str:
    summary = str(op.get("summary") or "").strip()
    description = str(op.get("description") or "").strip()
    if summary and description and not description.startswith(summary):
        return short(f"{summary.rstrip('.')}. {description}", 600)
    return short(summary or description, 600)


class Compiler:
    """Compiles the operations of one document."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        version = str(doc.root.get("openapi", "3.0"))
        self.schemas = SchemaCompiler(doc, openapi31=version.startswith("3.1"))
        self.meta = MetaSchema()
        self.notes: list[str] = []

    def compile(self) -> Compiled:
        root = self.doc.root
        servers = [s.get("url", "/") for s in root.get("servers") or [] if isinstance(s, dict)] or ["/"]
        tools: list[ToolSpec] = []
        operations: dict[str, Operation] = {}
        skipped: list[str] = []
        used: set[str] = set()
        paths = root.get("paths") or {}
        if not isinstance(paths, dict):
            raise ConfigError("`paths` must be a mapping")
        for path, item in paths.items():
            item, item_base = self.doc.deref(item, self.doc.uri)
            if not isinstance(item, dict):
                continue
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                pointer = f"#/paths/{path.replace('~', '~0').replace('/', '~1')}/{method}"
                name = tool_name(op.get("operationId"), method, path)
                base, n = name, 2
                while name in used:
                    name, n = f"{base}_{n}", n + 1
                try:
                    spec, operation = self._operation(name, method, path, item, op, item_base, servers)
                except (ConfigError, RecursionError, KeyError, TypeError, ValueError) as exc:
                    skipped.append(f"{method.upper()} {path} ({pointer}): {_message(exc)}")
                    continue
                used.add(name)
                tools.append(spec)
                operations[name] = operation
        schemes = (root.get("components") or {}).get("securitySchemes") or {}
        return Compiled(tools, operations, skipped, servers, dict(schemes), self.notes)

    def _operation(
        self,
        name: str,
        method: str,
        path: str,
        item: Mapping[str, Any],
        op: Mapping[str, Any],
        base: str,
        doc_servers: list[str],
    ) -> tuple[ToolSpec, Operation]:
        merged: dict[tuple[str, str], tuple[Mapping[str, Any], str]] = {}
        for raw in [*(item.get("parameters") or []), *(op.get("parameters") or [])]:
            param, pbase = self.doc.deref(raw, base)
            if not isinstance(param, dict) or "name" not in param or "in" not in param:
                raise ConfigError("a parameter needs `name` and `in`")
            merged[(param["in"], param["name"])] = (param, pbase)  # operation level overrides path level
        properties: JSON = {}
        required: list[str] = []
        refs: set[Any] = set()
        params: list[Param] = []
        taken: set[str] = set()
        for (location, pname), (param, pbase) in merged.items():
            if location not in _DEFAULT_STYLE:
                raise ConfigError(f"parameter {pname!r} has an unknown location {location!r}")
            if location == "header" and pname.lower() in _GATEWAY_HEADERS:
                continue  # the gateway's (the first three per the specification; the rest frame requests)
            arg = pname if pname not in taken else f"{location}_{pname}"
            taken.add(arg)
            schema_src = param.get("schema")
            if schema_src is None and isinstance(param.get("content"), dict) and param["content"]:
                schema_src = next(iter(param["content"].values())).get("schema", {})
            schema, prefs = self.schemas.convert(schema_src or {}, pbase, "request")
            refs |= prefs
            if param.get("description") and "description" not in schema:
                schema = {**schema, "description": short(str(param["description"]))}
            if param.get("deprecated"):
                schema = {**schema, "deprecated": True}
            properties[arg] = schema
            is_required = bool(param.get("required")) or location == "path"
            if is_required:
                required.append(arg)
            style = param.get("style") or _DEFAULT_STYLE[location]
            explode = param.get("explode", style == "form")
            params.append(
                Param(
                    name=pname,
                    location=location,
                    arg=arg,
                    style=style,
                    explode=bool(explode),
                    required=is_required,
                    allow_reserved=bool(param.get("allowReserved")),
                    schema_type=_type_of(schema_src, self.doc, pbase),
                )
            )
        body_media = body_arg = None
        body_fields: tuple[str, ...] = ()
        body_required = False
        encoding: Mapping[str, Any] = {}
        file_fields: tuple[str, ...] = ()
        raw = False
        content_type_arg = default_type = None
        base64_fields: tuple[str, ...] = ()
        chosen: BodyMedia | None = None
        if op.get("requestBody") is not None:
            body, bbase = self.doc.deref(op["requestBody"], base)
            content = body.get("content") or {}
            shapes = {m: _shape((v or {}).get("schema"), self.doc, bbase) for m, v in content.items()}
            chosen = pick(content, shapes)
        if chosen is not None and chosen.kind == "binary":
            body_media, raw, default_type = chosen.media, True, chosen.default_type
            body_required = bool(body.get("required"))
            body_arg = "body" if "body" not in taken else "request_body"
            taken.add(body_arg)
            types = ", ".join(chosen.content_types)
            properties[body_arg] = {
                "type": "string",
                "contentEncoding": "base64",
                **({"contentMediaType": types} if "*" not in types and "," not in types else {}),
                "description": short(str(body.get("description") or "The request body"))
                + f" ({types}): its bytes, base64-encoded.",
            }
            if body_required:
                required.append(body_arg)
            type_schema = chosen.content_type_schema()
            if type_schema is not None:
                content_type_arg = "content_type" if "content_type" not in taken else "body_content_type"
                properties[content_type_arg] = type_schema
                if default_type is None:
                    required.append(content_type_arg)
        elif chosen is not None:
            body_media = chosen.media
            media = content[body_media] or {}
            encoding = media.get("encoding") or {}
            body_required = bool(body.get("required"))
            bschema, brefs = self.schemas.convert(media.get("schema") or {}, bbase, "request")
            refs |= brefs
            if chosen.kind == "multipart":
                bschema, base64_fields = base64_parts(bschema)
            file_fields = tuple(
                k
                for k, v in (bschema.get("properties") or {}).items()
                if isinstance(v, dict) and (v.get("format") in ("binary", "byte") or k in encoding)
            )
            flat = _flattenable(bschema, taken)
            if flat is not None:
                props, breq = flat
                properties.update(props)
                body_fields = tuple(props)
                if body_required:
                    required.extend(breq)
            else:
                body_arg = "body" if "body" not in taken else "request_body"
                if body.get("description") and "description" not in bschema:
                    bschema = {**bschema, "description": short(str(body["description"]))}
                properties[body_arg] = bschema
                if body_required:
                    required.append(body_arg)
        input_schema: JSON = {"type": "object", "properties": properties}
        if required:
            input_schema["required"] = list(dict.fromkeys(required))
        input_schema = self.meta.checked(
            self.schemas.with_defs(input_schema, refs, "request"), "the arguments' schema"
        )
        op_servers = [s.get("url", "/") for s in (op.get("servers") or item.get("servers") or [])]
        security = op.get("security", self.doc.root.get("security")) or []
        output_schema, wrap = self._output_schema(op, base)
        if output_schema is not None:
            problem = self.meta.problem(output_schema)
            if problem is not None:
                self.notes.append(
                    f"{method.upper()} {path}: served without an outputSchema; its response schema "
                    f"is not valid JSON Schema: {problem}"
                )
                output_schema, wrap = None, False
            else:
                output_schema = CheckedSchema(output_schema)
        spec = ToolSpec(
            name=name,
            title=str(op.get("summary") or "").strip()[:120] or None,
            description=_describe(op) or f"{method.upper()} {path}",
            input_schema=input_schema,
            output_schema=output_schema,
            annotations=_annotations(method),
        )
        operation = Operation(
            tool=name,
            method=method.upper(),
            path=path,
            params=tuple(params),
            body_media=body_media,
            body_arg=body_arg,
            body_fields=body_fields,
            body_required=body_required,
            encoding=encoding,
            servers=tuple(op_servers or doc_servers),
            security=tuple(security),
            idempotent=method in ("get", "head", "options", "put", "delete"),
            tags=tuple(str(t) for t in op.get("tags") or ()),
            wrap_result=wrap,
            file_fields=file_fields,
            raw_body=raw,
            base64_fields=base64_fields,
            content_type_arg=content_type_arg,
            default_content_type=default_type,
        )
        return spec, operation

    def _output_schema(self, op: Mapping[str, Any], base: str) -> tuple[JSON | None, bool]:
        responses = op.get("responses") or {}
        for status in sorted(str(s) for s in responses):
            if not status.startswith("2"):
                continue
            resp, rbase = self.doc.deref(responses.get(status) or responses.get(int(status)), base)
            content = (resp or {}).get("content") or {}
            media = next((m for m in content if m.split(";")[0].strip().endswith("json")), None)
            if media is None or not isinstance(content[media], dict) or "schema" not in content[media]:
                return None, False
            schema, refs = self.schemas.convert(content[media]["schema"], rbase, "response")
            # structuredContent must be an object: anything else travels under "result"
            wrap = schema.get("type") != "object" or "properties" not in schema
            if wrap:
                schema = {"type": "object", "properties": {"result": schema}, "required": ["result"]}
            full = self.schemas.with_defs(schema, refs, "response")
            if len(orjson.dumps(full)) > MAX_OUTPUT_SCHEMA_BYTES:
                return None, False  # too big to be worth its tokens; results still carry structuredContent
            return full, wrap
        return None, False


def _flattenable(schema: JSON, taken: set[str]) -> tuple[JSON, list[str]] | None:
    """The body's properties as top-level arguments, when that is unambiguous."""
    if schema.get("type") != "object" or "properties" not in schema:
        return None
    if set(schema) - {"type", "properties", "required", "description", "additionalProperties"}:
        return None  # composition or $defs at the body's root: keep it whole
    if schema.get("additionalProperties") not in (None, False):
        return None
    props: JSON = schema["properties"]
    if not props or set(props) & taken or "body" in props:
        return None
    return dict(props), list(schema.get("required") or [])


def _shape(schema: Any, doc: Document, base: str) -> tuple[str | None, str | None]:
    """A schema's (type, format), following one ``$ref``."""
    if isinstance(schema, dict) and "$ref" in schema:
        try:
            schema, _, _ = doc.resolve(schema["$ref"], base)
        except ConfigError:
            return None, None
    if not isinstance(schema, dict):
        return None, None
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    fmt = schema.get("format")
    kind = kind if isinstance(kind, str) else ("object" if "properties" in schema else None)
    return kind, fmt if isinstance(fmt, str) else None


def _type_of(schema: Any, doc: Document, base: str) -> str | None:
    return _shape(schema, doc, base)[0]


def _message(exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return "; ".join(f"{i.location}: {i.message}" if i.location else i.message for i in exc.issues)
    if isinstance(exc, RecursionError):
        return "references nest too deeply"
    return f"{type(exc).__name__}: {exc}"
