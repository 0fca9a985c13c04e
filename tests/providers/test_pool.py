"""The OpenAPI pool's cheaper idle check still notices a peer that closed the connection."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from gateway.providers._pool import _Stream, connection_pool

pytestmark = pytest.mark.anyio
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nhi"


async def test_a_connection_the_peer_closed_while_idle_is_replaced() -> None:
    accepted: list[int] = []
    hang_up, hung_up = anyio.Event(), anyio.Event()

    async def serve_once(client: anyio.abc.SocketStream) -> None:
        """Answer one request as keep-alive; the first connection is then hung up on while idle
        (as a server's idle timeout does)."""
        accepted.append(1)
        async with client:
            await client.receive()
            await client.send(ANSWER)
            if len(accepted) == 1:
                await hang_up.wait()
        hung_up.set()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg, connection_pool(keepalive_expiry=30.0) as pool:
        tg.start_soon(listener.serve, serve_once)
        url = f"http://127.0.0.1:{port}/"
        assert (await pool.request("GET", url)).content == b"hi"
        (connection,) = pool.connections
        stream = connection._connection._network_stream  # type: ignore[attr-defined]
        assert isinstance(stream, _Stream)
        assert not stream.get_extra_info("is_readable")  # idle, open
        hang_up.set()
        await hung_up.wait()
        for _ in range(500):  # the FIN reaches this end of loopback within moments
            if stream.get_extra_info("is_readable"):
                break
            await anyio.sleep(0.01)
        assert stream.get_extra_info("is_readable")
        assert (await pool.request("GET", url)).content == b"hi"  # on a new connection, no error
        assert len(accepted) == 2
        tg.cancel_scope.cancel()
