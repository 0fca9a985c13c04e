"""The admin API's OpenAPI 3.1 document, from its routes and the models that validate its bodies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic.json_schema import models_json_schema

from gateway import __version__, connectors
from gateway.config import GatewaySpec


def describe(routes: Sequence[tuple[str, str, Callable[..., Any], str]]) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the admin API's ``routes`` (path, method, handler, summary)."""
    _, defs = models_json_schema(
        [(GatewaySpec, "validation"), (connectors.EnableRequest, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "issues": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"location": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    target_ref = {
        "oneOf": [
            {"$ref": f"#/components/schemas/{n}"}
            for n in (
                "FunctionTarget",
                "LambdaTarget",
                "HttpTarget",
                "OpenApiTarget",
                "McpTarget",
                "PluginTarget",
                "ConnectorTarget",
            )
        ],
        "discriminator": {"propertyName": "kind"},
    }
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    paths: dict[str, Any] = {}
    for path, method, handler, summary in routes:
        op: dict[str, Any] = {
            "operationId": handler.__name__,
            "summary": summary,
            "security": [{"adminKey": []}],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                "401": {"description": "Missing or invalid admin key", **err},
                "404": {"description": "Not found", **err},
            },
        }
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
            ]
        if path.endswith("/pins") and method == "POST":
            tools = {"type": "array", "items": {"type": "string"}}
            op["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {"schema": {"type": "object", "properties": {"tools": tools}}}
                },
            }
            op["responses"]["422"] = {"description": "A named tool is not served now", **err}
        elif "/credentials/" in path and method == "PUT":
            secret_schema = {
                "type": "object",
                "required": ["secret"],
                "properties": {"secret": {"type": "string"}},
            }
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": secret_schema}}}
            op["responses"]["422"] = {"description": "Refused: no secret", **err}
        elif path.startswith("/admin/v1/approvals/") and method == "POST":
            props = {"decision": {"enum": ["approve", "reject"]}, "reason": {"type": "string"}}
            decision_schema = {"type": "object", "required": ["decision"], "properties": props}
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": decision_schema}},
            }
            op["responses"]["409"] = {"description": "Decided already", **err}
            op["responses"]["422"] = {"description": "Refused: not a decision", **err}
        elif path.endswith("/keys") and method == "POST":
            props = {"subject": {"type": "string"}, "scopes": {"type": "array", "items": {"type": "string"}}}
            key_schema = {"type": "object", "required": ["subject"], "properties": props}
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": key_schema}}}
            op["responses"]["201"] = {"description": "Created; the key is in the body, shown once"}
            op["responses"]["422"] = {"description": "Refused: the request is not valid", **err}
        elif "/connectors/" in path and method == "POST":
            enable_schema = {"$ref": "#/components/schemas/EnableRequest"}
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": enable_schema}}}
            op["responses"]["201"] = {"description": "Enabled: the target made (its credential provider too)"}
            op["responses"]["422"] = {"description": "Refused: the request is not valid", **err}
        elif method in ("POST", "PUT"):
            schema = target_ref if "targets" in path else {"$ref": "#/components/schemas/GatewaySpec"}
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
            op["responses"]["201"] = {"description": "Created"}
            op["responses"]["409"] = {"description": "Exists", **err}
            op["responses"]["422"] = {"description": "Refused: the configuration is not valid", **err}
        if method == "DELETE":
            op["responses"] = {k: v for k, v in op["responses"].items() if k != "200"}
            op["responses"]["204"] = {"description": "Deleted"}
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard admin API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"adminKey": {"type": "http", "scheme": "bearer"}},
        },
    }
