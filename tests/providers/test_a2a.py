"""The ``a2a`` target's provider on its own: a tenant's agent is reached only at public
addresses (its card included), a binding the agent does not offer is named, and the
configuration says what is wrong with a bad target."""

from __future__ import annotations

import pytest

from gateway.config import A2aTarget, GatewaySpec
from gateway.core.errors import UpstreamUnavailable
from gateway.core.types import CallContext
from gateway.providers.a2a import A2aProvider
from tests.fixtures.a2a_agent import Seen, app
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio


async def test_a_tenants_agent_on_a_private_address_is_refused_before_any_request() -> None:
    seen = Seen()
    with serve_app(app(seen)) as base:
        provider = A2aProvider(A2aTarget(name="t", kind="a2a", url=f"{base}/agent"))
        provider.egress_allow = ()  # a tenant's target
        async with provider:
            with pytest.raises(UpstreamUnavailable, match="private or reserved address"):
                await provider.list_tools(CallContext())
        assert seen.requests == []
        operator = A2aProvider(A2aTarget(name="t", kind="a2a", url=f"{base}/agent"))
        async with operator:
            assert [t.name for t in await operator.list_tools(CallContext())] == ["echo", "greet"]


async def test_a_binding_the_agent_does_not_offer_is_named() -> None:
    with serve_app(app(Seen())) as base:
        target = A2aTarget(name="t", kind="a2a", url=f"{base}/agent", binding="jsonrpc")
        async with A2aProvider(target) as provider:
            assert len(await provider.list_tools(CallContext())) == 2
    with serve_app(app(Seen(), bindings=("HTTP+JSON",))) as base:
        target = A2aTarget(name="t", kind="a2a", url=f"{base}/agent", binding="jsonrpc")
        async with A2aProvider(target) as provider:
            with pytest.raises(UpstreamUnavailable, match="offers HTTP\\+JSON, not jsonrpc"):
                await provider.list_tools(CallContext())


def test_bad_targets_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="url"):
        GatewaySpec.model_validate({"name": "g", "targets": [{"name": "a", "kind": "a2a", "url": "ftp://x"}]})
    with pytest.raises(ValueError, match="credential provider 'nope'"):
        GatewaySpec.model_validate(
            {
                "name": "g",
                "targets": [
                    {"name": "a", "kind": "a2a", "url": "https://x", "credential": {"provider": "nope"}}
                ],
            }
        )
