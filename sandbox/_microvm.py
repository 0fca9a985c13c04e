"""The microVM backend: each sandbox is a QEMU ``microvm`` of its own, with its own guest kernel,
so what runs inside reaches the host only through QEMU's few emulated devices: a read-only root
disk (the image ``sandbox/microvm/build.sh`` makes), one virtio-serial port to this process, and
no network device at all (``-nic none``). QEMU itself drops root for a uid of its own
(``-runas``), is chrooted into an empty directory, runs under its seccomp filter (``-sandbox``)
and in the session's control groups: its memory is the guest's plus QEMU's own, its CPU time is
the sandbox's (``usage``).

Inside, the guest server (``sandbox/microvm/guest.py``) runs commands and spawned processes as
``nobody`` in a control group holding the sandbox's process and memory limits, and serves the
files of ``/work`` (a tmpfs of ``disk_bytes`` with ``/tmp``) by checked paths, over the frames of
``sandbox/microvm/_wire.py``. A host file cannot be bound into a VM: a bind is honoured when the
image has that path (the agent, Node.js), and refused otherwise.

Warm start: the first sandbox of a shape (memory size, accelerator, agent, environment) boots,
starts the code interpreter's agent with its usual modules imported, and is saved by migration
with ``x-ignore-shared``: its RAM stays in a file, the device state (~60 KB) goes in another.
Every sandbox of that shape then maps the RAM copy-on-write (``share=off``: pages it has not
written are shared) and loads the device state, starting in a fraction of a second instead of
seconds; ``setup`` then gives it its own clock, randomness, disk size and limits.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process, UNIXSocketStream

from sandbox._cgroups import Cgroups, Groups, _alive
from sandbox._contract import Execution, Limits, Options, SandboxError, Usage, inside
from sandbox.microvm._wire import SLACK, Inbox, MicrovmProcess, Monitor, Wire, said

QEMU = "qemu-system-x86_64"
IMAGE = Path(__file__).resolve().parents[1] / ".sandbox-images" / "microvm"
IMAGE_FILES = ("vmlinuz", "initrd.img", "rootfs.ext4", "provides", "build-id")
AGENT_ARGV = ("/usr/bin/python3", "-I", "-B", "/opt/switchboard/agent.py")
PRELOAD = ("numpy", "pandas", "matplotlib.pyplot")  # imported once, in the snapshot
# Split into words first, then each word filled in (a path may hold spaces; commas are doubled).
QEMU_ARGS = (
    "-nodefaults -no-user-config -nographic -no-reboot -smp 1 -nic none -serial {serial}"
    " -machine microvm{backend} -m {mib}M -kernel {image}/vmlinuz -initrd {image}/initrd.img"
    " -drive id=root,file={image}/rootfs.ext4,format=raw,if=none,readonly=on"
    " -device virtio-blk-device,drive=root -device virtio-serial-device"
    " -chardev socket,id=wire,fd={wire} -device virtserialport,chardev=wire,name=switchboard"
    " -chardev socket,id=qmp,fd={qmp} -mon chardev=qmp,mode=control"
    " -sandbox on,obsolete=deny,spawn=deny,resourcecontrol=deny"
)
ACCEL = {
    "kvm": ("-accel", "kvm", "-cpu", "host"),
    "tcg": ("-accel", "tcg,tb-size=64", "-cpu", "qemu64,+rdrand"),
}
KERNEL_ARGS = "console=ttyS0 quiet panic=-1 mitigations=off"
CHUNK = 4 * 1024 * 1024  # file bytes per request
QEMU_MEMORY = 256 * 1024 * 1024  # QEMU's own: its translated code (tb-size 64 MiB), devices, heap
QEMU_THREADS = 64
MIB = 1024 * 1024
BOOT = 180.0  # seconds a cold boot (and the agent's imports) may take under software emulation
RESTORE = 30.0
PROBE = 20.0  # seconds a KVM boot has to answer before "auto" settles for TCG
UIDS = 2_000_000_000  # the uids QEMU runs under, one per VM of this process


def available(image: Path | None = None) -> str | None:
    """None when microVM sandboxes can run here; else one line saying why and what to do."""
    if shutil.which(QEMU) is None:
        return "QEMU is not installed: apt-get install qemu-system-x86"
    found = image or IMAGE
    if not all((found / name).is_file() for name in IMAGE_FILES):
        return f"the microVM image is not built ({found}): make microvm-image"
    return None


def _bytes(value: object) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True) if value else b""
    except ValueError:
        raise SandboxError("the microVM answered something that is not base64") from None


def _tail(*paths: Path) -> str:
    """The last lines QEMU (and, booting, the guest's console) wrote: why a VM did not start."""
    text = ""
    for path in paths:
        with contextlib.suppress(OSError):
            text += path.read_bytes()[-2000:].decode("utf-8", "replace")
    return said(" | ".join([line for line in text.splitlines() if line.strip()][-4:])) or "no output"


@functools.cache
def _tsc_khz() -> int | None:
    """The host's constant TSC rate. Under TCG the guest reads the host's TSC; left to calibrate
    it against the emulated PIT, a guest on a busy host fails, and then hangs."""
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        if " constant_tsc" in info:
            for line in info.splitlines():
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":")[1]) * 1000)
    return None


