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
from dataclasses import dataclass
from pathlib import Path

import anyio

ROOT = Path("/sys/fs/cgroup")
ENTER = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


def _own(controller: str) -> str:
    """This process's group in ``controller`` (v1), or its v2 group (``controller`` "")."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (not controller and not controllers):
            return path
    return "/"


@dataclass
class Groups:
    """The groups one execution runs in."""

    paths: list[Path]
    memory: Path | None

    def enter(self, argv: list[str]) -> list[str]:
        """``argv`` run inside these groups."""
        procs = [str(p / "cgroup.procs") for p in self.paths]
        return ["/bin/sh", "-c", ENTER, "sh", *procs, "--", *argv]

    def out_of_memory(self) -> bool:
        if self.memory is None:
            return False
        for name in ("memory.events", "memory.failcnt"):  # v2, v1
            found = self.memory / name
            if found.exists():
                text = found.read_text()
                if name == "memory.failcnt":
                    return int(text.strip() or 0) > 0
                events = dict(line.split() for line in text.splitlines() if " " in line)
                return int(events.get("oom_kill", 0)) > 0 or int(events.get("max", 0)) > 0
        return False

    def pids_exhausted(self) -> bool:
        for path in self.paths:
            events = path / "pids.events"
            if events.exists() and "max" in events.read_text() and events.read_text().split()[-1] != "0":
                return True
        return False

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

    def make(self, processes: int, memory_bytes: int) -> Groups:
        name = f"switchboard-sandbox-{secrets.token_hex(6)}"
        if self.v2:
            group = self.root / _own("").lstrip("/") / name
            group.mkdir()
            (group / "pids.max").write_text(str(processes))
            limited = (group / "memory.max").exists()
            if limited:
                (group / "memory.max").write_text(str(memory_bytes))
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0")
            return Groups([group], group if limited else None)
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
        return Groups(paths, memory)
