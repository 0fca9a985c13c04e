"""The runtime target's provider without sandboxes: its configuration, whose runtimes a gateway
reaches (its own tenant's only), what it serves of each protocol, the session ids it gives callers,
and how a streamed answer becomes a result."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import runtime
from gateway.config import RuntimeTarget, load_document
from gateway.core.errors import ConfigError, ToolExecutionError, UpstreamError, UpstreamUnavailable
from gateway.core.types import CallContext, Principal, ToolCall
from gateway.providers.runtime import RuntimeProvider, _events
from gateway.runtimes import Runtimes
from gateway.settings import Settings

pytestmark = pytest.mark.anyio

SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{32,255}")  # (AgentCore's runtimeSessionId)


def _target(**fields: object) -> RuntimeTarget:
    return RuntimeTarget.model_validate({"name": "helper", "kind": "runtime", "runtime": "helper", **fields})


def _ctx(tenant: str = "acme", subject: str = "ada", session: str | None = None) -> CallContext:
    return CallContext(principal=Principal(tenant=tenant, subject=subject), session_id=session)


async def _hosting(tmp_path: Path, tenant: str, protocol: str = "HTTP") -> Runtimes:
    """The process's runtimes (no sessions: none is started here), ``helper`` deployed for ``tenant``."""
    agent = tmp_path / "agent"
    agent.mkdir(exist_ok=True)
    (agent / "main.py").write_text("print('an app')\n")
    hosted = Runtimes(Settings(data_dir=tmp_path / "data"))
    settings = runtime.Settings(protocol=protocol, description="Helps.")
    await hosted.deployments(tenant).deploy("helper", agent, settings=settings)
    return hosted


def test_the_configuration_names_a_runtime_and_an_endpoint_or_a_version() -> None:
    doc = load_document(
        "gateways:\n  - name: g\n    targets:\n"
        "      - {name: h, kind: runtime, runtime: helper, version: 2}\n",
        "sw.yaml",
    )
    target = doc.gateways[0].targets[0]
    assert isinstance(target, RuntimeTarget) and target.version == 2 and target.endpoint == "DEFAULT"
    with pytest.raises(ConfigError) as both:
        load_document(
            "gateways:\n  - name: g\n    targets:\n"
            "      - {name: h, kind: runtime, runtime: helper, endpoint: prod, version: 2}\n",
            "sw.yaml",
        )
    assert "give an `endpoint` or a `version`, not both" in str(both.value)
    with pytest.raises(ConfigError) as path:
        load_document(
            "gateways:\n  - name: g\n    targets:\n      - {name: h, kind: runtime, runtime: ../b/x}\n",
            "sw.yaml",
        )
    assert path.value.issues[0].location == "gateways[0].targets[0].runtime"


def test_each_caller_and_mcp_session_gets_a_session_of_its_own() -> None:
    provider = RuntimeProvider(_target())
    ada = provider._caller_id(_ctx())
    assert SESSION_ID.fullmatch(ada)
    assert provider._caller_id(_ctx()) == ada  # the same caller: the same sandbox
    others = {
        provider._caller_id(_ctx(subject="bob")),
        provider._caller_id(_ctx(tenant="other")),
        provider._caller_id(_ctx(session="mcp-session-1")),
        provider._caller_id(_ctx(session="mcp-session-2")),
        provider._listing_id("acme"),
        RuntimeProvider(_target(name="elsewhere"))._caller_id(_ctx()),
        RuntimeProvider(_target(version=1))._caller_id(_ctx()),
    }
    assert len(others) == 7 and ada not in others


async def test_a_gateway_reaches_its_own_tenants_runtimes_only(tmp_path: Path) -> None:
    provider = RuntimeProvider(_target())
    provider.runtimes = await _hosting(tmp_path, "acme")
    (tool,) = await provider.list_tools(_ctx())
    assert tool.name == "invoke_helper" and tool.description == "Helps."
    for tenant in ("other", "default"):
        with pytest.raises(UpstreamUnavailable) as missing:
            await provider.list_tools(_ctx(tenant=tenant))
        assert "no runtime 'helper': deploy it first" in missing.value.message
        with pytest.raises(UpstreamUnavailable):
            await provider.call_tool(ToolCall("invoke_helper", {"prompt": "hi"}), _ctx(tenant=tenant))
    assert provider.problems() and "no runtime 'helper'" in provider.problems()[0]


async def test_an_a2a_agent_is_not_served_and_an_unknown_endpoint_is_named(tmp_path: Path) -> None:
    provider = RuntimeProvider(_target())
    provider.runtimes = await _hosting(tmp_path, "acme", protocol="A2A")
    with pytest.raises(UpstreamError) as a2a:
        await provider.list_tools(_ctx())
    assert "helper:1 is an A2A agent, which a runtime target does not serve" in a2a.value.message
    endpoint = RuntimeProvider(_target(endpoint="prod"))
    endpoint.runtimes = provider.runtimes
    with pytest.raises(UpstreamUnavailable) as unknown:
        await endpoint.list_tools(_ctx())
    assert "has no endpoint 'prod'" in unknown.value.message


async def test_the_invoke_tool_wants_a_prompt_or_a_payload(tmp_path: Path) -> None:
    provider = RuntimeProvider(_target(description="Mine."))
    provider.runtimes = await _hosting(tmp_path, "acme")
    assert (await provider.list_tools(_ctx()))[0].description == "Mine."  # the target's, first
    for arguments in ({}, {"prompt": "hi", "payload": {}}):
        with pytest.raises(ToolExecutionError) as refused:
            await provider.call_tool(ToolCall("invoke_helper", arguments), _ctx())
        assert "give a `prompt`, or the `payload`" in refused.value.message


async def test_a_hub_that_only_checks_lists_nothing_and_starts_nothing() -> None:
    provider = RuntimeProvider(_target())
    assert await provider.list_tools(_ctx()) == ()
    with pytest.raises(UpstreamUnavailable) as refused:
        await provider.call_tool(ToolCall("invoke_helper", {"prompt": "hi"}), _ctx())
    assert "hosts no agents" in refused.value.message


def test_streamed_strings_are_one_text_and_other_events_a_list() -> None:
    tokens = _events(b'data: "Hel"\n\ndata: "lo"\r\n\r\ndata: "!"\n\n', is_error=False)
    assert tokens.content == ({"type": "text", "text": "Hello!"},) and tokens.structured is None
    objects = _events(b'data: {"chunk": 0}\n\nevent: x\ndata: plain\n\n: comment\n\n', is_error=True)
    assert objects.structured == {"events": [{"chunk": 0}, "plain"]} and objects.is_error
