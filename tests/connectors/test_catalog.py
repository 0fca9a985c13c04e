"""The connector catalog: every connector of ours matches its API document, users' own
connectors replace ours by name, bad files are refused with file, line and field, and
enabling wires a target to its credential provider."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from gateway.config import ApiKeyCredential, AuthorizationCode, ConnectorTarget, GatewaySpec, SecretRef
from gateway.connectors import (
    BUILTIN,
    EnableRequest,
    catalog,
    check,
    connector_json_schema,
    enable,
    expand,
    find,
)
from gateway.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BUILT_IN = sorted(p.stem for p in BUILTIN.glob("*.yaml"))


def test_the_catalog_has_the_platforms_agents_need() -> None:
    assert {"github", "slack", "salesforce", "jira", "confluence", "google", "microsoft365"} <= set(BUILT_IN)
    assert catalog().problems == []


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_connector_matches_its_document_and_the_schema(name: str) -> None:
    entry = find(name)
    assert entry.origin == "built-in" and entry.connector.name == name
    assert check(entry) == []
    assert entry.spec_path.is_relative_to(ROOT / "specs")
    data = yaml.safe_load(entry.path.read_text())
    jsonschema.validate(data, connector_json_schema())
    for op in entry.connector.operations:
        assert op.description, f"{name}.{op.name} needs a description agents can act on"


def test_a_users_connector_replaces_ours_by_name(tmp_path: Path) -> None:
    ours = yaml.safe_load((BUILTIN / "slack.yaml").read_text())
    ours["title"] = "Slack (our fork)"
    ours["spec"] = str(BUILTIN.parent / "specs" / "slack.yaml")
    (tmp_path / "slack.yaml").write_text(yaml.safe_dump(ours))
    found = catalog(tmp_path)
    assert found.entries["slack"].origin == "user"
    assert found.entries["slack"].connector.title == "Slack (our fork)"
    assert found.entries["github"].origin == "built-in"
    assert check(found.entries["slack"]) == []


def test_a_bad_connector_file_is_refused_with_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(
        "name: acme\ntitle: Acme\ndescription: d\nspec: x.yaml\ncredentials:\n"
        "  scheme: oauth2\n  oauth: {preset: github}\noperations:\n"
        "  - operation: listThings\n    name: list things\n"
        "  - operation: getThing\n    name: get_thing\n    pagin: {}\n"
    )
    found = catalog(tmp_path)
    assert "acme" not in found.entries and "github" in found.entries  # the others still load
    messages = [str(i) for i in found.problems]
    assert any(f"{tmp_path / 'acme.yaml'}:10: operations[0].name" in m and "pattern" in m for m in messages)
    assert any(":13: operations[1].pagin" in m and "unknown field 'pagin'" in m for m in messages)
    assert any("switchboard schema --connector" in m for m in messages)
    with pytest.raises(ConfigError, match=r"acme\.yaml"):
        find("acme", tmp_path)


def test_an_operation_the_document_lacks_is_a_problem(tmp_path: Path) -> None:
    data = yaml.safe_load((BUILTIN / "slack.yaml").read_text())
    data["spec"] = str(BUILTIN.parent / "specs" / "slack.yaml")
    data["operations"][0]["operation"] = "conversations.lits"
    data["operations"][1]["arguments"] = {"chanel": "C1"}
    (tmp_path / "slack.yaml").write_text(yaml.safe_dump(data))
    problems = [str(i) for i in check(catalog(tmp_path).entries["slack"])]
    assert any("operations[0].operation" in p and "conversations.lits" in p for p in problems)
    assert any("operations[1].arguments.chanel" in p for p in problems)


def test_enabling_makes_a_target_and_its_credential_provider() -> None:
    gateway = GatewaySpec(name="default")
    entry = find("slack")
    on = enable(gateway, entry, EnableRequest(client_id="app", client_secret=SecretRef(env="SLACK_SECRET")))
    (provider,) = on.credential_providers
    assert isinstance(provider, AuthorizationCode) and provider.preset == "slack"
    assert set(provider.scopes) == set(entry.connector.scopes())
    (target,) = on.targets
    assert isinstance(target, ConnectorTarget) and target.credential == "slack" == provider.name
    assert [r.tools for r in on.rate_limits] == [["slack___*"]]
    # Some tools only: consent asks for their scopes only. Enabling again replaces, never adds.
    again = enable(on, entry, EnableRequest(client_id="app", tools=["post_message"]))
    assert len(again.targets) == 1 and len(again.credential_providers) == 1 and len(again.rate_limits) == 1
    assert again.credential_providers[0].scopes == ["chat:write"]  # type: ignore[union-attr]
    keyed = enable(gateway, entry, EnableRequest(api_key=SecretRef(env="SLACK_BOT_TOKEN")))
    assert isinstance(keyed.credential_providers[0], ApiKeyCredential)
    assert keyed.targets[0].credential_scheme == "bot_token"  # type: ignore[union-attr]


def test_enabling_without_what_it_needs_says_what_to_give() -> None:
    gateway = GatewaySpec(name="default")
    with pytest.raises(ConfigError, match="client id"):
        enable(gateway, find("slack"), EnableRequest())
    with pytest.raises(ConfigError, match="has no tools nope"):
        enable(gateway, find("slack"), EnableRequest(client_id="a", tools=["nope"]))
    with pytest.raises(ConfigError, match="needs values for instance"):
        enable(gateway, find("salesforce"), EnableRequest(client_id="a"))


def cli(*argv: str, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--data-dir", str(data)] if data else []
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *argv, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_lists_shows_and_refuses_clearly(tmp_path: Path) -> None:
    listed = cli("connectors", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {c["name"] for c in json.loads(listed.stdout)} >= {"github", "slack"}
    shown = cli("connectors", "show", "github")
    assert shown.returncode == 0 and "search_code" in shown.stdout, shown.stderr
    unknown = cli("connectors", "show", "gitlub")
    assert unknown.returncode == 1 and "no connector named 'gitlub'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    no_gateway = cli("connectors", "enable", "slack", "--client-id", "a", data=tmp_path / "data")
    assert no_gateway.returncode == 1 and "no gateway named 'default'" in no_gateway.stderr
    schema = cli("schema", "--connector")
    assert json.loads(schema.stdout)["title"] == "Switchboard connector"


def test_a_target_keeps_other_fields_than_the_connector() -> None:
    entry = find("github")
    target = ConnectorTarget(
        name="gh", kind="connector", connector="github", fields={"list_issues": ["number", "title", "body"]}
    )
    shape = expand(target, entry).shape
    assert shape["issues_list-for-repo"].fields == ["number", "title", "body"]
    assert shape["pulls_list"].fields == next(
        o.fields for o in entry.connector.operations if o.name == "list_pull_requests"
    )
    with pytest.raises(ConfigError, match="does not have: list_isues"):
        expand(
            ConnectorTarget(name="gh", kind="connector", connector="github", fields={"list_isues": ["x"]}),
            entry,
        )


def test_enabling_never_replaces_what_it_did_not_make() -> None:
    gateway = GatewaySpec.model_validate(
        {
            "name": "default",
            "credential_providers": [{"name": "github", "kind": "api_key"}],
            "targets": [
                {"name": "slack", "kind": "function", "functions": ["tests.fixtures.functions:add"]},
                {
                    "name": "api",
                    "kind": "openapi",
                    "spec": "specs/items.yaml",
                    "credentials": {"bearer": {"provider": "github"}},
                },
            ],
        }
    )
    with pytest.raises(ConfigError, match="has a target 'slack' already"):
        enable(gateway, find("slack"), EnableRequest(client_id="a"))
    with pytest.raises(ConfigError, match="that targets api use"):
        enable(gateway, find("github"), EnableRequest(client_id="a"))
    assert (
        enable(gateway, find("slack"), EnableRequest(client_id="a", target="chat")).targets[-1].name == "chat"
    )


def test_a_connector_with_a_limit_the_gateway_cannot_count_is_refused_at_load(tmp_path: Path) -> None:
    data = yaml.safe_load((BUILTIN / "slack.yaml").read_text())
    data["rate_limit"] = {"limit": "lots"}
    (tmp_path / "slack.yaml").write_text(yaml.safe_dump(data))
    messages = [str(i) for i in catalog(tmp_path).problems]
    assert any("rate_limit.limit" in m for m in messages), messages


def test_the_cli_refuses_bad_enable_flags_in_one_line(tmp_path: Path) -> None:
    for argv, says in (
        (["--target", "a b"], "target"),
        (["--base-url", "ftp://x"], "base_url"),
        (["--var", "=x"], "NAME=VALUE"),
    ):
        done = cli("connectors", "enable", "slack", "--client-id", "a", *argv, data=tmp_path / "data")
        assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_an_unused_provider_of_the_same_name_is_not_replaced() -> None:
    gateway = GatewaySpec.model_validate(
        {"name": "default", "credential_providers": [{"name": "github", "kind": "api_key"}]}
    )
    with pytest.raises(ConfigError, match="not one an earlier enable made"):
        enable(gateway, find("github"), EnableRequest(client_id="a"))
