"""Control groups for one execution: a cap on its processes (the pids controller: a fork bomb
meets it, whichever user the host sees) and on its memory, made under the gateway's own groups
(so a sandbox never leaves a limit the gateway itself is under) and removed afterwards.

cgroup v2 (one hierarchy) where the host has it, v1 (a hierarchy per controller) otherwise, as on
these machines. The command is placed in its groups by a small shell that writes its own pid into
them and then execs the command: nothing of the sandbox runs outside them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from sandbox._contract import Usage

ROOT = Path("/sys/fs/cgroup")
PREFIX = "switchboard-sandbox-"  # then the pid of the process that made it, and a random part
ENTER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


def _own(controller: str) -> str:
    """This process's group in ``controller`` (v1), or its v2 group (``controller`` "")."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (not controller and not controllers):
            return path
    return "/"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Groups:
    """The groups one execution runs in."""

    paths: list[Path]
    memory: Path | None
    cpu: Path | None = None  # where its CPU time is counted (v1 cpuacct; v2 the group itself)

    def enter(self, argv: list[str]) -> list[str]:
        """``argv`` run inside these groups."""
        procs = [str(p / "cgroup.procs") for p in self.paths]
        return ["/bin/sh", "-c", ENTER, "sh", *procs, "--", *argv]

    def out_of_memory(self) -> bool:
        return self.memory_kills() > 0

    def memory_kills(self) -> int:
        """Processes of the groups killed for memory (v2 memory.events, v1 memory.oom_control;
        memory.failcnt only where neither counts kills: it also counts reclaimed page cache)."""
        if self.memory is None:
            return 0
        for name in ("memory.events", "memory.oom_control", "memory.failcnt"):
            found = self.memory / name
            if found.exists():
                text = found.read_text()
                if name == "memory.failcnt":
                    return int(text.strip() or 0)
                fields = dict(line.split() for line in text.splitlines() if " " in line)
                if "oom_kill" in fields or name == "memory.events":
                    return int(fields.get("oom_kill", 0))
        return 0

    def usage(self) -> Usage:
        """What the groups' processes have used (and met) since the groups were made."""
        return Usage(self.cpu_seconds(), self.memory_used(), self.memory_kills(), self.process_refusals())

    def cpu_seconds(self) -> float:
        if self.cpu is None:
            return 0.0
        usage = self.cpu / "cpuacct.usage"
        if usage.exists():
            return int(usage.read_text().strip() or 0) / 1e9
        stat = self.cpu / "cpu.stat"
        if stat.exists():
            fields = dict(line.split() for line in stat.read_text().splitlines() if " " in line)
            return int(fields.get("usage_usec", 0)) / 1e6
        return 0.0

    def memory_used(self) -> int:
        if self.memory is None:
            return 0
        for name in ("memory.current", "memory.usage_in_bytes"):  # v2, v1
            found = self.memory / name
            if found.exists():
                return int(found.read_text().strip() or 0)
        return 0

    def kill(self) -> None:
        """End every process in the groups (they stay, empty), a fork bomb's included: v2's
        cgroup.kill where the kernel has it, else rounds of SIGKILL to whatever the group holds
        until it holds nothing (a bomb at its pids limit cannot outgrow the rounds)."""
        for path in self.paths:
            killer = path / "cgroup.kill"
            if killer.exists():
                with contextlib.suppress(OSError):
                    killer.write_text("1")
            deadline = time.monotonic() + 5.0
            while path.exists() and time.monotonic() < deadline:
                left = [int(p) for p in (path / "cgroup.procs").read_text().split()]
                if not left:
                    break
                for pid in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.001)  # (killed processes leave the group once reaped)

    def pids_exhausted(self) -> bool:
        return self.process_refusals() > 0

    def process_refusals(self) -> int:
        for path in self.paths:
            events = path / "pids.events"
            if events.exists():
                fields = dict(line.split() for line in events.read_text().splitlines() if " " in line)
                return int(fields.get("max", 0))
        return 0

    async def remove(self) -> None:
        """End whatever is still in the groups (a process the sandbox left), then remove them."""
        for path in self.paths:
            for _ in range(100):  # a group is removed once its last process has gone (~1 s at most)
                left = [int(p) for p in (path / "cgroup.procs").read_text().split()] if path.exists() else []
                for pid in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    await anyio.sleep(0.01)


