"""Prism (npm `@stoplight/prism-cli`) serving an OpenAPI document on loopback: a real validator.

Prism answers like the API the document describes and logs every request
that does not match it (`[VALIDATOR] ✖ error ...`); tests read those lines.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def prism_binary() -> str | None:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "prism"
    return str(local) if local.exists() else shutil.which("prism")


@dataclass
class Prism:
    url: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        """Request-validation errors Prism has logged so far (not its checks of its own responses)."""
        return [
            line.strip()
            for line in self.lines
            if "[VALIDATOR]" in line and "error" in line and "Violation: response" not in line
        ]


@contextmanager
def prism(document: Path, *, extra_args: list[str] | None = None) -> Iterator[Prism]:
    binary = prism_binary()
    if binary is None:
        raise RuntimeError("prism is not installed; run `make tools`")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [binary, "mock", "-h", "127.0.0.1", "-p", str(port), str(document), *(extra_args or [])]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "NO_COLOR": "1"}
    )
    lines: list[str] = []
    ready: queue.Queue[bool] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Prism is listening" in line:
                ready.put(True)
        ready.put(False)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        if not ready.get(timeout=max(1.0, deadline - time.monotonic())):
            raise RuntimeError("prism exited:\n" + "".join(lines))
        yield Prism(f"http://127.0.0.1:{port}", proc, lines)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        thread.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