def _mib(options: Options) -> int:
    return max(128, -(-options.memory_bytes // MIB))


class MicrovmSandbox:
    """One microVM: its QEMU process, its port and monitor, its control groups."""

    def __init__(
        self, session_id: str, home: Path, options: Options, process: Process, wire: Wire, monitor: Monitor
    ) -> None:
        self.session_id, self.home, self.options = session_id, home, options
        self.process, self.wire, self.monitor = process, wire, monitor
        self.groups: Groups | None = None
        self.stopped = False
        self.released: Callable[[], None] = lambda: None  # (gives its uid back)

    async def _call(self, request: dict[str, Any], seconds: float = SLACK) -> dict[str, Any]:
        if self.stopped:
            raise SandboxError(f"sandbox {self.session_id} is stopped")
        return (await self.wire.call(request, seconds))[1]

    async def setup(self) -> None:
        """This copy's own clock, randomness, disk size, process limit and environment."""
        options = self.options
        await self._call(
            {
                "op": "setup",
                "time": time.time(),
                "seed": base64.b64encode(os.urandom(64)).decode(),
                "disk_bytes": options.disk_bytes,
                "files": options.files,
                "processes": options.processes,
                "environment": dict(options.environment),
            },
            RESTORE,
        )

    async def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", limits: Limits | None = None
    ) -> Execution:
        limits = limits or Limits()
        if not argv:
            raise SandboxError("give the command to run")
        request = {"op": "run", "argv": [str(a) for a in argv], "stdin": base64.b64encode(stdin).decode()}
        answer = await self._call({**request, "limits": asdict(limits)}, limits.wall_seconds + SLACK)
        code, stopped = answer.get("exit_code"), answer.get("stopped")
        return Execution(
            code if isinstance(code, int) and stopped is None else None,
            _bytes(answer.get("stdout"))[: limits.output_bytes],
            _bytes(answer.get("stderr"))[: limits.output_bytes],
            truncated=bool(answer.get("truncated")),
            stopped=said(stopped) if stopped is not None else None,
        )

    async def write(self, path: str, content: bytes) -> None:
        inside(path)
        for offset in range(0, max(len(content), 1), CHUNK):
            data = base64.b64encode(content[offset : offset + CHUNK]).decode()
            await self._call({"op": "write", "path": path, "data": data, "offset": offset})

    async def read(self, path: str, limit: int | None = None) -> bytes:
        inside(path)
        data = bytearray()
        while True:
            request = {"op": "read", "path": path, "offset": len(data), "length": CHUNK, "limit": limit}
            answer = await self._call(request)
            chunk, size = _bytes(answer.get("data")), answer.get("size")
            data += chunk
            if limit is not None and len(data) > limit:
                raise SandboxError(f"{path!r} is over the limit of {limit} bytes")
            if not chunk or not isinstance(size, int) or len(data) >= size:
                return bytes(data)

    async def listing(self, path: str = ".") -> list[tuple[str, int, bool]]:
        if path not in ("", ".", "/work"):
            inside(path)
        entries = (await self._call({"op": "listing", "path": path})).get("entries")
        try:
            return [(str(name), int(size), bool(is_dir)) for name, size, is_dir in entries or ()]
        except (TypeError, ValueError):
            raise SandboxError("the microVM answered a listing of the wrong shape") from None

    async def remove(self, path: str) -> None:
        inside(path)
        await self._call({"op": "remove", "path": path})

    def command_line(self, argv: Sequence[str]) -> list[str]:
        """(A microVM is reached over its own channel, never by a command line of the host's.)"""
        raise SandboxError("a microVM sandbox runs no process started by the host: use bwrap or gvisor")

    async def spawn(self, argv: Sequence[str]) -> Process:
        """``argv`` started in the VM; the code interpreter's agent, on the first spawn, is the one
        already running in the snapshot."""
        if not argv:
            raise SandboxError("give the command to start")
        if self.stopped:
            raise SandboxError(f"sandbox {self.session_id} is stopped")
        inbox = Inbox()
        channel, answer = await self.wire.call({"op": "spawn", "argv": [str(a) for a in argv]}, SLACK, inbox)
        pid = answer.get("pid")
        return MicrovmProcess(self.wire, channel, inbox, pid if isinstance(pid, int) else 0)

    def usage(self) -> Usage:
        """CPU time and memory of the QEMU process (all the VM costs the host); memory kills and
        refused forks inside the guest, as it last counted them (each answer carries them)."""
        groups = self.groups
        return Usage(
            groups.cpu_seconds() if groups else 0.0,
            groups.memory_used() if groups else 0,
            self.wire.counters["oom"] + (groups.memory_kills() if groups else 0),
            self.wire.counters["pids"],
        )

    async def kill(self) -> None:
        if self.stopped or self.wire.lost is not None:
            return  # (nothing of it runs, or it no longer answers and stop will end it)
        with contextlib.suppress(SandboxError):
            await self.wire.call({"op": "kill"}, SLACK)

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        with anyio.CancelScope(shield=True):
            self.wire.lose("stopped")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
            await self.process.aclose()
            await self.wire.stream.aclose()
            await self.monitor.aclose()
            if self.groups is not None:
                await self.groups.remove()
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(self.home, ignore_errors=True))
            self.released()


