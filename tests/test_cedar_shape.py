"""Cedar source is measured before the Cedar library parses it: deep nesting would overflow the
native parser's stack and end the whole process (SIGSEGV)."""

from __future__ import annotations

import contextlib

import pytest

from gateway.config import GatewaySpec, PolicySpec, cedar_shape, validate
from gateway.config._policy import MAX_CHAIN, MAX_IFS, MAX_NESTING, MAX_UNARY
from gateway.core.errors import ConfigError

STATEMENT = "permit(principal, action, resource) when {{ {} }};"


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ("(" * 800 + "true" + ")" * 800, "nests brackets"),
        (" || ".join(["true"] * 100), "chains more than"),
        (" ".join(["if true then"] * 40) + " true" + " else false" * 40, "if-then-else"),
        ("!" * 100 + "true", "in a row"),
        ("[" * 100 + "]" * 100 + " == []", "nests brackets"),
    ],
)
def test_too_deep_is_refused_before_cedar_sees_it(condition: str, says: str) -> None:
    problem = cedar_shape(STATEMENT.format(condition))
    assert problem is not None and says in problem
    with pytest.raises(ConfigError):
        validate(GatewaySpec, {"name": "g", "policies": [STATEMENT.format(condition)]}, source="test")
    with pytest.raises(ValueError):
        PolicySpec(cedar=STATEMENT.format(condition))


def test_what_real_policies_look_like_passes_and_the_limits_are_safe_for_cedar() -> None:
    import cedarpy

    ordinary = (
        'forbid(principal, action == Switchboard::Action::"t___refund", resource) '
        'when { context.amount > 500 && !(principal.scopes.contains("admin")) }; // "((((" in a comment'
    )
    assert cedar_shape(ordinary) is None
    at_the_limits = [
        "(" * (MAX_NESTING - 1) + "true" + ")" * (MAX_NESTING - 1),  # (the `when {` is one more)
        " || ".join(["true"] * (MAX_CHAIN + 1)),
        " ".join(["if true then"] * MAX_IFS) + " true" + " else false" * MAX_IFS,
        "!" * MAX_UNARY + "true",
    ]
    for condition in at_the_limits:
        text = STATEMENT.format(condition)
        assert cedar_shape(text) is None, condition[:40]
        # Parsed in this process: it would end it, were the limits unsafe. Cedar's own refusal (it has
        # a limit of its own on `!`) is a refusal, not a crash.
        with contextlib.suppress(ValueError):
            cedarpy.policies_to_json_str(text)
    assert (
        cedar_shape(
            'permit(principal, action, resource) when { "((((((((((((((((((((((((((((((((((" == "" };'
        )
        is None
    )
