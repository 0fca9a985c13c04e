"""Swagger 2.0 documents in the OpenAPI 3 shape the compiler reads.

Only what the compiler uses is converted: servers (host, basePath, schemes),
parameters (body and formData become request bodies; collectionFormat becomes
style/explode), responses' schemas, security definitions. ``definitions`` and
root ``parameters``/``responses`` stay where they are, so every existing
``$ref`` still resolves.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
_COLLECTION = {
    "csv": ("form", False),
    "ssv": ("spaceDelimited", False),
    "pipes": ("pipeDelimited", False),
    "multi": ("form", True),
    "tsv": ("form", False),
}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


def _schema_of(param: JSON) -> JSON:
    keys = (
        "type",
        "format",
        "items",
        "enum",
        "default",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "uniqueItems",
        "multipleOf",
    )
    schema = {k: param[k] for k in keys if k in param}
    if schema.get("type") == "file":
        schema = {"type": "string", "format": "binary"}
    return schema


def _parameter(param: JSON) -> JSON:
    if "$ref" in param:
        return param
    out: JSON = {k: param[k] for k in ("name", "in", "description", "required") if k in param}
    out["schema"] = _schema_of(param)
    if param.get("type") == "array":
        style, explode = _COLLECTION.get(param.get("collectionFormat", "csv"), ("form", False))
        if param.get("in") in ("query", "formData"):
            out["style"], out["explode"] = style, explode
    return out


def _operation(op: JSON, path_params: list[JSON], root: JSON) -> JSON:
    consumes: list[str] = op.get("consumes") or root.get("consumes") or ["application/json"]
    produces: list[str] = op.get("produces") or root.get("produces") or ["application/json"]
    params = [*path_params, *op.get("parameters", [])]
    out: JSON = {k: v for k, v in op.items() if k not in ("parameters", "responses", "consumes", "produces")}
    out["parameters"] = [_parameter(p) for p in params if p.get("in") not in ("body", "formData")]
    body = next((p for p in params if p.get("in") == "body"), None)
    form = [p for p in params if p.get("in") == "formData"]
    if body is not None:
        media = next((c for c in consumes if "json" in c), consumes[0] if consumes else "application/json")
        out["requestBody"] = {
            "required": bool(body.get("required")),
            "content": {media: {"schema": body.get("schema", {})}},
        }
        if body.get("description"):
            out["requestBody"]["description"] = body["description"]
    elif form:
        media = (
            "multipart/form-data"
            if any(p.get("type") == "file" for p in form)
            or ("multipart/form-data" in consumes and "application/x-www-form-urlencoded" not in consumes)
            else "application/x-www-form-urlencoded"
        )
        props = {
            p["name"]: {**_schema_of(p), **({"description": p["description"]} if "description" in p else {})}
            for p in form
        }
        schema: JSON = {"type": "object", "properties": props}
        required = [p["name"] for p in form if p.get("required")]
        if required:
            schema["required"] = required
        out["requestBody"] = {"required": bool(required), "content": {media: {"schema": schema}}}
    responses: JSON = {}
    for status, resp in op.get("responses", {}).items():
        if "$ref" in resp:
            responses[str(status)] = resp
            continue
        r: JSON = {"description": resp.get("description", "")}
        if "schema" in resp:
            media = next(
                (c for c in produces if "json" in c), produces[0] if produces else "application/json"
            )
            r["content"] = {media: {"schema": resp["schema"]}}
        responses[str(status)] = r
    out["responses"] = responses
    return out


def to_openapi3(root: JSON) -> JSON:
    """A Swagger 2.0 document as OpenAPI 3.0 (only the parts the compiler reads)."""
    schemes = root.get("schemes") or ["https"]
    host = root.get("host")
    base_path = root.get("basePath", "")
    servers = (
        [{"url": f"{scheme}://{host}{base_path}"} for scheme in schemes]
        if host
        else [{"url": base_path or "/"}]
    )
    paths: JSON = {}
    for path, item in (root.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        path_params = item.get("parameters", [])
        paths[path] = {m: _operation(op, path_params, root) for m, op in item.items() if m in _METHODS}
    schemes_by_name: JSON = {}
    for name, scheme in (root.get("securityDefinitions") or {}).items():
        kind = scheme.get("type")
        if kind == "basic":
            schemes_by_name[name] = {"type": "http", "scheme": "basic"}
        elif kind == "apiKey":
            schemes_by_name[name] = {"type": "apiKey", "name": scheme.get("name"), "in": scheme.get("in")}
        elif kind == "oauth2":
            schemes_by_name[name] = {"type": "oauth2", "flows": {}}
    return {
        **{k: v for k, v in root.items() if k in ("info", "tags", "security", "definitions", "parameters")},
        "openapi": "3.0.3",
        "x-converted-from": "swagger 2.0",
        "servers": servers,
        "paths": paths,
        "components": {"schemas": root.get("definitions", {}), "securitySchemes": schemes_by_name},
    }
