"""Worker to worker: a request passed over a worker's private Unix socket arrives whole,
with the original client's address in the one header believed there, and streams back."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from starlette.types import Receive, Scope, Send

from gateway.serving import FORWARDED_CLIENT, Forwarder, forwarded_client, session_owner, tag_sessions
from tests.support.servers import serve_app

pytestmark = pytest.mark.anyio
SEEN: list[dict[str, Any]] = []


LEFT = threading.Event()  # (the peer runs in a thread of its own)


async def peer(scope: Scope, receive: Receive, send: Send) -> None:
    """The other worker: records what it got (after restoring the client), streams an answer;
    on /stream, streams until its client leaves."""
    if scope["path"] == "/stream":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        async with anyio.create_task_group() as tg:

            async def ping() -> None:
                while True:
                    await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                    await anyio.sleep(0.02)

            tg.start_soon(ping)
            while (await receive())["type"] != "http.disconnect":
                pass
            LEFT.set()
            tg.cancel_scope.cancel()
        return
    message = await receive()
    forwarded_client(scope, scope["server"][0])
    SEEN.append({"client": scope["client"], "headers": scope["headers"], "body": message.get("body", b"")})
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    for part in (b"data: one\n\n", b"data: two\n\n"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def worker_socket() -> Iterator[Path]:
    path = Path(f"/tmp/sb-test-{uuid.uuid4().hex[:8]}.sock")
    try:
        with serve_app(peer, unix=str(path)):
            yield path
    finally:
        path.unlink(missing_ok=True)


async def _forward(path: Path, scope: dict[str, Any], receive: Any) -> list[dict[str, Any]]:
    """Pass one request through a Forwarder (1 KB limit); returns what it sent back."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    forward = Forwarder(max_body=1024)
    try:
        await forward(path, scope, receive, send)
    finally:
        await forward.aclose()
    return sent


async def test_forwarded_request_arrives_whole_and_streams_back(worker_socket: Path) -> None:
    SEEN.clear()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "client": ("203.0.113.7", 51000),
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"mcp-session-id", b"abc"),
            (FORWARDED_CLIENT.encode(), b"127.0.0.1:1"),  # a client's forgery: dropped
            (b"content-length", b"11"),
        ],
    }
    chunks = [
        {"type": "http.request", "body": b"hello ", "more_body": True},
        {"type": "http.request", "body": b"world"},
    ]

    async def receive() -> dict[str, Any]:
        if chunks:
            return chunks.pop(0)
        await anyio.sleep_forever()  # the client stays: the forwarder's watch waits
        raise AssertionError

    sent = await _forward(worker_socket, scope, receive)
    (got,) = SEEN
    assert got["body"] == b"hello world"
    assert got["client"] == ("203.0.113.7", 51000)  # the original client, not the forgery
    assert [v for k, v in got["headers"] if k == FORWARDED_CLIENT.encode()] == [b"203.0.113.7:51000"]
    assert (b"mcp-session-id", b"abc") in got["headers"] and (b"host", b"127.0.0.1:8080") in got["headers"]
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"data: one\n\ndata: two\n\n"


def test_forwarded_address_is_believed_only_on_the_own_socket() -> None:
    scope: dict[str, Any] = {
        "server": ("127.0.0.1", 8080),
        "client": ("10.0.0.9", 1),
        "headers": [(FORWARDED_CLIENT.encode(), b"127.0.0.1:5")],
    }
    forwarded_client(scope, "/run/w1.sock")
    assert scope["client"] == ("10.0.0.9", 1)  # over TCP: ignored
    scope["server"] = ("/run/w1.sock", None)
    forwarded_client(scope, "/run/w1.sock")
    assert scope["client"] == ("127.0.0.1", 5)


def test_session_ids_name_their_worker(tmp_path: Path) -> None:
    import mcp.server.streamable_http_manager as manager

    original = manager.uuid4  # type: ignore[attr-defined]
    try:
        tag_sessions()
        made = manager.uuid4().hex  # type: ignore[attr-defined]
    finally:
        manager.uuid4 = original  # type: ignore[attr-defined]
    assert len(made) == 32 and int(made[-8:], 16) == os.getpid()
    owner = session_owner(tmp_path)
    assert owner(made) is None  # this process's own
    other = made[:-8] + f"{os.getpid() + 1:08x}"
    assert owner(other) is None  # no such worker socket: the SDK answers 404
    (tmp_path / f"w{os.getpid() + 1}.sock").touch()
    assert owner(other) == tmp_path / f"w{os.getpid() + 1}.sock"
    assert owner("not-hex-at-all!") is None


async def test_a_body_over_the_limit_is_refused_before_it_is_buffered(worker_socket: Path) -> None:
    SEEN.clear()
    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": [], "client": ("127.0.0.1", 1)}
    chunks = iter([{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 100)

    async def receive() -> dict[str, Any]:
        return next(chunks)

    sent = await _forward(worker_socket, scope, receive)
    assert sent[0]["status"] == 413 and b"too large" in sent[1]["body"]
    assert SEEN == []  # nothing reached the other worker
    assert len(list(chunks)) == 98  # it stopped reading at the first chunk past the limit


async def test_the_client_leaving_ends_the_forwarded_stream(worker_socket: Path) -> None:
    """A forwarded listen stream whose client goes away is ended at its owner too."""
    scope = {"type": "http", "method": "GET", "path": "/stream", "headers": [], "client": ("127.0.0.1", 1)}
    gone = anyio.Event()
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": b""}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if sum(1 for m in sent if m.get("body")) == 3:
            gone.set()  # the client leaves after a few pings

    forward = Forwarder(max_body=1024)
    try:
        with anyio.fail_after(10):
            await forward(worker_socket, scope, receive, send)
        # the owner saw its client (the forwarder) go
        assert await anyio.to_thread.run_sync(LEFT.wait, 10)
    finally:
        await forward.aclose()
