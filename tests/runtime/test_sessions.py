"""Runtime deploys and sessions (ADR 0039), for real: an agent written with the bedrock-agentcore
SDK's BedrockAgentCoreApp is deployed from its folder (its requirements installed from the
package index once, into an immutable version) and run unchanged in bubblewrap sandboxes, each
session its own: JSON and streamed answers, state kept by session id, sessions apart, a crash
answered clearly and the session started afresh, failed deploys leaving what was there."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from runtime import (
    AtCapacity,
    Backend,
    DeployError,
    Deployments,
    Lifecycle,
    Links,
    SessionError,
    Sessions,
    Settings,
    Version,
    parse_services,
)
from sandbox import BwrapBackend, available
from tests.support.tools import need

pytestmark = pytest.mark.anyio

AGENT = Path(__file__).resolve().parents[1] / "fixtures" / "runtime_agent"


@pytest.fixture
def deployed(echo_deployed: tuple[Deployments, Version]) -> tuple[Deployments, Version]:
    need(available() is None, f"bubblewrap sandboxes: {available()}")
    return echo_deployed


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    live = Sessions(BwrapBackend(tmp_path / "sandboxes"))
    try:
        yield live
    finally:
        await live.aclose()


async def _call(
    sessions: Sessions, version: Version, session_id: str, payload: dict[str, object]
) -> dict[str, object]:
    session = await sessions.session(version, session_id)
    async with session.invoke(json.dumps(payload).encode()) as answer:
        assert answer.status_code == 200, await answer.aread()
        found: dict[str, object] = json.loads(await answer.aread())
        return found


async def test_a_session_answers_and_keeps_its_state(
    deployed: tuple[Deployments, Version], sessions: Sessions
) -> None:
    _, version = deployed
    one, two = "a" * 40, "b" * 40
    first = await _call(sessions, version, one, {"write": "mine"})
    assert first["session"] == one and first["calls"] == 1 and "note.txt" in first["files"]  # type: ignore[operator]
    again = await _call(sessions, version, one, {"hello": 1})
    assert again["calls"] == 2 and again["echo"] == {"hello": 1}  # the same app, its memory kept
    other = await _call(sessions, version, two, {})
    assert other["calls"] == 1 and "note.txt" not in other["files"]  # type: ignore[operator]
    assert (await sessions.session(version, one)).box.home != (await sessions.session(version, two)).box.home


async def test_a_generator_streams_as_server_sent_events(
    deployed: tuple[Deployments, Version], sessions: Sessions
) -> None:
    await streams_as_events(sessions, deployed[1])


async def streams_as_events(sessions: Sessions, version: Version) -> None:
    """A generator entrypoint's answer comes as server-sent events (on every backend)."""
    session = await sessions.session(version, "s" * 40)
    async with session.invoke(json.dumps({"stream": True}).encode()) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[5:]) async for line in answer.aiter_lines() if line.startswith("data:")]
    assert events == [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]


async def test_a_crash_is_said_and_the_session_starts_afresh(
    deployed: tuple[Deployments, Version], sessions: Sessions
) -> None:
    _, version = deployed
    session_id = "c" * 40
    assert (await _call(sessions, version, session_id, {}))["calls"] == 1
    session = await sessions.session(version, session_id)
    with pytest.raises(SessionError, match="did not answer"):
        async with session.invoke(json.dumps({"crash": True}).encode()) as answer:
            await answer.aread()
    await session.app.wait()
    assert (await _call(sessions, version, session_id, {}))["calls"] == 1  # a new app, cleanly
    assert await sessions.stop(session_id) and not await sessions.stop(session_id)


async def test_bad_session_ids_and_deploys_are_refused_and_leave_what_was_there(
    deployed: tuple[Deployments, Version], sessions: Sessions, tmp_path: Path
) -> None:
    deployments, version = deployed
    with pytest.raises(SessionError, match="33 to 256 characters"):
        await sessions.session(version, "short")
    broken = tmp_path / "broken"
    shutil.copytree(AGENT, broken)
    (broken / "requirements.txt").write_text("switchboard-no-such-package-anywhere==9.9\n")
    with pytest.raises(DeployError, match=r"requirements\.txt did not install"):
        await deployments.deploy("echo", broken)
    linked = tmp_path / "linked"
    shutil.copytree(AGENT, linked)
    (linked / "secret").symlink_to("/etc/hostname")
    with pytest.raises(DeployError, match="secret is a symbolic link"):
        await deployments.deploy("echo", linked)
    with pytest.raises(DeployError, match=r"no start\.py in it"):
        await deployments.deploy("echo", AGENT, entry="start.py")
    with pytest.raises(DeployError, match="runtime name"):
        await deployments.deploy("../echo", AGENT)
    assert [v.number for v in deployments.versions("echo")] == [version.number]  # still only the good one
    for elsewhere in ("../runtimes0/echo", "..", "echo/../echo"):  # a name is never a path
        with pytest.raises(DeployError, match="no runtime"):
            deployments.version(elsewhere)
    assert deployments.version("echo") == version
    with pytest.raises(DeployError, match="has no version 7"):
        deployments.version("echo", 7)


