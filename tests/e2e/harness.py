"""Start a real ``switchboard serve`` process and read where it listens."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
"""A raw 2025-era initialize request, for tests that speak HTTP to the MCP endpoint."""


class _Lines:
    """Reads the process's output in a thread, so waiting for a line has a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.queue.put(line)
        self.queue.put(None)

    def drain(self) -> list[str]:
        while True:
            try:
                line = self.queue.get_nowait()
            except queue.Empty:
                return self.seen
            if line is not None:
                self.seen.append(line)

    def until(self, pattern: re.Pattern[str], deadline: float) -> str:
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    "switchboard serve did not start in time:\n" + "".join(self.seen)
                ) from None
            if line is None:
                raise RuntimeError(f"switchboard serve exited ({self.proc.wait()}):\n" + "".join(self.seen))
            self.seen.append(line)
            if pattern.search(line):
                return line


@dataclass
class Served:
    base: str
    admin_key: str | None
    proc: subprocess.Popen[str]
    reader: _Lines
    data_dir: Path

    @property
    def output(self) -> list[str]:
        """Every line printed so far (all of them once the process has exited)."""
        return self.reader.drain()

    @property
    def mcp(self) -> str:
        return f"{self.base}/mcp"

    def gateway(self, name: str) -> str:
        return self.mcp if name == "default" else f"{self.base}/gateways/{name}/mcp"

    @property
    def admin_headers(self) -> dict[str, str]:
        assert self.admin_key
        return {"Authorization": f"Bearer {self.admin_key}"}


@contextmanager
def serve(
    data_dir: Path,
    config: Path | str | None = None,
    *,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> Iterator[Served]:
    """Run ``switchboard serve`` on a free port until the block ends (then SIGTERM)."""
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--port", "0", "--data-dir", str(data_dir)]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += args or []
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    reader = _Lines(proc)
    lines = reader.seen
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        first = reader.until(re.compile(r"serving on (\S+)"), deadline)
        base = re.search(r"serving on (\S+)", first).group(1)  # type: ignore[union-attr]
        reader.until(re.compile(r"admin API"), deadline)
        # The key is printed (before the admin API line) on first start only.
        keys = [m.group(1) for line in lines if (m := re.search(r"admin key .*: (sb_admin_\S+)", line))]
        key = keys[0] if keys else None
        yield Served(base, key, proc, reader, data_dir)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.thread.join(10)
        # A child that outlived the gateway may still hold the pipe: closing it under the
        # blocked reader thread would hang this test instead of letting it fail.
        if proc.stdout is not None and not reader.thread.is_alive():
            proc.stdout.close()


@contextmanager
def serve_config(root: Path, config: str, *, env: dict[str, str] | None = None) -> Iterator[Served]:
    """``serve`` a configuration given as YAML text (written to ``root``; data under it too)."""
    path = root / "switchboard.yaml"
    path.write_text(config)
    with serve(root / "data", path, env=env) as served:
        yield served


async def create_tenant(data_dir: Path, name: str) -> dict[str, str]:
    """``switchboard tenants create NAME`` (the operator's command); the new admin key's headers."""
    import anyio

    made = await anyio.run_process(
        [sys.executable, "-m", "gateway.cli", "tenants", "create", name, "--data-dir", str(data_dir)],
        cwd=ROOT,
    )
    key = re.search(r"(sb_admin_\S+)", made.stdout.decode())
    assert key is not None, made.stdout.decode()
    return {"Authorization": f"Bearer {key.group(1)}"}


@asynccontextmanager
async def keyed_client(served: Served, subject: str, mode: str = "2026-07-28") -> AsyncIterator[Client]:
    """An MCP SDK client of ``mode``'s era on the default gateway, calling with a new API key of
    ``subject``."""
    async with httpx2.AsyncClient(base_url=served.base, headers=served.admin_headers) as admin:
        made = await admin.post("/admin/v1/gateways/default/keys", json={"subject": subject})
    assert made.status_code == 201, made.text
    headers = {"Authorization": f"Bearer {made.json()['key']}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(served.mcp, http_client=http), mode=mode) as mcp,  # type: ignore[arg-type]
    ):
        yield mcp
