"""The gVisor backend, for real: what runs inside sees neither the host's files nor any network,
cannot outlive its limits, and leaves nothing behind; long-lived processes (the code
interpreter's kernel) run in it as in bubblewrap."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from sandbox._contract import Limits, Options, SandboxError
from sandbox._gvisor import MISSING, GvisorBackend, GvisorSandbox, available, platform_for, platforms
from sandbox._kernel import AGENT, AGENT_INSIDE, Kernel, KernelLost

pytestmark = pytest.mark.anyio

if available() == MISSING and not os.environ.get("SWITCHBOARD_TEST_REQUIRE_SERVICES"):
    pytest.skip(MISSING, allow_module_level=True)  # (anything else: the backend's error fails the tests)

AGENT_BIND = Options(binds=((str(AGENT), AGENT_INSIDE),))
ECHO = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line.upper())\n    sys.stdout.flush()\n"


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[GvisorSandbox]:
    sandbox = await GvisorBackend(tmp_path / "sandboxes").start(AGENT_BIND)
    yield sandbox
    await sandbox.stop()


async def test_python_runs_and_files_go_in_and_out(box: GvisorSandbox) -> None:
    await box.write("data/in.txt", b"21")
    done = await box.run(
        [
            "python3",
            "-c",
            "n = int(open('data/in.txt').read()); open('out.txt', 'w').write(str(n * 2)); "
            "open('data/in.txt', 'w').write('changed'); print('ok')",
        ]
    )
    assert (done.exit_code, done.stdout, done.stopped) == (0, b"ok\n", None), done.stderr
    assert await box.read("out.txt") == b"42"
    assert await box.read("data/in.txt") == b"changed"  # what it was given is its own to change
    assert [(name, is_dir) for name, _, is_dir in await box.listing()] == [("data", True), ("out.txt", False)]
    piped = await box.run(["sh", "-c", "cat; echo err >&2; exit 3"], stdin=b"in and out\n")
    assert (piped.exit_code, piped.stdout, piped.stderr) == (3, b"in and out\n", b"err\n")


async def test_the_hosts_files_and_network_are_out_of_reach(box: GvisorSandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        probe = (
            "import os, socket\n"
            f"print(os.path.exists({str(secret)!r}), os.path.exists('/etc/shadow'), "
            "os.path.exists('/root'))\n"
            "s = socket.socket()\n"
            "try:\n"
            f"    s.connect(('127.0.0.1', {port})); print('connected')\n"
            "except OSError as e:\n"
            "    print('refused', e.errno)\n"
            "print(os.getuid(), os.getgid(), len([p for p in os.listdir('/proc') if p.isdigit()]) <= 3)\n"
            "import ctypes\n"
            "caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')]\n"
            "print(caps, ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))\n"  # PR_GET_NO_NEW_PRIVS
            "try:\n"
            "    open('/usr/planted', 'w')\n"
            "except OSError:\n"
            "    print('read-only')\n"
        )
        done = await box.run(["python3", "-c", probe])
    finally:
        listener.close()
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "False False False", done.stderr
    assert lines[1].startswith("refused")  # no network but its own loopback: nothing listens there
    assert lines[2] == "65534 65534 True"  # nobody, and only its own processes
    assert lines[3] == "['0000000000000000'] 1"  # no capability, no new privileges
    assert lines[4] == "read-only"


async def test_binds_are_read_only_and_the_environment_is_the_sandboxs(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "lib.txt").write_text("shared\n")
    options = Options(binds=((str(modules), "/work/node_modules"),), environment={"GREETING": "hi"})
    box = await GvisorBackend(tmp_path / "sandboxes").start(options)
    try:
        done = await box.run(
            [
                "sh",
                "-c",
                "cat node_modules/lib.txt; echo $GREETING $HOME; touch node_modules/x 2>/dev/null || echo ro",
            ]
        )
        assert done.stdout == b"shared\nhi /work\nro\n"
        assert not (modules / "x").exists()
        with pytest.raises(SandboxError, match="bind target"):
            await GvisorBackend(tmp_path / "sandboxes").start(Options(binds=((str(modules), "/proc/x"),)))
    finally:
        await box.stop()


async def test_limits_end_what_passes_them_with_a_clear_reason(box: GvisorSandbox) -> None:
    slow = await box.run(["sleep", "30"], limits=Limits(wall_seconds=1))
    assert slow.stopped == "wall time" and slow.exit_code is None
    loud = await box.run(["python3", "-c", "print('x' * 5000)"], limits=Limits(output_bytes=100))
    assert loud.truncated and len(loud.stdout) == 100
    hungry = await box.run(
        ["python3", "-c", "b = bytearray(2 * 1024 ** 3)"], limits=Limits(memory_bytes=256 * 1024**2)
    )
    assert hungry.exit_code != 0 and b"MemoryError" in hungry.stderr
    big = await box.run(
        ["python3", "-c", "open('f', 'wb').write(b'x' * 10_000_000)"], limits=Limits(file_bytes=1_000_000)
    )
    assert big.exit_code != 0
    spinning = await box.run(["python3", "-c", "while True: pass"], limits=Limits(cpu_seconds=1))
    assert spinning.stopped == "cpu time"
    assert (await box.run(["true"])).exit_code == 0  # and the sandbox serves on


async def test_paths_outside_the_work_directory_and_links_are_refused(box: GvisorSandbox) -> None:
    for path in ("../escape", "/etc/passwd", "", "a/../../b"):
        with pytest.raises(SandboxError):
            await box.write(path, b"x")
    await box.run(["ln", "-s", "/etc/passwd", "link"])
    with pytest.raises(SandboxError, match="symbolic link"):
        await box.read("link")
    with pytest.raises(SandboxError, match="symbolic link"):
        await box.write("link", b"x")
    with pytest.raises(SandboxError, match="no file"):
        await box.read("missing.txt")


async def test_two_sandboxes_do_not_see_each_other_and_stop_leaves_nothing(tmp_path: Path) -> None:
    backend = GvisorBackend(tmp_path / "sandboxes")
    one, two = await backend.start(), await backend.start()
    await one.write("mine.txt", b"1")
    # (Python lists: coreutils' ls and find use statx, which runsc 20221219 answers EINVAL on some
    # host kernels, 6.18 among them; what is looked at here is what the box can see)
    look = (
        "import os\nprint(os.listdir('/work'), os.listdir('/work/..'), os.listdir('/'))\n"
        "print([f for top in ('/work', '/tmp') for _, _, fs in os.walk(top) for f in fs if 'mine' in f])"
    )
    seen = await two.run(["python3", "-c", look])
    assert seen.exit_code == 0 and b"mine.txt" not in seen.stdout
    held = await one.spawn(["sleep", "300"])  # a container still running at stop
    await one.stop()
    await two.stop()
    assert await held.wait() != 0
    await held.aclose()
    assert await anyio.to_thread.run_sync(_left, backend.root) == ([], False, [], [])
    with pytest.raises(SandboxError, match="stopped"):
        await one.run(["true"])


async def test_a_fork_bomb_and_a_memory_bomb_are_contained(box: GvisorSandbox) -> None:
    """The sentry refuses forks past RLIMIT_NPROC (the host's pids group is the backstop, with room
    for gVisor's own threads); a program that writes past its memory is ended."""
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        break\n"
    forked = await box.run(["python3", "-c", bomb], limits=Limits(processes=16, wall_seconds=20))
    assert forked.stopped in (None, "processes")
    touching = "b = bytearray(400 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
    hungry = await box.run(
        ["python3", "-c", touching], limits=Limits(memory_bytes=128 * 1024**2, wall_seconds=20)
    )
    assert hungry.exit_code != 0
    assert (await box.run(["true"])).exit_code == 0  # and it serves on
    await box.stop()
    groups = Path("/sys/fs/cgroup")
    mine = f"switchboard-sandbox-{os.getpid()}-*"
    left = await anyio.to_thread.run_sync(lambda: [p.name for p in groups.rglob(mine)])
    assert left == []  # every execution's groups, and the sandbox's own, are gone


async def test_a_spawned_process_lives_across_requests_and_kill_ends_it(box: GvisorSandbox) -> None:
    process = await box.spawn(["python3", "-I", "-c", ECHO])
    assert process.stdin is not None and process.stdout is not None
    for word in (b"one\n", b"two\n"):
        await process.stdin.send(word)
        with anyio.fail_after(30):
            assert await process.stdout.receive() == word.upper()
    assert box.usage().memory_bytes > 0 and box.usage().cpu_seconds > 0
    await box.kill()
    with anyio.fail_after(30):
        assert await process.wait() != 0
    await process.aclose()
    await box.write("kept.txt", b"files stay")
    assert (await box.run(["cat", "kept.txt"])).stdout == b"files stay"


async def test_the_code_interpreter_keeps_its_state_in_gvisor(box: GvisorSandbox) -> None:
    """Its kernel (sandbox/_agent.py) spawned in gVisor: state kept between calls, and a kernel lost
    to the memory limit is reported as such and started afresh."""
    kernel = Kernel(box)
    try:
        assert (await kernel.call({"op": "python", "code": "x = 1"}, wall=30))["error"] is None
        answer = await kernel.call({"op": "python", "code": "print(x + 1)"}, wall=30)
        assert answer["stdout"] == "2\n"
        command = await kernel.call({"op": "command", "argv": ["sh", "-c", "id -u"], "timeout": 10}, wall=30)
        assert command["stdout"] == "65534\n"
        touching = "b = bytearray(3 * 1024 ** 3)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
        with pytest.raises(KernelLost) as hungry:  # past the session's memory: the groups end it
            await kernel.call({"op": "python", "code": touching}, wall=60)
        assert hungry.value.reason == "memory"
        served = await kernel.call({"op": "python", "code": "print(6 * 7)"}, wall=30)
        assert served["stdout"] == "42\n" and kernel.started == 2  # a new kernel, serving on
    finally:
        await kernel.stop()


async def test_a_platform_the_host_lacks_falls_back_to_ptrace(tmp_path: Path) -> None:
    assert "ptrace" in platforms()
    backend = GvisorBackend(tmp_path / "sandboxes", platform="systrap")
    assert backend.platform == ("systrap" if "systrap" in platforms() else "ptrace")
    assert platform_for("ptrace") == "ptrace"
    with pytest.raises(SandboxError, match="not known"):
        platform_for("chroot")


async def test_what_a_killed_gateway_left_is_swept(tmp_path: Path) -> None:
    """A process that made a sandbox and runs a process in it is killed: its runsc dies with it,
    and the next backend on the same root removes its files, mount, state and groups."""
    root = tmp_path / "sandboxes"
    script = (
        "import anyio, sys\n"
        "from pathlib import Path\n"
        "from sandbox._gvisor import GvisorBackend\n"
        "async def main():\n"
        f"    box = await GvisorBackend(Path({str(root)!r})).start()\n"
        "    held = await box.spawn(['sh', '-c', 'echo up; exec sleep 300'])\n"
        "    assert await held.stdout.receive() == b'up\\n'\n"
        "    print('ready', flush=True)\n"
        "    await anyio.sleep_forever()\n"
        "anyio.run(main)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    gateway = await anyio.open_process([sys.executable, "-c", script], env=env, stderr=None)
    gone = root / f"p{gateway.pid}"
    try:
        assert gateway.stdout is not None
        with anyio.fail_after(60):
            assert await BufferedByteReceiveStream(gateway.stdout).receive_until(b"\n", 100) == b"ready"
        assert len(list(gone.iterdir())) == 2  # its home and its runsc state
    finally:
        gateway.kill()
        await gateway.wait()
        await gateway.aclose()
        await anyio.to_thread.run_sync(GvisorBackend, root)  # (the sweep, whatever happened above)
    left = await anyio.to_thread.run_sync(_left, gone, gateway.pid)
    assert left == ([], False, [], [])


def _left(root: Path, owner: int | None = None) -> tuple[list[Path], bool, list[Path], list[int]]:
    """What stopped sandboxes could have left: files (homes, runsc state, bundles), a mount, control
    groups (of the process ``owner``, by default this one), runsc processes."""
    mounted = str(root) in Path("/proc/self/mounts").read_text()
    groups = list(Path("/sys/fs/cgroup").rglob(f"switchboard-sandbox-{owner or os.getpid()}-*"))
    return list(root.iterdir()) if root.exists() else [], mounted, groups, _runsc_of(root)


def _runsc_of(root: Path) -> list[int]:
    """Live processes whose command line names ``root`` (runsc, its gofer and sentry name their
    state directory; a zombie has no command line)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(root).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


HOST_SOCKETS = r"""
import os, socket, sys
def reach(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return s.recv(100).decode()
    except OSError as e:
        return f"errno {e.errno}"
os.symlink(sys.argv[1], "/work/elsewhere")
print(reach("/run/links/service.sock"), reach("/work/elsewhere"), flush=True)
s = socket.socket(socket.AF_UNIX)
s.bind("/work/in.sock")
s.listen()
print("bound", flush=True)
c, _ = s.accept()
c.sendall(b"from inside")
"""


@pytest.mark.parametrize("host_uds", ["none", "all"])
async def test_host_unix_sockets_are_out_of_reach_unless_the_backend_lets_them(
    tmp_path: Path, host_uds: str
) -> None:
    """By default (code interpreters) a program can neither connect to a host socket bound in nor
    make one in its work directory (its sockets are the sentry's own); a runtime's backend
    (``host_uds="all"``) lets it do both. Either way a link in the work directory to a host socket
    outside the sandbox's mounts leads nowhere: the sentry resolves it in the sandbox's view."""
    short = Path(tempfile.mkdtemp(prefix="sb-test-"))  # (a socket's path has 107 bytes at most)
    links, hidden = short / "links", short / "hidden"
    links.mkdir()
    hidden.mkdir()

    def answering(said: bytes) -> Callable[[SocketStream], Awaitable[None]]:
        async def answer(client: SocketStream) -> None:
            async with client:
                await client.send(said)

        return answer

    with pytest.raises(SandboxError, match="host_uds 'some'"):
        GvisorBackend(tmp_path / "sandboxes", host_uds="some")
    options = Options(binds=((str(links), "/run/links"),))
    box = await GvisorBackend(tmp_path / "sandboxes", host_uds=host_uds).start(options)
    service = await anyio.create_unix_listener(links / "service.sock")
    database = await anyio.create_unix_listener(hidden / "database.sock")
    try:
        async with service, database, anyio.create_task_group() as tasks:
            os.chmod(links / "service.sock", 0o666)
            os.chmod(hidden / "database.sock", 0o666)
            tasks.start_soon(service.serve, answering(b"service"))
            tasks.start_soon(database.serve, answering(b"database"))
            program = await box.spawn(["python3", "-c", HOST_SOCKETS, str(hidden / "database.sock")])
            assert program.stdout is not None
            lines = BufferedByteReceiveStream(program.stdout)
            with anyio.fail_after(60):
                reached = await lines.receive_until(b"\n", 200)
                assert await lines.receive_until(b"\n", 200) == b"bound"
            made = box.home / "work" / "in.sock"
            if host_uds == "none":
                assert reached == b"errno 1 errno 2"  # EPERM: no host socket; ENOENT: not in its view
                assert not made.exists()  # (its socket is the sentry's, not the host's)
            else:
                assert reached == b"service errno 2"
                work = os.open(made.parent, os.O_PATH | os.O_DIRECTORY)
                try:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                        client.settimeout(30)
                        client.connect(f"/proc/self/fd/{work}/in.sock")  # (a home's path may be long)
                        assert client.recv(100) == b"from inside"
                finally:
                    os.close(work)
            tasks.cancel_scope.cancel()
    finally:
        await box.stop()
        shutil.rmtree(short)
