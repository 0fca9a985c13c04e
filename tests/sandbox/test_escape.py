"""The escape suite (issue 18): what a program inside a sandbox tries, on every backend that runs
here, and finds nothing: no network to the host (the gateway's port, a listener of the test's, UDP,
DNS), no host file (the store, the vault key, /etc/shadow, the host's environment, another
session's files, links planted inside), no device, no way past its limits (fork bomb, memory
bomb, disk fill, huge output), no privilege (setuid, ptrace, keyrings, namespaces, mounts), and
nothing left after it stops. Each limit met is a clear answer, and the sandbox serves on."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from sandbox import (
    BwrapBackend,
    GvisorBackend,
    Interpreter,
    InterpreterConfig,
    MicrovmBackend,
    MicrovmSandbox,
    Options,
    Sandbox,
    SandboxError,
    Unavailable,
    backend_for,
)
from sandbox._kernel import AGENT, AGENT_INSIDE, Kernel, KernelLost

pytestmark = pytest.mark.anyio

BACKENDS: dict[str, Callable[[Path], Any]] = {
    "bwrap": lambda root: BwrapBackend(root),
    "gvisor": lambda root: GvisorBackend(root),
    "microvm": lambda root: MicrovmBackend(root),
}
SECRET = "host-secret-5f1c"
# What stops a fork bomb: its process limit (under a VM's software emulation its CPU time may come
# first; either way it is stopped and the sandbox serves on).
LIMITED_BY = ("processes", "cpu time")


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path / "sandboxes"
    if request.param == "microvm":  # (its snapshots are made once per root: the suite shares one)
        root = tmp_path_factory.getbasetemp() / "escape-microvm"
    return BACKENDS[request.param](root)


@pytest.fixture
async def box(backend: Any) -> AsyncIterator[Sandbox]:
    made: Sandbox = await backend.start(Options(binds=((str(AGENT), AGENT_INSIDE),), disk_bytes=64 * 1024**2))
    yield made
    await made.stop()


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Any]:
    """What a program must never reach: the host's files and its listeners on loopback."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "switchboard.db").write_text(SECRET)
    (data / "vault.key").write_text(SECRET)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    return {"data": data, "tcp": tcp, "udp": udp}


PROBE = r"""
import ctypes, errno, json, os, socket, sys
tcp_port, udp_port, data = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
libc = ctypes.CDLL(None, use_errno=True)
seen = {}
def attempt(name, fn):
    try:
        seen[name] = ["ok", repr(fn())[:200]]
    except Exception as exc:
        seen[name] = ["refused", type(exc).__name__]
def tcp():
    s = socket.create_connection(("127.0.0.1", tcp_port), timeout=2); s.close(); return "connected"
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"leak", ("127.0.0.1", udp_port))
    return "sent"
def dns():
    return socket.getaddrinfo("example.com", 80)
attempt("tcp", tcp)
attempt("udp", udp)
attempt("dns", dns)
seen["interfaces"] = sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else []
for name in ("switchboard.db", "vault.key"):
    attempt(name, lambda: open(os.path.join(data, name)).read())
attempt("shadow", lambda: open("/etc/shadow").read())
sockets = ("/run/postgresql", "/var/run/postgresql", "/var/run/redis", "/run/dbus", "/var/run/docker.sock")
seen["service_sockets"] = [p for p in sockets if os.path.exists(p)]
attempt("root_home", lambda: os.listdir("/root"))
environ = open("/proc/1/environ", "rb").read() if os.access("/proc/1/environ", os.R_OK) else b""
seen["pid1_environ_has_secret"] = b"SWITCHBOARD" in environ
seen["processes"] = len([p for p in os.listdir("/proc") if p.isdigit()])
seen["devices"] = sorted(os.listdir("/dev"))
seen["uid"] = os.getuid()
seen["no_new_privs"] = str(libc.prctl(39, 0, 0, 0, 0))  # PR_GET_NO_NEW_PRIVS
def call(name, *args):
    r = libc.syscall(*args); return [r, errno.errorcode.get(ctypes.get_errno(), "")]
seen["ptrace_attach_1"] = call("ptrace", 101, 16, 1, 0, 0)
seen["keyctl"] = call("keyctl", 250, 0, 0, 0, 0, 0)
seen["unshare_user"] = [libc.unshare(0x10000000), errno.errorcode.get(ctypes.get_errno(), "")]
seen["mount"] = [libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), errno.errorcode.get(ctypes.get_errno(), "")]
attempt("setuid_root", lambda: os.setuid(0))
for family, kind, name in ((40, 1, "vsock"), (17, 3, "packet"), (38, 5, "alg")):
    attempt(f"socket_{name}", lambda: socket.socket(family, kind))
attempt("hardlink_system_file", lambda: os.link("/usr/bin/python3", "/work/python3-link"))
attempt("write_system", lambda: open("/usr/bin/planted", "w").write("x"))
print(json.dumps(seen))
"""


