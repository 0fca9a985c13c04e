"""The forwarder's inbound side, run on the host as its own process (standard library only): the
socket handed down (``--inbound FD``, bubblewrap) or made at a path (``--inbound-path``, gVisor)
is piped to the app on 127.0.0.1:PORT; a socket that cannot be made, or arguments out of shape,
end it at once saying why. Everything stays on the host's loopback and in a temporary folder."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from sandbox._forward import APP_NOT_LISTENING

pytestmark = pytest.mark.anyio

FORWARD = Path(__file__).resolve().parents[2] / "sandbox" / "_forward.py"


async def _exchange(path: Path, data: bytes) -> bytes:
    """Connect to the UNIX socket ``path`` (once it is there), send ``data`` (if any), read to the
    end."""
    with anyio.fail_after(30):
        while True:
            try:
                stream = await anyio.connect_unix(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                await anyio.sleep(0.02)
        async with stream:
            if data:
                await stream.send(data)
                await stream.send_eof()
            said = b""
            async for chunk in stream:
                said += chunk
            return said


async def test_the_inbound_socket_made_at_a_path_reaches_the_app(tmp_path: Path) -> None:
    async def app(client: SocketStream) -> None:  # the app, on loopback
        async with client:
            await client.send(b"app: " + await client.receive())

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    path = tmp_path / "app.sock"
    argv = [sys.executable, "-I", str(FORWARD), "--inbound-path", str(path), str(port)]
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, app)
        forwarder = await anyio.open_process(argv)
        try:
            assert await _exchange(path, b"hello") == b"app: hello"
            assert await _exchange(path, b"again") == b"app: again"  # (each connection its own)
            again = await anyio.run_process([*argv[:-1], "9"], check=False)  # something is there
            assert again.returncode == 1 and b"cannot listen at" in again.stderr
        finally:
            forwarder.kill()
            await forwarder.aclose()
        tasks.cancel_scope.cancel()


async def test_an_app_not_listening_is_answered_with_a_502(tmp_path: Path) -> None:
    with socket.socket() as taken:  # a port nothing listens on
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
    path = tmp_path / "app.sock"
    argv = [sys.executable, "-I", str(FORWARD), "--inbound-path", str(path), str(port)]
    forwarder = await anyio.open_process(argv)
    try:
        said = await _exchange(path, b"")  # (answered at once, and closed)
        assert said.startswith(b"HTTP/1.1 502 ") and said.endswith(APP_NOT_LISTENING)
    finally:
        forwarder.kill()
        await forwarder.aclose()


@pytest.mark.parametrize(
    "arguments",
    [
        ["--inbound-path", "app.sock", "8080"],  # (a path inside is absolute)
        ["--inbound-path", "/work/app.sock", "http"],
        ["--inbound-path", "/work/app.sock", "8080", "--outbound", "7001"],
        ["--inbound", "/work/app.sock", "8080"],  # (a descriptor is a number)
        ["--inbound-path", "/work/app.sock", "8080", "--"],  # (-- and no command)
    ],
)
async def test_arguments_out_of_shape_are_refused_with_the_usage(arguments: list[str]) -> None:
    done = await anyio.run_process([sys.executable, "-I", str(FORWARD), *arguments], check=False)
    assert done.returncode == 2 and b"--inbound-path PATH PORT" in done.stderr