async def _gone(sessions: Sessions, session_id: str, seconds: float) -> None:
    with anyio.fail_after(seconds):
        while session_id in {s.id for s in sessions.listed()}:  # noqa: ASYNC110 - the sweeper runs on its own clock
            await anyio.sleep(0.1)


async def test_idle_sessions_end_busy_ones_stay_and_none_outlives_its_lifetime(
    deployed: tuple[Deployments, Version], tmp_path: Path
) -> None:
    _, version = deployed
    lifecycle = Lifecycle(idle_seconds=1.0, max_seconds=30.0, sweep_seconds=0.2)
    async with Sessions(BwrapBackend(tmp_path / "sandboxes"), lifecycle=lifecycle).running() as sessions:
        idle, busy = "i" * 40, "w" * 40
        await _call(sessions, version, idle, {})
        await _call(sessions, version, busy, {"background": 4})
        await _gone(sessions, idle, 10)
        assert busy in {s.id for s in sessions.listed()}  # HealthyBusy: kept past its idle time
        listed = {s.id: s for s in sessions.listed()}
        assert (
            listed[busy].version == version.tag
            and listed[busy].memory_bytes > 0
            and listed[busy].cpu_seconds > 0
        )
        await _gone(sessions, busy, 15)  # its work done, idle: ended
    short = Lifecycle(idle_seconds=60.0, max_seconds=1.5, sweep_seconds=0.2)
    async with Sessions(BwrapBackend(tmp_path / "again"), lifecycle=short).running() as sessions:
        await _call(sessions, version, "o" * 40, {"background": 30})
        await _gone(sessions, "o" * 40, 10)  # busy or not, its lifetime is over


async def test_a_new_session_takes_an_app_started_ahead(
    deployed: tuple[Deployments, Version], tmp_path: Path
) -> None:
    _, version = deployed
    lifecycle = Lifecycle(warm=1, sweep_seconds=0.2)
    async with Sessions(BwrapBackend(tmp_path / "sandboxes"), lifecycle=lifecycle).running() as sessions:
        await _call(sessions, version, "1" * 40, {})  # the first one starts cold, and fills the pool
        with anyio.fail_after(60):
            while not sessions.pool.get(f"\x00{version.code}"):  # noqa: ASYNC110 - a refill in the background
                await anyio.sleep(0.05)
        ahead = sessions.pool[f"\x00{version.code}"][0]
        second = await sessions.session(version, "2" * 40)
        assert second is ahead and (await _call(sessions, version, "2" * 40, {}))["session"] == "2" * 40


async def test_owners_sessions_never_meet(deployed: tuple[Deployments, Version], sessions: Sessions) -> None:
    _, version = deployed
    same = "t" * 40
    mine = await sessions.session(version, same, owner="alpha")
    theirs = await sessions.session(version, same, owner="beta")
    assert mine is not theirs and mine.box.home != theirs.box.home
    assert [s.id for s in sessions.listed("alpha")] == [same] and not sessions.listed("gamma")
    assert not await sessions.stop(same, "gamma") and await sessions.stop(same, "alpha")
    assert [s.id for s in sessions.listed("beta")] == [same]


async def test_pools_are_each_owners_and_sessions_are_capped(
    deployed: tuple[Deployments, Version], tmp_path: Path
) -> None:
    _, version = deployed
    lifecycle = Lifecycle(warm=1, owner_sessions=2, max_sessions=3, sweep_seconds=0.2)
    async with Sessions(BwrapBackend(tmp_path / "sandboxes"), lifecycle=lifecycle).running() as sessions:
        await sessions.session(version, "a" * 40, owner="alpha")  # fills alpha's pool (one app)
        with anyio.fail_after(60):
            while not sessions.pool.get(f"alpha\x00{version.code}"):  # noqa: ASYNC110 - a refill in the background
                await anyio.sleep(0.05)
        beta = await sessions.session(version, "b" * 40, owner="beta")
        assert beta not in sessions.pool[f"alpha\x00{version.code}"]  # never another tenant's app
        await sessions.session(version, "c" * 40, owner="alpha")  # alpha's second: its pooled app
        with pytest.raises(AtCapacity, match="no more sessions now"):
            await sessions.session(version, "d" * 40, owner="alpha")
        with pytest.raises(SessionError, match="letters, digits"):
            await sessions.session(version, "x/" + "y" * 40, owner="alpha")