class Cgroups:
    """Makes the groups of executions, when the host lets this process (it must be root)."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.v2 = (root / "cgroup.controllers").exists()

    def problem(self) -> str | None:
        """None when groups can be made here; else why not."""
        if os.geteuid() != 0:
            return "cgroups need the gateway to run as root (or a delegated cgroup) for sandbox limits"
        if self.v2:
            return None if "pids" in (self.root / "cgroup.controllers").read_text() else "no pids controller"
        return None if (self.root / "pids").is_dir() else "no pids controller mounted at /sys/fs/cgroup/pids"

    def bases(self) -> list[Path]:
        """The groups under which this process makes its own (one per hierarchy)."""
        if self.v2:
            return [self.root / _own("").lstrip("/")]
        found: list[Path] = []
        for controller in ("pids", "memory", "cpuacct", "cpu"):  # (cpu: where ``cpus`` caps are)
            base = self.root / controller / _own(controller).lstrip("/")
            if (self.root / controller).is_dir() and base.resolve() not in (b.resolve() for b in found):
                found.append(base)  # (cpu and cpuacct may be one hierarchy)
        return found

    def sweep(self) -> int:
        """Remove the groups a process that has ended left behind (it was killed before it could);
        what is still in them is killed first. Answers how many were removed."""
        removed = 0
        for base in self.bases():
            for group in base.glob(f"{PREFIX}*") if base.is_dir() else ():
                owner = group.name[len(PREFIX) :].split("-", 1)[0]
                if not owner.isdigit() or _alive(int(owner)):
                    continue
                left = Groups([group], None)
                left.kill()
                with contextlib.suppress(OSError):
                    group.rmdir()
                    removed += 1
        return removed

    def make(
        self, processes: int, memory_bytes: int, *, cpu: bool = False, cpus: float | None = None
    ) -> Groups:
        """Groups capping processes and memory; with ``cpu``, CPU time is counted (and with
        ``cpus``, capped at that many cores' worth, where the cpu controller is there)."""
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        period = 100_000
        if self.v2:
            group = self.root / _own("").lstrip("/") / name
            group.mkdir()
            (group / "pids.max").write_text(str(processes))
            if cpus is not None and (group / "cpu.max").exists():
                (group / "cpu.max").write_text(f"{int(cpus * period)} {period}")
            limited = (group / "memory.max").exists()
            if limited:
                (group / "memory.max").write_text(str(memory_bytes))
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0")
            return Groups([group], group if limited else None, group if cpu else None)
        pids = self.root / "pids" / _own("pids").lstrip("/") / name
        pids.mkdir()
        (pids / "pids.max").write_text(str(processes))
        paths, memory = [pids], None
        memory_root = self.root / "memory"
        if memory_root.is_dir():
            memory = memory_root / _own("memory").lstrip("/") / name
            memory.mkdir()
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            paths.append(memory)
        counted = None
        if cpu and (self.root / "cpuacct").is_dir():
            counted = self.root / "cpuacct" / _own("cpuacct").lstrip("/") / name
            counted.mkdir()
            paths.append(counted)
        if cpus is not None and (self.root / "cpu").is_dir():
            capped = self.root / "cpu" / _own("cpu").lstrip("/") / name
            if not capped.exists():  # (cpu and cpuacct may be one hierarchy: then it is made)
                capped.mkdir()
                paths.append(capped)
            (capped / "cpu.cfs_period_us").write_text(str(period))
            (capped / "cpu.cfs_quota_us").write_text(str(int(cpus * period)))
        return Groups(paths, memory, counted)
