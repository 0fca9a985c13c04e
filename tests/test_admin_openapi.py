"""The admin API's OpenAPI document is made from the models that validate its requests."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from gateway.admin import api
from gateway.admin._bodies import NewKey
from gateway.config import validate
from gateway.core.errors import ConfigError


def test_the_document_is_valid_openapi_3_1() -> None:
    validate_openapi(api.openapi_document())


def _bodies_read_by(handler: object) -> set[str]:
    """The types a handler passes to ``body_as(request, TYPE)``, or ``validate(TYPE, ...)``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(handler)))  # type: ignore[arg-type]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            arg = {"body_as": 1, "validate": 0}.get(node.func.id)
            if arg is not None and len(node.args) > arg:
                found.add(ast.unparse(node.args[arg]))
    return found


def test_every_body_a_handler_validates_is_the_one_its_operation_declares() -> None:
    names = {"_TARGET": "Target", "connectors.EnableRequest": "EnableRequest"}
    for op in api.OPERATIONS:
        read = {names.get(n, n) for n in _bodies_read_by(op.handler)}
        if op.handler in (api.create_target, api.put_target):
            read |= {names[n] for n in _bodies_read_by(api._write_target)}
        declared = set() if op.body is None else {"Target" if op.body is api.Target else op.body.__name__}
        assert read == declared, f"{op.method} {op.path}: validates {read}, the document says {declared}"


@pytest.mark.parametrize(
    "body",
    [
        {"subject": "ci"},
        {"subject": "ci", "scopes": ["deploy"]},
        {},
        {"subject": ""},
        {"scopes": "x"},
        {"subject": "a", "x": 1},
    ],
)
def test_the_documented_schema_and_the_validation_agree(body: dict[str, object]) -> None:
    doc = api.openapi_document()
    schema = {**doc["components"]["schemas"]["NewKey"], "$defs": doc["components"]["schemas"]}
    documented = Draft202012Validator(schema).is_valid(body)
    try:
        validate(NewKey, body, source="request body")
        accepted = True
    except ConfigError:
        accepted = False
    assert documented == accepted
