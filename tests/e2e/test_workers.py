"""Several workers on one port (``serve --workers 2``): a handshake-era session made in one
worker is served when its requests reach the other, metrics count every worker's calls,
and the workers stop cleanly with the parent."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.harness import ACCEPT, INIT, Served, serve

CONFIG = """
gateways:
  - name: default
    targets:
      - name: tickets
        kind: function
        functions: [examples.quickstart.tools:open_tickets]
"""
FORWARDED = "x-switchboard-forwarded-client"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    root: Path = tmp_path_factory.mktemp("workers")
    (root / "switchboard.yaml").write_text(CONFIG)
    with serve(root / "data", root / "switchboard.yaml", args=["--workers", "2"]) as s:
        yield s, root / "data"


def _workers(data: Path) -> list[Path]:
    """The workers' private sockets, once both are listening."""
    deadline = time.monotonic() + 30
    while True:
        sockets = sorted((data / "run").glob("w*.sock"))
        if len(sockets) == 2:
            return sockets
        assert time.monotonic() < deadline, f"two workers did not start: {sockets}"
        time.sleep(0.1)


def _answer(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return dict(json.loads(data[-1]))
    return dict(response.json())


def test_a_session_is_served_by_whichever_worker_a_request_reaches(served: tuple[Served, Path]) -> None:
    s, data = served
    first, second = _workers(data)
    port = s.base.rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port}/mcp"  # the Host header the gateway expects
    # Worker to worker: the original client's address travels in a header only trusted on
    # the private socket (the test speaks that protocol to aim at each worker).
    local = {**ACCEPT, FORWARDED: "127.0.0.1:40000"}
    via = {
        path: httpx2.Client(transport=httpx2.HTTPTransport(uds=str(path)), timeout=30)
        for path in (first, second)
    }
    try:
        made = via[first].post(url, json=INIT, headers=local)
        session = made.headers["mcp-session-id"]
        assert int(session[-8:], 16) == int(first.stem[1:])  # tagged with its worker's pid
        headers = {**local, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        done = via[second].post(
            url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )
        assert done.status_code == 202, done.text
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "tickets___open_tickets", "arguments": {}},
        }
        for worker in (second, first, second):
            answer = _answer(via[worker].post(url, json=call, headers=headers))
            assert answer["result"]["structuredContent"]["tickets"][0]["id"] == "SUP-101", answer
        gone = via[second].post(
            url, json=call, headers={**headers, "mcp-session-id": session[:-8] + "0000ffff"}
        )
        assert gone.status_code == 404  # a session of no live worker: not found, as with one worker
    finally:
        for client in via.values():
            client.close()


def test_metrics_count_every_workers_calls(served: tuple[Served, Path]) -> None:
    s, data = served
    _workers(data)
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "tickets___open_tickets", "arguments": {}},
    }
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    call["params"]["_meta"] = meta  # type: ignore[index]
    modern = {
        **ACCEPT,
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "tickets___open_tickets",
    }
    before = _calls(s)
    for _ in range(20):  # a new connection each: the kernel spreads them over the workers
        with httpx2.Client(timeout=30) as http:
            assert "result" in _answer(http.post(s.mcp, json=call, headers=modern))
    assert _calls(s) == before + 20


def _calls(s: Served) -> float:
    with httpx2.Client(timeout=30) as http:
        text = http.get(f"{s.base}/metrics").text
    found = re.findall(r'switchboard_tool_calls_total\{[^}]*outcome="ok"[^}]*\} ([0-9.]+)', text)
    return sum(float(v) for v in found)


def test_workers_stop_with_the_parent(tmp_path: Path) -> None:
    (tmp_path / "switchboard.yaml").write_text(CONFIG)
    with serve(tmp_path / "data", tmp_path / "switchboard.yaml", args=["--workers", "2"]) as s:
        _workers(tmp_path / "data")
        deadline = time.monotonic() + 60
        while sum("Application startup complete" in line for line in s.output) < 2:
            # (a worker stopped while it still starts has nothing to drain: it just ends)
            assert time.monotonic() < deadline, "\n".join(s.output)
            time.sleep(0.1)
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=60) == 0
        s.reader.thread.join(10)  # every line the workers printed, read
        output = s.output
    assert sum("Application shutdown complete" in line for line in output) == 2, "\n".join(output)
    assert not (tmp_path / "data" / "run").exists()
