"""Runtime endpoints and version settings (ADR 0041): DEFAULT follows the latest version, named
endpoints point at one, a canary takes its weight's share of new sessions (the same session id
always the same version), and what is wrong is said."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import DEFAULT, DeployError, Deployments, EndpointError, Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def deployments(tmp_path: Path) -> Deployments:
    folder = tmp_path / "agent"
    folder.mkdir()
    (folder / "main.py").write_text("print('hello')\n")  # (no requirements: a bare environment)
    found = Deployments(tmp_path / "runtimes")
    for _ in range(3):
        await found.deploy("bot", folder)
    return found


async def test_default_follows_the_latest_and_named_endpoints_hold_their_version(
    deployments: Deployments, tmp_path: Path
) -> None:
    endpoints = deployments.endpoints
    assert [e.name for e in endpoints.all("bot")] == [DEFAULT]
    assert deployments.resolve("bot", None, "s" * 40).number == 3
    endpoints.put("bot", "prod", [1, 2, 3], version=1, description="what users get", create=True)
    assert deployments.resolve("bot", "prod", "s" * 40).number == 1
    assert deployments.resolve("bot", "2", "s" * 40).number == 2  # (a number: that version)
    await deployments.deploy("bot", tmp_path / "agent")
    assert deployments.resolve("bot", DEFAULT, "s" * 40).number == 4
    assert deployments.resolve("bot", "prod", "s" * 40).number == 1
    changed = endpoints.put("bot", "prod", [1, 2, 3, 4], version=2, create=False)
    assert (changed.version, changed.description) == (2, "what users get")  # (kept when not given)
    assert endpoints.delete("bot", "prod") and not endpoints.delete("bot", "prod")
    assert [e.name for e in endpoints.all("bot")] == [DEFAULT]


async def test_a_canary_takes_its_share_of_new_sessions(deployments: Deployments) -> None:
    deployments.endpoints.put("bot", "live", [1, 2, 3], version=2, canary=3, weight=20)
    ids = [f"session-{i:04d}-{'x' * 30}" for i in range(2000)]
    picked = [deployments.resolve("bot", "live", i).number for i in ids]
    assert set(picked) == {2, 3}
    assert 0.17 < picked.count(3) / len(ids) < 0.23  # (a hash of the id: about the weight)
    assert picked == [deployments.resolve("bot", "live", i).number for i in ids]  # (the same each time)
    deployments.endpoints.put("bot", "live", [1, 2, 3], version=2, canary=3, weight=0)
    assert {deployments.resolve("bot", "live", i).number for i in ids[:200]} == {2}
    deployments.endpoints.put("bot", "live", [1, 2, 3], version=2, canary=3, weight=100)
    assert {deployments.resolve("bot", "live", i).number for i in ids[:200]} == {3}


async def test_bad_endpoints_and_settings_are_refused_saying_why(
    deployments: Deployments, tmp_path: Path
) -> None:
    endpoints = deployments.endpoints
    cases = [
        (lambda: endpoints.put("bot", DEFAULT, [1], version=1), "always follows the latest"),
        (lambda: endpoints.put("bot", "a-b", [1], version=1), "use a letter"),
        (lambda: endpoints.put("bot", "x", [1, 2, 3], version=9), "has no version 9"),
        (lambda: endpoints.put("bot", "x", [1, 2, 3], version=1, canary=2, weight=101), "0 to 100"),
        (lambda: endpoints.put("bot", "x", [1, 2, 3], version=1, weight=5), "needs a canary"),
        (lambda: endpoints.put("bot", "x", [1, 2, 3], version=1, create=False), "create it first"),
        (lambda: endpoints.delete("bot", DEFAULT), "goes only with the runtime"),
        (lambda: deployments.resolve("bot", "nope", "s" * 40), "has no endpoint 'nope'"),
    ]
    for call, said in cases:
        with pytest.raises(EndpointError, match=said):
            call()
    endpoints.put("bot", "x", [1, 2, 3], version=1)
    with pytest.raises(EndpointError, match="already has an endpoint 'x'"):
        endpoints.put("bot", "x", [1, 2, 3], version=1, create=True)
    with pytest.raises(DeployError, match="no runtime 'ghost'"):
        deployments.resolve("ghost", None, "s" * 40)
    with pytest.raises(DeployError, match="has no version 7"):
        deployments.resolve("bot", "7", "s" * 40)
    bad = [
        (Settings(protocol="SMTP"), "HTTP, MCP or A2A"),
        (Settings(environment={"PATH": "/evil"}), "one of the runtime's own"),
        (Settings(environment={"SWITCHBOARD_GATEWAY_URL": "x"}), "one of the runtime's own"),
        (Settings(environment={"1X": "x"}), "not starting with a digit"),
        (Settings(environment={"A": "x"}, secrets={"A": "key"}), "both a value and a secret"),
        (Settings(secrets={"KEY": "no/slash"}), "not the name of an API key credential provider"),
    ]
    for settings, said in bad:
        with pytest.raises(DeployError, match=said):
            await deployments.deploy("bot", tmp_path / "agent", settings=settings)
    assert [v.number for v in deployments.versions("bot")] == [1, 2, 3]  # (nothing made)