async def test_apps_reach_the_services_the_host_links_in_and_nothing_else(
    deployed: tuple[Deployments, Version], tmp_path: Path
) -> None:
    await reach_only_what_is_linked(deployed[1], BwrapBackend(tmp_path / "boxes"))


async def reach_only_what_is_linked(version: Version, backend: Backend) -> None:
    """An app reaches a service on the host's loopback that is linked in (ADR 0040), and not the
    host's port itself (on every backend: the gVisor tests call this too)."""
    seen: list[bytes] = []

    async def answer(client: SocketStream) -> None:  # a service on the host's loopback
        async with client:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await client.receive()
            seen.append(head.split(b"\r\n", 1)[0])
            await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tasks:
        port = listener.extra(SocketAttribute.local_port)
        tasks.start_soon(listener.serve, answer)
        links = Links(parse_services({"model": f"127.0.0.1:{port}@7001"}))
        async with links.open(), Sessions(backend, links=links).running() as live:
            session = await live.session(version, "l" * 40)
            payload = {"fetch": "SWITCHBOARD_SERVICE_MODEL_URL", "path": "/v1/models"}
            async with session.invoke(json.dumps(payload).encode()) as reply:
                found = json.loads(await reply.aread())
            assert found == {"fetched": "hello", "url": "http://127.0.0.1:7001/v1/models"}
            assert seen == [b"GET /v1/models HTTP/1.1"]
            # The host's own port is not the sandbox's: its loopback has only what was linked in.
            direct = {"fetch": f"http://127.0.0.1:{port}"}
            async with session.invoke(json.dumps(direct).encode()) as reply:
                assert reply.status_code == 500 and b"refused" in await reply.aread()
            assert len(seen) == 1
            await live.stop(session.id)
        tasks.cancel_scope.cancel()


def test_services_are_checked() -> None:
    with pytest.raises(ValueError, match="port 8080 is the app's own"):
        parse_services({"model": "127.0.0.1:8080"})
    with pytest.raises(ValueError, match="both use port 7001"):
        parse_services({"a": "127.0.0.1:7001", "b": "127.0.0.1:9999@7001"})
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_services({"a": "nowhere"})
    with pytest.raises(ValueError, match="a name is lowercase"):
        parse_services({"A-b": "127.0.0.1:1"})


async def test_a_versions_variables_and_secrets_reach_its_app(
    deployed: tuple[Deployments, Version], tmp_path: Path
) -> None:
    deployments, _ = deployed
    settings = Settings(environment={"SECRET_PLAIN": "plain"}, secrets={"SECRET_KEY": "openai"})
    version = await deployments.deploy("withenv", AGENT, settings=settings)
    asked: list[tuple[str, str]] = []

    async def secrets(owner: str, wanted: Version) -> dict[str, str]:  # (the gateway's: the vault)
        asked.append((owner, wanted.tag))
        return {name: f"{provider}-key-of-{owner}" for name, provider in wanted.secrets.items()}

    async with Sessions(BwrapBackend(tmp_path / "boxes"), secrets=secrets).running() as live:
        session = await live.session(version, "e" * 40, owner="acme")
        async with session.invoke(b"{}") as reply:
            found = json.loads(await reply.aread())
    assert found["env"] == {"SECRET_PLAIN": "plain", "SECRET_KEY": "openai-key-of-acme"}
    assert asked == [("acme", "withenv:1")]
    assert deployments.versions("withenv")[0].secrets == {"SECRET_KEY": "openai"}  # (names, never values)


async def test_sessions_see_neither_each_others_processes_nor_environment(
    deployed: tuple[Deployments, Version], tmp_path: Path
) -> None:
    deployments, _ = deployed
    version = await deployments.deploy("apart", AGENT, settings=Settings(secrets={"SECRET_OWN": "key"}))

    async def secrets(owner: str, wanted: Version) -> dict[str, str]:
        return {"SECRET_OWN": f"only-{owner}"}

    async with Sessions(BwrapBackend(tmp_path / "boxes"), secrets=secrets).running() as live:
        found = {}
        for owner in ("acme", "globex"):
            session = await live.session(version, f"{owner}-" + "p" * 34, owner=owner)
            async with session.invoke(json.dumps({"procs": True}).encode()) as reply:
                found[owner] = json.loads(await reply.aread())
    assert found["acme"]["secrets"] == ["only-acme"] and found["globex"]["secrets"] == ["only-globex"]
    assert len(found["acme"]["pids"]) < 10  # (its own few: the forwarder, the app, a shell)
