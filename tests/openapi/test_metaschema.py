"""The compiler's fast metaschema check: the same verdicts as jsonschema's ``check_schema``."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from gateway.core.catalog import CheckedSchema
from gateway.core.errors import ConfigError
from gateway.openapi.metaschema import MetaSchema
from tests.openapi.test_compiler import compile_doc, doc

SCHEMAS: list[Any] = [
    {"type": "object", "properties": {"a": {"type": "string", "pattern": "^[a-z]+$"}}},
    {"type": "objekt"},
    {"type": "object", "required": "a"},
    {"properties": {"a": {"pattern": "("}}},
    {"properties": {"a": {"pattern": "(?<name>x)"}}},  # ECMA named group: Python's re refuses it
    {"patternProperties": {"[": {}}},
    {"$defs": {"x": {"minimum": "1"}}, "$ref": "#/$defs/x"},
    {"items": [{"type": "string"}]},
    {"prefixItems": [{"type": "string"}], "items": False},
    {"$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMinimum": True, "minimum": 1},
    {"$ref": "#/$defs/has space", "$defs": {"has space": {}}},
    {"anyOf": []},
    {"enum": []},
    {"type": ["string", "null"], "minLength": -1},
    {"dependentRequired": {"a": ["b", "b"]}},
]


def jsonschema_verdict(schema: Any) -> bool:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return False
    return True


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_fast_check_agrees_with_jsonschemas_check_schema(schema: Any) -> None:
    assert (MetaSchema().problem(schema) is None) == jsonschema_verdict(schema)


def test_a_problem_says_what_and_where() -> None:
    problem = MetaSchema().problem({"type": "object", "properties": {"a/b": {"pattern": "("}}})
    assert problem == '"(" is not a "regex" (at /properties/a~1b/pattern)'


def test_an_operation_whose_arguments_schema_is_invalid_is_skipped_and_the_rest_served() -> None:
    compiled = compile_doc(
        doc(
            {
                "/ok": {"get": {"operationId": "ok", "responses": {}}},
                "/bad": {
                    "get": {
                        "operationId": "bad",
                        "parameters": [{"name": "q", "in": "query", "schema": {"type": "strin"}}],
                        "responses": {},
                    }
                },
            }
        )
    )
    assert [t.name for t in compiled.tools] == ["ok"]
    assert len(compiled.skipped) == 1
    assert compiled.skipped[0].startswith("GET /bad (#/paths/~1bad/get): the arguments' schema is not valid")
    assert "(at /properties/q/type)" in compiled.skipped[0]
    assert all(isinstance(t.input_schema, CheckedSchema) for t in compiled.tools)


def test_an_invalid_response_schema_is_left_out_with_a_note() -> None:
    response = {
        "content": {
            "application/json": {"schema": {"type": "object", "properties": {"n": {"type": "integr"}}}}
        }
    }
    compiled = compile_doc(doc({"/n": {"get": {"operationId": "n", "responses": {"200": response}}}}))
    assert [t.name for t in compiled.tools] == ["n"]
    assert compiled.tools[0].output_schema is None
    assert not compiled.operations["n"].wrap_result
    assert compiled.notes == [
        "GET /n: served without an outputSchema; its response schema is not valid JSON Schema: "
        "\"integr\" is not valid under any of the schemas listed in the 'anyOf' keyword "
        "(at /properties/n/type)"
    ]


def test_a_broken_compiled_schema_never_reaches_the_catalog_unchecked() -> None:
    with pytest.raises(ConfigError, match="the arguments' schema is not valid JSON Schema"):
        MetaSchema().checked({"type": "objekt"}, "the arguments' schema")
    checked = MetaSchema().checked({"type": "object"}, "the arguments' schema")
    assert isinstance(checked, CheckedSchema) and checked == {"type": "object"}