async def test_nothing_of_the_host_is_reachable(box: Sandbox, host: dict[str, Any]) -> None:
    tcp, udp = host["tcp"].getsockname()[1], host["udp"].getsockname()[1]
    try:
        done = await box.run(["python3", "-c", PROBE, str(tcp), str(udp), str(host["data"])])
        assert done.exit_code == 0, done.stderr.decode()[-2000:]
        seen = json.loads(done.stdout)
        with pytest.raises(BlockingIOError):
            host["udp"].recv(100)  # nothing arrived on the host's UDP listener
    finally:
        host["tcp"].close()
        host["udp"].close()
    for name in ("tcp", "dns", "switchboard.db", "vault.key", "shadow", "root_home"):
        assert seen[name][0] == "refused", (name, seen[name])
    assert seen["udp"][0] == "refused" or seen["udp"][1] == "'sent'"  # (sent into its own empty network)
    assert seen["interfaces"] in ([], ["lo"])
    assert seen["service_sockets"] == []
    assert not seen["pid1_environ_has_secret"]
    assert seen["processes"] <= 3  # its own init, the probe (and its shell)
    guest = isinstance(box, MicrovmSandbox)  # (a VM's /dev is its own kernel's, not the host's)
    assert guest or set(seen["devices"]) <= {
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "pts",
        "ptmx",
        "shm",
        "fd",
        "stdin",
        "stdout",
        "stderr",
        "core",
        "mqueue",
        "console",
        "fuse",  # (gVisor's own: mounting is refused)
        "net",  # (gVisor's tun: creating one is refused)
    }
    assert seen["uid"] != 0 and seen["no_new_privs"] == "1"
    for name in ("ptrace_attach_1", "keyctl", "unshare_user", "mount"):
        assert seen[name][0] == -1, (name, seen[name])
        # (in a VM they meet the guest's own kernel, which answers in its own words: still refused)
        assert guest or seen[name][1] == "EPERM", (name, seen[name])
    for name in (
        "setuid_root",
        "hardlink_system_file",
        "write_system",
        "socket_vsock",
        "socket_packet",
        "socket_alg",
    ):
        assert seen[name][0] == "refused", (name, seen[name])