class MicrovmBackend:
    """MicroVM sandboxes, their files under ``root`` (made 0700): each live sandbox's QEMU log,
    and the snapshots sandboxes start from."""

    name = "microvm"

    def __init__(
        self,
        root: Path,
        image: Path | None = None,
        *,
        accel: str = "tcg",
        snapshots: bool = True,
        preload: Sequence[str] = PRELOAD,
        agent: Sequence[str] = AGENT_ARGV,
        cgroups: Cgroups | None = None,
    ) -> None:
        """``accel``: "tcg" (software emulation), "kvm", or "auto" (KVM when a guest boots on it
        here within ``PROBE`` seconds); ``snapshots`` False boots every sandbox afresh."""
        self.image = image or IMAGE
        problem = available(self.image)
        if problem is not None:
            raise SandboxError(problem)
        if accel not in ("tcg", "kvm", "auto"):
            raise SandboxError(f"accel must be tcg, kvm or auto, not {accel!r}")
        self.accel, self.snapshots = accel, snapshots
        self.preload, self.agent = tuple(preload), tuple(agent)
        found = cgroups or Cgroups()
        self.cgroups = found if found.problem() is None else None
        lines = (self.image / "provides").read_text().splitlines()
        self.provides = {path: digest for path, _, digest in (line.partition(" ") for line in lines)}
        qemu = Path(shutil.which(QEMU) or QEMU).stat()
        self.identity = [(self.image / "build-id").read_text().strip(), qemu.st_size, qemu.st_mtime_ns]
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.empty = root / "empty"  # QEMU's chroot
        self.empty.mkdir(exist_ok=True, mode=0o555)
        self.saved = root / "snapshots"
        self.saved.mkdir(exist_ok=True, mode=0o700)
        _sweep(root, self.saved, self.cgroups)
        for stale in self.saved.glob("*-*"):  # (snapshots of older images: VMs keep their mappings)
            if "." not in stale.name and not stale.name.startswith(f"{self.identity[0]}-"):
                shutil.rmtree(stale, ignore_errors=True)
        self.root = root / f"p{os.getpid()}"  # (several processes may share the root)
        self.root.mkdir(exist_ok=True, mode=0o700)
        self.making = anyio.Lock()
        self.resolved: str | None = None
        self.uids: set[int] = set()

    def _binds(self, options: Options) -> None:
        """A bind is honoured when the image has its path and, where the image recorded a digest
        (a file of this repository), the host's file is the one the image holds."""
        for source, target in options.binds:
            if target not in self.provides:
                raise SandboxError(f"microVM sandboxes cannot bind host files; the image has no {target}")
            try:
                same = not self.provides[target] or (
                    hashlib.sha256(Path(source).read_bytes()).hexdigest() == self.provides[target]
                )
            except OSError as exc:
                raise SandboxError(f"{source} cannot be read: {exc.strerror}") from None
            if not same:
                raise SandboxError(f"the microVM image's {target} differs from {source}: make microvm-image")

    async def start(self, options: Options | None = None) -> MicrovmSandbox:
        options = options or Options()
        self._binds(options)
        accel = await self._accel()
        if self.snapshots:
            folder = await self._snapshot(options, accel)
            box = await self._launch(options, accel, ram=folder / "ram", state=folder / "state")
        else:
            box = await self._launch(options, accel)
        try:
            await box.setup()
        except SandboxError as exc:
            message = f"the microVM did not start ({exc}): {_tail(box.home / 'qemu.log')}"
            await box.stop()
            raise SandboxError(message) from None
        except BaseException:
            await box.stop()
            raise
        return box

    async def _accel(self) -> str:
        if self.accel != "auto":
            return self.accel
        if self.resolved is None:
            self.resolved = "tcg"
            if os.access("/dev/kvm", os.R_OK | os.W_OK):
                with contextlib.suppress(SandboxError):
                    box = await self._launch(Options(), "kvm", boot=PROBE)
                    await box.stop()
                    self.resolved = "kvm"
        return self.resolved

    async def _snapshot(self, options: Options, accel: str) -> Path:
        """The snapshot sandboxes of this shape start from, made on first need (once at a time)."""
        environment = sorted(options.environment.items())
        shape = [self.identity, accel, _mib(options), self.agent, environment, self.preload]
        digest = hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:24]
        folder = self.saved / f"{self.identity[0]}-{digest}"
        async with self.making:
            if (folder / "state").is_file():
                return folder
            partial = self.saved / f"{folder.name}.p{os.getpid()}-{secrets.token_hex(4)}"
            partial.mkdir(mode=0o700)
            try:
                box = await self._launch(options, accel, ram=partial / "ram")
                try:
                    await self._save(box, options, partial / "state")
                finally:
                    await box.stop()
                if (folder / "state").is_file():  # (another process made it meanwhile)
                    shutil.rmtree(partial)
                else:  # (the files never change once there: VMs map them)
                    shutil.rmtree(folder, ignore_errors=True)
                    partial.rename(folder)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
        return folder

    async def _save(self, box: MicrovmSandbox, options: Options, state: Path) -> None:
        """Start the agent in ``box``, then migrate it to ``state``: its RAM stays in its file."""
        request = {"op": "prewarm", "argv": list(self.agent), "preload": list(self.preload)}
        await box.wire.call({**request, "environment": dict(options.environment)}, BOOT)
        capabilities = [{"capability": c, "state": True} for c in ("x-ignore-shared", "events")]
        await box.monitor.execute("migrate-set-capabilities", capabilities=capabilities)
        fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            await box.monitor.execute("getfd", [fd], fdname="snapshot")
        finally:
            os.close(fd)
        await box.monitor.execute("migrate", uri="fd:snapshot")
        with anyio.fail_after(BOOT):
            status = ""
            while status not in ("completed", "failed", "cancelled"):
                data = (await box.monitor.event("MIGRATION")).get("data")
                status = said(data.get("status") if isinstance(data, dict) else "failed")
        if status != "completed":
            raise SandboxError(f"the microVM's snapshot could not be saved ({status})")

    def _argv(
        self, options: Options, accel: str, ram: Path | None, fds: tuple[int, ...], uid: int
    ) -> list[str]:
        """QEMU's command line: booting when there is no state to restore (its console kept in
        the sandbox's home), its RAM in ``ram`` shared while booting for a snapshot."""
        booting, mib = len(fds) == 2, _mib(options)
        append = KERNEL_ARGS
        if accel == "tcg":
            khz = _tsc_khz()
            append += " tsc=reliable" + (f" tsc_early_khz={khz}" if khz else "")
        values = {
            "serial": "file:console.log" if booting else "null",
            "backend": ",memory-backend=mem" if ram is not None else "",
            "mib": mib,
            "image": str(self.image).replace(",", ",,"),
            "wire": fds[0],
            "qmp": fds[1],
        }
        argv = [QEMU, *(word.format(**values) for word in QEMU_ARGS.split()), *ACCEL[accel]]
        if os.geteuid() == 0:  # (root drops to a uid of its own, in an empty root)
            argv += ["-runas", f"{uid}:{uid}", "-chroot", str(self.empty)]
        if ram is not None:
            path, share = str(ram).replace(",", ",,"), "on" if booting else "off"
            argv += ["-object", f"memory-backend-file,id=mem,size={mib}M,mem-path={path},share={share}"]
        return [*argv, "-append", append, *([] if booting else ["-incoming", "defer"])]

    async def _launch(
        self,
        options: Options,
        accel: str,
        *,
        ram: Path | None = None,
        state: Path | None = None,
        boot: float = BOOT,
    ) -> MicrovmSandbox:
        """A VM booted (``state`` None: its guest server has answered) or restored from
        ``state`` (its setup to come)."""
        session_id = secrets.token_hex(8)
        home = self.root / session_id
        home.mkdir(mode=0o700)
        wire_here, wire_there = socket.socketpair()
        monitor_here, monitor_there = socket.socketpair()
        fds: tuple[int, ...] = (wire_there.fileno(), monitor_there.fileno())
        if state is not None:
            fds += (os.open(state, os.O_RDONLY),)
        uid = UIDS + secrets.randbelow(1 << 24)
        while uid in self.uids:
            uid = UIDS + secrets.randbelow(1 << 24)
        command = self._argv(options, accel, ram, fds, uid)
        groups = None
        log = os.open(home / "qemu.log", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            if self.cgroups is not None:  # the guest's memory and QEMU's own; its CPU time counted
                groups = self.cgroups.make(QEMU_THREADS, _mib(options) * MIB + QEMU_MEMORY, cpu=True)
                command = groups.enter(command)
            process = await anyio.open_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=home,
                start_new_session=True,
                pass_fds=fds,
            )
        except OSError as exc:
            if groups is not None:
                await groups.remove()
            shutil.rmtree(home, ignore_errors=True)
            raise SandboxError(f"QEMU could not be started: {exc}") from None
        finally:
            os.close(log)
            wire_there.close()
            monitor_there.close()
            if state is not None:
                os.close(fds[2])
        self.uids.add(uid)
        wire = Wire(await UNIXSocketStream.from_socket(wire_here))
        monitor = Monitor(await UNIXSocketStream.from_socket(monitor_here))
        box = MicrovmSandbox(session_id, home, options, process, wire, monitor)
        box.groups, box.released = groups, lambda: self.uids.discard(uid)
        try:
            with anyio.fail_after(RESTORE if state is not None else boot):
                await monitor.start()
                if state is not None:
                    capabilities = [{"capability": "x-ignore-shared", "state": True}]
                    await monitor.execute("migrate-set-capabilities", capabilities=capabilities)
                    await monitor.execute("migrate-incoming", uri=f"fd:{fds[2]}")
                else:
                    await wire.pump(lambda: wire.hello is not None)
                    if wire.hello is None:
                        raise SandboxError("it ended")
        except (SandboxError, TimeoutError) as exc:
            reason = "it took too long" if isinstance(exc, TimeoutError) else str(exc)
            message = (
                f"the microVM did not start ({reason}): {_tail(home / 'qemu.log', home / 'console.log')}"
            )
            await box.stop()
            raise SandboxError(message) from None
        except BaseException:
            await box.stop()
            raise
        return box


def _sweep(root: Path, saved: Path, cgroups: Cgroups | None) -> None:
    """What a process that was killed left behind: its VMs (in its control groups, killed there;
    a VM whose port closes also ends by itself), their logs, and snapshots it was making."""
    if cgroups is not None:
        cgroups.sweep()
    for left in [*root.glob("p*"), *saved.glob("*.p*")]:
        owner = left.name.rsplit(".p", 1)[-1].lstrip("p").split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(left, ignore_errors=True)
