"""Runtime sessions on the gVisor backend, for real (ADR 0039): the test agent, deployed from its
folder, runs unchanged in a gVisor sandbox per session (runsc, ptrace platform), reached through
a socket its forwarder makes in its work directory (runsc's ``--host-uds=create``), which the host
checks and links into the sandbox's home, never following what the sandbox may put in its place.
The same contract as on bubblewrap: state kept by session id, sessions apart, streams, a crash
said and the session started afresh, linked services and nothing else, idle sessions ended, a
warm pool, usage for the admin."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.asyncio.client import unix_connect

from runtime import (
    SESSION_HEADER,
    Deployments,
    Lifecycle,
    Links,
    SessionError,
    Sessions,
    Version,
    parse_services,
)
from runtime._reach import APP_SOCKET, Unreachable, adopt
from sandbox import GvisorBackend
from sandbox._gvisor import available
from tests.runtime.test_sessions import _call, reach_only_what_is_linked, streams_as_events
from tests.support.tools import need

pytestmark = pytest.mark.anyio

AGENT = Path(__file__).resolve().parents[1] / "fixtures" / "runtime_agent"
INSIDE = "/work/.runtime/app.sock"


@pytest.fixture
def deployed(echo_deployed: tuple[Deployments, Version]) -> tuple[Deployments, Version]:
    need(available() is None, f"gVisor sandboxes: {available()}")
    return echo_deployed


def _backend(root: Path) -> GvisorBackend:
    return GvisorBackend(root, host_uds="all")


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    live = Sessions(_backend(tmp_path / "sandboxes"))
    try:
        yield live
    finally:
        await live.aclose()


async def test_a_session_answers_keeps_its_state_and_sees_no_other(
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
    mine, theirs = await sessions.session(version, one), await sessions.session(version, two)
    assert mine.box.home != theirs.box.home
    # (Python's listing: this runsc answers coreutils' statx with EINVAL)
    look = "import os; print(sorted(os.listdir('/work') + os.listdir('/work/..') + os.listdir('/tmp')))"
    looked = await theirs.box.run(["python3", "-c", look])
    assert looked.exit_code == 0 and b".runtime" in looked.stdout and b"note.txt" not in looked.stdout
    assert await mine.box.read("note.txt") == b"mine"


async def test_a_generator_streams_as_server_sent_events(
    deployed: tuple[Deployments, Version], sessions: Sessions
) -> None:
    await streams_as_events(sessions, deployed[1])


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
    assert await session.app.wait() == 3  # (the forwarder ends with the app's status, runsc with it)
    again = await sessions.session(version, session_id)
    assert again is not session and again.box.home != session.box.home
    assert (await _call(sessions, version, session_id, {}))["calls"] == 1  # a new app, cleanly
    assert await sessions.stop(session_id) and not await sessions.stop(session_id)
    assert not again.box.home.exists()


async def test_an_app_that_fails_to_start_is_quoted_from_its_log(
    deployed: tuple[Deployments, Version], sessions: Sessions, tmp_path: Path
) -> None:
    deployments, _ = deployed
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "main.py").write_text("print('no model configured, giving up')\nraise SystemExit(4)\n")
    version = await deployments.deploy("broken", broken)
    with pytest.raises(SessionError, match=r"ended as it started \(status 4\): no model configured"):
        await sessions.session(version, "f" * 40)
    assert not sessions.listed()


def _reached(listener: socket.socket) -> list[bytes]:
    """What connected to ``listener`` (non-blocking) so far: what each sent first."""
    out: list[bytes] = []
    while True:
        try:
            client, _ = listener.accept()
        except BlockingIOError:
            return out
        with client:
            client.settimeout(5)
            out.append(client.recv(100))


@pytest.fixture
def database() -> Iterator[tuple[str, socket.socket]]:
    """A host UNIX socket no session may lead the host to (a database's, say), in a short folder
    of its own (a socket's path has 107 bytes at most)."""
    where = Path(tempfile.mkdtemp(prefix="sb-test-"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(where / "database.sock"))
        os.chmod(where / "database.sock", 0o666)
        listener.listen(8)
        listener.setblocking(False)
        yield str(where / "database.sock"), listener
    finally:
        listener.close()
        shutil.rmtree(where)


async def test_a_link_the_app_puts_in_place_of_its_socket_does_not_redirect_the_host(
    deployed: tuple[Deployments, Version], sessions: Sessions, database: tuple[str, socket.socket]
) -> None:
    _, version = deployed
    path, listener = database
    session = await sessions.session(version, "r" * 40)
    swapped = await _call(sessions, version, session.id, {"relink": [INSIDE, path]})
    assert swapped["calls"] == 1
    host_side = session.box.home / "work" / ".runtime" / "app.sock"
    assert os.readlink(host_side) == path  # (the host's view of the sandbox's path: a link to the database)
    # Every way the gateway connects (its client, a new one on Session.socket as the WebSocket relay
    # does, one through a descriptor of its own as the MCP provider does) reaches the app.
    assert (await _call(sessions, version, session.id, {}))["calls"] == 2
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=session.socket)) as fresh:
        assert (await fresh.get("http://127.0.0.1:8080/ping")).json()["status"] == "Healthy"
    held = os.dup(session.work)
    try:
        own = httpx.AsyncHTTPTransport(uds=f"/proc/self/fd/{held}/{APP_SOCKET}")
        async with httpx.AsyncClient(transport=own) as through:
            assert (await through.get("http://127.0.0.1:8080/ping")).json()["status"] == "Healthy"
    finally:
        os.close(held)
    headers = {SESSION_HEADER: session.id}
    async with unix_connect(session.socket, "ws://127.0.0.1:8080/ws", additional_headers=headers) as talk:
        await talk.send("hi")
        assert json.loads(await talk.recv()) == {"echo": "hi", "session": session.id}
    assert _reached(listener) == []  # the database was never connected to


async def test_the_host_adopts_only_a_socket_of_the_sandboxs_never_through_a_link(
    tmp_path: Path, database: tuple[str, socket.socket]
) -> None:
    """Before the app's socket is linked into the home, whatever the sandbox put at its path is
    checked as it is: a link (to the database's socket, or a folder on the way to it), a file, a
    socket of another file system: refused; nothing yet: not yet; its own socket: adopted."""
    need(available() is None, f"gVisor sandboxes: {available()}")
    path, listener = database
    box = await _backend(tmp_path / "sandboxes").start()
    home = os.open(box.home, os.O_PATH | os.O_DIRECTORY)
    try:
        assert adopt(home) is False  # nothing there yet
        cases = [
            (f"mkdir -p .runtime && ln -s {path} .runtime/app.sock", "is a symbolic link"),
            (f"mv .runtime elsewhere && ln -s {os.path.dirname(path)} .runtime", "not one"),
            ("rm -rf .runtime elsewhere && mkdir .runtime && echo x > .runtime/app.sock", "not a socket"),
        ]
        for command, said in cases:
            made = await box.run(["sh", "-c", command])
            assert made.exit_code == 0, made.stderr
            with pytest.raises(Unreachable, match=said):
                adopt(home)
            assert APP_SOCKET not in await anyio.to_thread.run_sync(os.listdir, box.home)
        serve = (
            "import os, socket\n"
            "os.remove('.runtime/app.sock')\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.bind('.runtime/app.sock')\n"
            "s.listen()\n"
            "print('up', flush=True)\n"
            "c, _ = s.accept()\n"
            "c.sendall(b'the app itself')\n"
        )
        app = await box.spawn(["python3", "-c", serve])
        assert app.stdout is not None
        with anyio.fail_after(60):
            assert await app.stdout.receive() == b"up\n"
        assert adopt(home) is True
        assert stat.S_ISSOCK(os.lstat(box.home / APP_SOCKET).st_mode)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(f"/proc/self/fd/{home}/{APP_SOCKET}")
            assert client.recv(100) == b"the app itself"
        await app.wait()
        await app.aclose()
        assert _reached(listener) == []
    finally:
        os.close(home)
        await box.stop()


async def test_apps_reach_the_services_the_host_links_in_and_nothing_else(
    deployed: tuple[Deployments, Version], tmp_path: Path
) -> None:
    await reach_only_what_is_linked(deployed[1], _backend(tmp_path / "boxes"))


async def test_a_backend_without_host_sockets_is_refused(tmp_path: Path) -> None:
    need(available() is None, f"gVisor sandboxes: {available()}")
    with pytest.raises(SessionError, match="host_uds='create'"):
        Sessions(GvisorBackend(tmp_path / "none"))
    links = Links(parse_services({"model": "127.0.0.1:1@7001"}))
    with pytest.raises(SessionError, match="host_uds='all'"):
        Sessions(GvisorBackend(tmp_path / "create", host_uds="create"), links=links)
    Sessions(GvisorBackend(tmp_path / "all", host_uds="all"), links=links)


async def _gone(sessions: Sessions, session_id: str, seconds: float) -> None:
    with anyio.fail_after(seconds):
        while session_id in {s.id for s in sessions.listed()}:  # noqa: ASYNC110 - the sweeper runs on its own clock
            await anyio.sleep(0.1)


async def test_the_pool_the_listing_and_idle_sessions_work_as_on_bubblewrap(
    deployed: tuple[Deployments, Version], tmp_path: Path
) -> None:
    _, version = deployed
    lifecycle = Lifecycle(idle_seconds=2.0, warm=1, sweep_seconds=0.2)
    async with Sessions(_backend(tmp_path / "sandboxes"), lifecycle=lifecycle).running() as sessions:
        busy, idle = "1" * 40, "2" * 40
        await _call(sessions, version, busy, {"background": 120})  # cold; fills the pool
        with anyio.fail_after(120):
            while not sessions.pool.get(f"\x00{version.code}"):  # noqa: ASYNC110 - a refill in the background
                await anyio.sleep(0.05)
        ahead = sessions.pool[f"\x00{version.code}"][0]
        assert await sessions.session(version, idle) is ahead  # the app started ahead
        assert (await _call(sessions, version, idle, {}))["session"] == idle
        listed = {s.id: s for s in sessions.listed()}
        assert listed[busy].version == version.tag
        assert listed[busy].memory_bytes > 0 and listed[busy].cpu_seconds > 0
        await _gone(sessions, idle, 60)  # idle: ended
        assert busy in {s.id for s in sessions.listed()}  # HealthyBusy (asked through its socket): kept
        assert await sessions.stop(busy)
