"""The admin API's operations, and its OpenAPI 3.1 document made from them.

Each operation names the model that validates its request body (``body``); the document's
schemas are generated from those same models, so what the document says a request takes is
what the API accepts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from gateway import __version__

REF = "#/components/schemas/{model}"
ERROR_SCHEMA: dict[str, Any] = {
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


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path of the admin API.

    ``body``: the type that validates the request body (a model, or a union such as a target),
    None for an operation without one. ``answers``: the statuses it answers besides 401 and 404
    (the default is 200 OK; 204 for a DELETE)."""

    path: str
    method: str
    handler: Callable[..., Awaitable[Any]]
    summary: str
    body: Any = None
    answers: Mapping[int, str] = field(default_factory=dict)
    body_required: bool = True


def describe(operations: Sequence[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    err = {"content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    paths: dict[str, Any] = {}
    for op in operations:
        answers = dict(op.answers) or {204 if op.method == "DELETE" else 200: "OK"}
        responses: dict[str, Any] = {}
        for status, text in sorted(
            {**answers, 401: "Missing or invalid admin key", 404: "Not found"}.items()
        ):
            if status >= 400:
                responses[str(status)] = {"description": text, **err}
            elif status == 204:
                responses[str(status)] = {"description": text}
            else:
                body = {"application/json": {"schema": {"type": "object"}}}
                responses[str(status)] = {"description": text, "content": body}
        doc: dict[str, Any] = {
            "operationId": op.handler.__name__,
            "summary": op.summary,
            "security": [{"adminKey": []}],
            "responses": responses,
        }
        params = [p.strip("{}") for p in op.path.split("/") if p.startswith("{")]
        if params:
            doc["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
            ]
        if op.body is not None:
            schema = _schema_of(op.body, schemas)
            doc["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": schema}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = doc
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard admin API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"adminKey": {"type": "http", "scheme": "bearer"}},
        },
    }


def _schema_of(body: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The schema of a body type as the API validates it; the models it names go to ``schemas``
    and are referred to from there."""
    schema = TypeAdapter(body).json_schema(mode="validation", ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    title = schema.get("title")
    if isinstance(body, type) and isinstance(title, str):
        schemas[body.__name__] = schema
        return {"$ref": REF.format(model=body.__name__)}
    return schema
