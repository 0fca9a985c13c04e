"""The bubblewrap backend, for real: what runs inside sees neither the host's files nor any
network, cannot outlive its limits, and leaves nothing behind."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from sandbox import BwrapBackend, BwrapSandbox, Limits, Options, SandboxError

pytestmark = pytest.mark.anyio


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[BwrapSandbox]:
    sandbox = await BwrapBackend(tmp_path / "sandboxes").start()
    yield sandbox
    await sandbox.stop()


async def test_python_runs_and_files_go_in_and_out(box: BwrapSandbox) -> None:
    await box.write("data/in.txt", b"21")
    done = await box.run(
        [
            "python3",
            "-c",
            "n = int(open('data/in.txt').read()); open('out.txt', 'w').write(str(n * 2)); print('ok')",
        ]
    )
    assert (done.exit_code, done.stdout, done.stopped) == (0, b"ok\n", None)
    assert await box.read("out.txt") == b"42"
    assert [(name, is_dir) for name, _, is_dir in await box.listing()] == [("data", True), ("out.txt", False)]


async def test_the_hosts_files_and_network_are_out_of_reach(box: BwrapSandbox, tmp_path: Path) -> None:
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
            "print(os.getuid(), len([p for p in os.listdir('/proc') if p.isdigit()]) <= 3)\n"
        )
        done = await box.run(["python3", "-c", probe])
    finally:
        listener.close()
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "False False False"
    assert lines[1].startswith("refused")  # its own empty network namespace: nothing listens there
    assert lines[2] == "65534 True"  # nobody, and only its own processes


async def test_limits_end_what_passes_them_with_a_clear_reason(box: BwrapSandbox) -> None:
    slow = await box.run(["sleep", "30"], limits=Limits(wall_seconds=0.5))
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
    assert (await box.run(["true"])).exit_code == 0  # and the sandbox serves on


async def test_paths_outside_the_work_directory_and_links_are_refused(box: BwrapSandbox) -> None:
    for path in ("../escape", "/etc/passwd", "", "a/../../b"):
        with pytest.raises(SandboxError):
            await box.write(path, b"x")
    await box.run(["ln", "-s", "/etc/passwd", "link"])
    with pytest.raises(SandboxError, match="symbolic link"):
        await box.read("link")
    with pytest.raises(SandboxError, match="no file"):
        await box.read("missing.txt")


async def test_two_sandboxes_do_not_see_each_other_and_stop_leaves_nothing(tmp_path: Path) -> None:
    backend = BwrapBackend(tmp_path / "sandboxes")
    one, two = await backend.start(), await backend.start()
    await one.write("mine.txt", b"1")
    seen = await two.run(["sh", "-c", "ls -a /work; ls /work/.. 2>&1 | head -3"])
    assert b"mine.txt" not in seen.stdout
    await one.stop()
    await two.stop()
    assert list((tmp_path / "sandboxes" / f"p{os.getpid()}").iterdir()) == []
    with pytest.raises(SandboxError, match="stopped"):
        await one.run(["true"])


async def test_a_fork_bomb_and_a_memory_bomb_meet_the_control_groups(box: BwrapSandbox) -> None:
    """The pids controller bounds processes whoever the host sees as their user (RLIMIT_NPROC does
    not bind root's); the memory controller ends a process that writes past its memory."""
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        break\n"
    forked = await box.run(["python3", "-c", bomb], limits=Limits(processes=16, wall_seconds=10))
    assert forked.stopped == "processes"
    touching = "b = bytearray(400 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
    limits = Limits(memory_bytes=128 * 1024**2, wall_seconds=20)
    hungry = await box.run(["python3", "-c", touching], limits=limits)
    assert hungry.exit_code != 0
    assert (await box.run(["true"])).exit_code == 0  # and it serves on
    await box.stop()
    groups = Path("/sys/fs/cgroup")
    mine = f"switchboard-sandbox-{os.getpid()}-*"
    left = await anyio.to_thread.run_sync(lambda: [p.name for p in groups.rglob(mine)])
    assert left == []  # every execution's groups, and the sandbox's own, are gone


async def test_a_sandbox_is_capped_at_its_cores_worth_of_cpu(tmp_path: Path) -> None:
    made = await BwrapBackend(tmp_path / "capped").start(Options(cpus=0.5))
    try:
        assert made.groups is not None
        quotas = [p / "cpu.cfs_quota_us" for p in made.groups.paths if (p / "cpu.cfs_quota_us").exists()]
        quotas += [p / "cpu.max" for p in made.groups.paths if (p / "cpu.max").exists()]
        assert quotas, "no cpu controller group"
        assert quotas[0].read_text().split()[0] == "50000"  # of each 100 ms period
    finally:
        await made.stop()
