"""Real HTTP peers on loopback for tests: any ASGI app served by uvicorn in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serve_app(app: Any, unix: str | None = None) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port), or on the Unix socket ``unix``, until the block
    ends; yields the base URL (or the socket's path)."""
    if unix is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(unix)
        where = unix
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        where = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    started = threading.Event()

    def run() -> None:
        async def main() -> None:
            original = server.startup

            async def startup(sockets: Any = None) -> None:
                await original(sockets=sockets)
                started.set()

            server.startup = startup  # type: ignore[method-assign]
            await server.serve(sockets=[sock])

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("test server did not start")
    try:
        yield where
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def run_until_stopped(app: Any, port: int) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` in this process, printing ``ready`` once listening
    (fixture servers run as ``python -m ...`` by tests that wait for that line)."""
    runner = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    started = runner.startup

    async def startup(sockets: Any = None) -> None:
        await started(sockets=sockets)
        print("ready", flush=True)

    runner.startup = startup  # type: ignore[method-assign]
    runner.run()
