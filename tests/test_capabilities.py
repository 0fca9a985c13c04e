"""What only the operator may configure (gateway/capabilities.py)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.capabilities import check_tenant_change, is_operator
from gateway.config import GatewaySpec, validate
from gateway.core.errors import ConfigError

pytestmark = pytest.mark.anyio

FUNCTION = {"name": "fx", "kind": "function", "functions": ["tests.fixtures.functions:add"]}
REMOTE = {"name": "remote", "kind": "mcp", "url": "https://mcp.example.com/mcp"}


def gateway(**fields: Any) -> GatewaySpec:
    return validate(GatewaySpec, {"name": "g", **fields}, source="test")


async def refusals(
    spec: GatewaySpec, kept: GatewaySpec | None = None, allow: list[str] | None = None
) -> dict[str, str]:
    try:
        await check_tenant_change(spec, kept, allow=allow or [])
    except ConfigError as exc:
        return {i.location: i.message for i in exc.issues}
    return {}


def test_only_the_default_tenant_is_the_operator() -> None:
    assert is_operator("default") and not is_operator("acme")


async def test_what_a_tenant_may_use_passes() -> None:
    spec = gateway(
        targets=[
            REMOTE,
            {
                "name": "api",
                "kind": "openapi",
                "spec": {"openapi": "3.0.3"},
                "credentials": {"k": {"provider": "p"}},
            },
        ],
        credential_providers=[{"name": "p", "kind": "api_key"}],
        interceptors=[{"kind": "redact"}],
    )
    assert await refusals(spec) == {}


async def test_every_host_capability_is_named() -> None:
    spec = gateway(
        targets=[
            FUNCTION,
            {"name": "local", "kind": "mcp", "command": ["sh"], "cwd": "/", "env": {"A": "1"}},
            {"name": "pl", "kind": "plugin", "provider": "a.b:C"},
            {"name": "fn", "kind": "lambda", "function_name": "f", "tools": [{"name": "t"}]},
            {"name": "doc", "kind": "openapi", "spec": "/etc/passwd"},
            {
                "name": "mtls",
                "kind": "http",
                "url": "https://api.example.com/",
                "tools": [{"name": "t"}],
                "tls": {"ca_bundle": "/etc/ssl/private/ca.pem", "client_cert": "/c", "client_key": "/k"},
            },
        ],
        credential_providers=[{"name": "p", "kind": "api_key", "secret": {"file": "/etc/shadow"}}],
        interceptors=[
            {"kind": "python", "phase": "request", "function": "os:system"},
            {"kind": "lambda", "phase": "response", "function_name": "f"},
            {
                "kind": "http",
                "phase": "request",
                "url": "https://hooks.example.com/",
                "tls": {"ca_bundle": "/ca"},
            },
        ],
    )
    found = await refusals(spec)
    assert set(found) == {
        "targets[0].functions",
        "targets[1].command",
        "targets[1].cwd",
        "targets[1].env",
        "targets[2].provider",
        "targets[3].function_name",
        "targets[4].spec",
        "targets[5].tls.ca_bundle",
        "targets[5].tls.client_cert",
        "targets[5].tls.client_key",
        "interceptors[2].tls.ca_bundle",
        "credential_providers[0].secret.file",
        "interceptors[0].function",
        "interceptors[1].function_name",
    }
    assert all("operator" in message for message in found.values())


async def test_what_the_operator_set_is_kept_unchanged_but_not_changed() -> None:
    kept = gateway(targets=[FUNCTION, REMOTE])
    assert await refusals(gateway(targets=[FUNCTION, REMOTE]), kept) == {}
    changed = {**FUNCTION, "functions": ["os:getcwd"]}
    assert set(await refusals(gateway(targets=[changed, REMOTE]), kept)) == {"targets[0].functions"}
    renamed = {**FUNCTION, "name": "fx2"}
    assert set(await refusals(gateway(targets=[renamed]), kept)) == {"targets[0].functions"}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/mcp",
        "http://localhost/mcp",
        "http://[::1]/mcp",
        "http://10.0.0.1/mcp",
        "http://169.254.169.254/latest",
        "http://[::ffff:127.0.0.1]/mcp",
        "http://2130706433/mcp",
    ],
)
async def test_a_tenants_upstream_never_resolves_to_the_host(url: str) -> None:
    found = await refusals(gateway(targets=[{"name": "r", "kind": "mcp", "url": url}]))
    assert "targets[0].url" in found, found
    # The operator can widen the rule for its own networks.
    assert (
        await refusals(
            gateway(targets=[{"name": "r", "kind": "mcp", "url": url}]),
            allow=["0.0.0.0/0", "::/0", "localhost"],
        )
        == {}
    )


async def test_a_kept_address_is_checked_again_when_its_target_changes() -> None:
    """An operator's target a tenant edits is new in every part: its private address is refused."""
    operator = {"name": "internal", "kind": "mcp", "url": "http://127.0.0.1:9000/mcp"}
    kept = gateway(targets=[operator])
    assert await refusals(gateway(targets=[operator]), kept) == {}
    as_http = {
        "name": "internal",
        "kind": "http",
        "url": "http://127.0.0.1:9000/mcp",
        "tools": [{"name": "t"}],
    }
    assert "targets[0].url" in await refusals(gateway(targets=[as_http]), kept)
    described = {**operator, "description": "mine now"}
    assert "targets[0].url" in await refusals(gateway(targets=[described]), kept)


async def test_a_tenants_new_target_cannot_sign_with_the_operators_host_secret() -> None:
    providers = [
        {"name": "ops", "kind": "api_key", "secret": {"env": "OPERATOR_TOKEN"}},
        {"name": "mine", "kind": "api_key"},
    ]
    operator_target = {
        "name": "internal",
        "kind": "openapi",
        "spec": "https://internal.example.com/openapi.json",
        "credentials": {"token": {"provider": "ops"}},
    }
    kept = gateway(credential_providers=providers, targets=[operator_target])
    assert await refusals(gateway(credential_providers=providers, targets=[operator_target]), kept) == {}
    theirs = {**operator_target, "name": "exfil", "spec": "https://attacker.example.com/openapi.json"}
    found = await refusals(gateway(credential_providers=providers, targets=[operator_target, theirs]), kept)
    assert set(found) == {"targets[1].credentials.token.provider"}
    assert "reads its secret from the gateway's host" in found["targets[1].credentials.token.provider"]
    vaulted = {**theirs, "credentials": {"token": {"provider": "mine"}}}
    assert (
        await refusals(gateway(credential_providers=providers, targets=[operator_target, vaulted]), kept)
        == {}
    )
