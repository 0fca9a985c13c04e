from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import json_schema, load_document, load_file
from gateway.core.errors import ConfigError


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_document(text, "sw.yaml")
    return [str(i) for i in err.value.issues]


def test_unknown_field_names_file_line_and_field() -> None:
    found = issues(
        """gateways:
  - name: default
    targets:
      - name: a
        kind: function
        functions: ["m:f"]
        timeout: 3
"""
    )
    assert found == [
        "sw.yaml:7: gateways[0].targets[0].timeout: unknown field 'timeout': "
        "check its spelling (`switchboard schema` lists every field)"
    ]


def test_unknown_kind_points_at_the_kind_line() -> None:
    found = issues("gateways:\n  - name: g\n    targets:\n      - name: a\n        kind: ftp\n")
    assert found == [
        "sw.yaml:5: gateways[0].targets[0].kind: unknown target kind 'ftp': use one of function, "
        "lambda, http, openapi, mcp, plugin, connector, code_interpreter, a2a, runtime, memory"
    ]


def test_missing_field_and_bad_value() -> None:
    found = issues(
        "gateways:\n  - name: g\n    targets:\n      - {name: a, kind: http, url: ftp://x, tools: []}\n"
    )
    assert any("targets[0].url" in f and "should match pattern" in f for f in found)
    assert any("targets[0].tools" in f and "at least 1" in f for f in found)


def test_duplicate_target_names() -> None:
    found = issues(
        "gateways:\n  - name: g\n    targets:\n"
        "      - {name: a, kind: function, functions: ['m:f']}\n"
        "      - {name: a, kind: function, functions: ['m:g']}\n"
    )
    assert len(found) == 1 and "two targets are named 'a'" in found[0]


def test_yaml_syntax_error_has_a_line() -> None:
    found = issues("gateways:\n  - name: g\n   bad: [\n")
    assert found[0].startswith("sw.yaml:") and "not valid YAML" in found[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_file(tmp_path / "nope.yaml")


def test_schema_lists_target_kinds() -> None:
    schema = json_schema()
    kinds = {d["properties"]["kind"]["const"] for n, d in schema["$defs"].items() if n.endswith("Target")}
    assert kinds == {"function", "lambda", "http", "openapi", "mcp", "plugin", "connector"} | {
        "code_interpreter",
        "a2a",
        "runtime",
        "memory",
    }


@pytest.mark.parametrize("url", ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,x", "//evil"])
def test_authorization_urls_of_other_schemes_are_refused(url: str) -> None:
    doc = f"""
gateways:
  - name: g
    credential_providers:
      - name: p
        kind: oauth2_authorization_code
        authorize_url: "{url}"
        token_url: https://idp.example.com/token
        client_id: c
"""
    with pytest.raises(ConfigError) as caught:
        load_document(doc, "t.yaml")
    (issue,) = caught.value.issues
    assert issue.location == "gateways[0].credential_providers[0].authorize_url" and issue.line == 7
