"""Checking compiled schemas against the JSON Schema 2020-12 metaschema, fast.

jsonschema's ``Draft202012Validator.check_schema`` is exact but slow: GitHub's REST
document took 12 s of CPU to check, one tool at a time, at every start and reload.
jsonschema-rs validates against the same metaschema natively (about 30 ms for all
of GitHub's schemas). Formats are checked as ``check_schema`` checks them: patterns by
Python's ``re`` (the engine that will run them at call time, not Rust's), URIs not at
all (jsonschema checks them only when optional packages are installed).

Schemas that pass are handed to the catalog as `CheckedSchema`, which it does not check
again (ADR 0025).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator

from gateway.core.catalog import CheckedSchema
from gateway.core.errors import ConfigError


def _regex(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _anything(_: str) -> bool:
    return True


class MetaSchema:
    """A validator of schemas (build one per document: building it takes a few milliseconds)."""

    def __init__(self) -> None:
        self._validator = jsonschema_rs.validator_for(
            Draft202012Validator.META_SCHEMA,
            validate_formats=True,
            formats={"regex": _regex, "uri": _anything, "uri-reference": _anything},
        )

    def problem(self, schema: Mapping[str, Any]) -> str | None:
        """What makes ``schema`` invalid JSON Schema 2020-12 (the first error, located), or None."""
        error = next(iter(self._validator.iter_errors(schema)), None)
        if error is None:
            return None
        pointer = "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in error.instance_path)
        return f"{error.message} (at {pointer or 'the root'})"

    def checked(self, schema: Mapping[str, Any], what: str) -> CheckedSchema:
        """``schema``, marked as checked.

        Raises:
            ConfigError: it is not valid JSON Schema 2020-12 (names ``what`` and where).
        """
        problem = self.problem(schema)
        if problem is not None:
            raise ConfigError(f"{what} is not valid JSON Schema: {problem}")
        return CheckedSchema(schema)