async def test_links_planted_inside_are_never_followed_by_the_host(box: Sandbox, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text(SECRET)
    await box.run(["sh", "-c", f"ln -s {outside} link; ln -s / root; mkdir d; ln -s /etc d/etc"])
    for path in ("link", "root/etc/passwd", "d/etc/passwd"):
        with pytest.raises(SandboxError):
            await box.read(path)
    with pytest.raises(SandboxError):
        await box.write("root/tmp/planted", b"x")
    with pytest.raises(SandboxError):
        await box.listing("root")
    assert not (Path("/tmp") / "planted").exists()


async def test_another_sessions_files_are_nowhere_to_be_found(backend: Any) -> None:
    one: Sandbox = await backend.start(Options(binds=((str(AGENT), AGENT_INSIDE),)))
    two: Sandbox = await backend.start(Options(binds=((str(AGENT), AGENT_INSIDE),)))
    try:
        await one.write("marker-of-one.txt", b"private")
        hunt = "find / -name 'marker-of-one*' 2>/dev/null; ls /proc/*/root/work 2>/dev/null | head -3; true"
        found = await two.run(["sh", "-c", hunt])
        assert b"marker-of-one" not in found.stdout
    finally:
        await one.stop()
        await two.stop()


async def test_limits_met_answer_clearly_and_the_sandbox_serves_on(box: Sandbox) -> None:
    kernel = Kernel(box)
    try:
        await kernel.call({"op": "python", "code": "kept = 42"}, wall=30)
        bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        try:  # interrupted, every copy of it killed, the state kept; or, if it could not answer, ended
            forked = await kernel.call({"op": "python", "code": bomb}, wall=30, cpu=5)  # (CPU time first)
            assert forked["stopped"] in LIMITED_BY
            kept = (await kernel.call({"op": "python", "code": "print(kept)"}, wall=30))["stdout"]
            assert kept == "42\n"
        except KernelLost as lost:
            assert lost.reason in LIMITED_BY
        count = "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))"
        assert int((await kernel.call({"op": "python", "code": count}, wall=30))["stdout"]) <= 2
        touching = "b = bytearray(3 * 1024 ** 3)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
        try:  # ended at the memory limit; or, in a VM whose memory is its own, a MemoryError
            answered = await kernel.call({"op": "python", "code": touching}, wall=60)
            assert "MemoryError" in str(answered.get("error")), answered
        except KernelLost as hungry:
            assert hungry.reason == "memory"
        fill = "with open('/work/fill', 'wb') as f:\n    while True:\n        f.write(bytes(1 << 20))\n"
        filled = await kernel.call({"op": "python", "code": fill}, wall=30)
        assert "No space left on device" in filled["error"]
        await kernel.call({"op": "command", "argv": ["rm", "/work/fill"], "timeout": 10}, wall=20)
        loud = await kernel.call(
            {
                "op": "python",
                "code": "for _ in range(10 ** 5):\n    print('x' * 1000)",
                "output_bytes": 10_000,
            },
            wall=30,
        )
        assert loud["truncated"] and len(loud["stdout"]) == 10_000, {k: str(v)[:300] for k, v in loud.items()}
        served = await kernel.call({"op": "python", "code": "print(6 * 7)"}, wall=30)
        assert served["stdout"] == "42\n"  # it serves on (a new kernel: the old state is gone)
    finally:
        await kernel.stop()


async def test_nothing_is_left_after_stop(backend: Any) -> None:
    made: Sandbox = await backend.start(Options(binds=((str(AGENT), AGENT_INSIDE),)))
    kernel = Kernel(made)
    # (a duration of its own: another test file, run beside this one, may sleep 300 too)
    sleeper = f"sleep 300.{secrets.randbelow(10**6):06d}"
    await kernel.call({"op": "start", "command": f"{sleeper} & {sleeper}"}, wall=30)
    await made.write("file.txt", b"x")
    await kernel.stop()
    await made.stop()
    assert await anyio.to_thread.run_sync(_left, Path(backend.root), sleeper) == ([], False, [], [])


async def test_a_backend_that_cannot_run_is_an_explicit_error_never_a_run_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sandbox._bwrap as bwrap

    monkeypatch.setattr(bwrap, "BWRAP", str(tmp_path / "no-bwrap-here"))
    with pytest.raises(SandboxError, match="apt-get install bubblewrap"):
        BwrapBackend(tmp_path / "sandboxes")
    with pytest.raises(Unavailable, match="apt-get install bubblewrap"):
        Interpreter("default", InterpreterConfig(), tmp_path / "sandboxes")
    with pytest.raises(Unavailable, match="not known"):
        backend_for("chroot", tmp_path / "sandboxes")


def _left(root: Path, sleeper: str) -> tuple[list[Path], bool, list[Path], list[Path]]:
    """What a stopped sandbox could have left: files, a mount, control groups, processes."""
    mounted = str(root) in Path("/proc/self/mounts").read_text()
    groups = list(Path("/sys/fs/cgroup").rglob(f"switchboard-sandbox-{os.getpid()}-*"))
    sleepers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) == sleeper]
    return list(root.iterdir()), mounted, groups, sleepers


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs("d", exist_ok=True)
open("d/secret.txt", "w").write("the sandbox's own")
os.symlink(sys.argv[1], "l")
while True:
    libc.renameat2(-100, b"d", -100, b"l", 2)  # RENAME_EXCHANGE: d is now a link to the host, now not
"""


async def test_a_directory_swapped_for_a_link_mid_call_never_leads_to_the_host(
    backend: Any, tmp_path: Path
) -> None:
    """Finding 1 of the review: a program swaps a directory with a link to a host directory in a
    tight loop while the host reads, writes, lists and removes through it."""
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "secret.txt").write_text(SECRET)
    made: Sandbox = await backend.start(Options(binds=((str(AGENT), AGENT_INSIDE),)))
    kernel = Kernel(made)
    try:
        await kernel.call({"op": "start", "command": f"python3 -c '{SWAPPER}' {host}"}, wall=30)
        for _ in range(300):
            for attempt in (
                lambda: made.read("d/secret.txt"),
                lambda: made.write("d/planted.txt", b"escaped"),
                lambda: made.listing("d"),
            ):
                try:
                    found = await attempt()
                except SandboxError:
                    continue
                assert found != SECRET.encode() and SECRET.encode() not in repr(found).encode()
        assert sorted(p.name for p in host.iterdir()) == ["secret.txt"]  # nothing planted on the host
        with pytest.raises(SandboxError):
            await made.remove("l/secret.txt")
        assert (host / "secret.txt").read_text() == SECRET
    finally:
        await kernel.stop()
        await made.stop()


async def test_a_fifo_never_holds_the_gateway(box: Sandbox) -> None:
    kernel = Kernel(box)
    try:
        await kernel.call({"op": "command", "argv": ["mkfifo", "/work/f"], "timeout": 10}, wall=20)
        with anyio.fail_after(10):  # (gVisor keeps its FIFOs to itself: the host sees a plain file)
            for attempt in (box.write("f", b"x"), box.read("f")):
                with contextlib.suppress(SandboxError):
                    await attempt
            answered = await kernel.call({"op": "file.write", "path": "f", "data": "eA=="}, wall=20)
            assert "not a regular file" in answered.get("error", "not a regular file")
    finally:
        await kernel.stop()
