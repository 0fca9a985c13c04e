"""The OpenAPI targets' HTTP/1.1 pool against real sockets: keep-alive, a peer that hangs
up on an idle connection, the ways a body can end, limits, deadlines, HEAD, interim answers,
broken answers and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpcore2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.providers._http1 import Http1Pool, _Connection

pytestmark = pytest.mark.anyio
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nhi"
Handler = Callable[[anyio.abc.ByteStream, int], Awaitable[None]]


async def read_request(client: anyio.abc.ByteStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await client.receive()
    return data


async def request(pool: Http1Pool, method: str = "GET", limit: int = 1 << 20, seconds: float = 5.0) -> object:
    return await pool.request(method, "/x", [], None, connect_seconds=5, read_seconds=seconds, limit=limit)


async def run(handler: Handler, test: Callable[[Http1Pool, list[int]], Awaitable[None]]) -> None:
    """Serve ``handler`` (given each connection and its number) while ``test`` uses a pool."""
    accepted: list[int] = []

    async def serve(client: anyio.abc.SocketStream) -> None:
        accepted.append(1)
        async with client:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await handler(client, len(accepted))

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    pool = Http1Pool("http", "127.0.0.1", port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            await test(pool, accepted)
        finally:
            await pool.aclose()
            tg.cancel_scope.cancel()


async def keep_alive(client: anyio.abc.ByteStream, n: int) -> None:
    while True:
        await read_request(client)
        await client.send(OK)


async def test_connections_are_kept_alive_and_the_host_header_is_sent() -> None:
    seen: list[bytes] = []

    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        while True:
            seen.append(await read_request(client))
            await client.send(OK)

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        for _ in range(3):
            answer = await request(pool)
            assert (answer.status, answer.reason, answer.body) == (200, "OK", b"hi")  # type: ignore[attr-defined]
        assert len(accepted) == 1
        assert seen[0].startswith(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:")

    await run(handler, test)


async def test_a_connection_the_peer_closed_while_idle_is_replaced() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(OK)
        if n > 1:
            await keep_alive(client, n)
        # the first connection is hung up on while idle (as a server's idle timeout does)

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        assert (await request(pool)).body == b"hi"  # type: ignore[attr-defined]
        await anyio.sleep(0.2)  # the FIN reaches this end of loopback
        assert (await request(pool)).body == b"hi"  # type: ignore[attr-defined]
        assert len(accepted) == 2

    await run(handler, test)


async def test_chunked_and_close_delimited_bodies() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await client.send(b"2\r\nde\r\n0\r\n\r\n")
        await read_request(client)  # on the same connection
        await client.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        assert (await request(pool)).body == b"abcde"  # type: ignore[attr-defined]
        assert (await request(pool)).body == b"until the end"  # type: ignore[attr-defined]
        assert len(accepted) == 1

    await run(handler, test)


async def test_a_body_over_the_limit_is_cut_and_its_connection_dropped() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        while True:
            await read_request(client)
            await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + b"x" * 10000)

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        answer = await request(pool, limit=100)
        assert answer.truncated and answer.body == b"x" * 100  # type: ignore[attr-defined]
        assert not (await request(pool)).truncated  # type: ignore[attr-defined]
        assert len(accepted) == 2

    await run(handler, test)


async def test_no_answer_in_time_is_a_read_timeout_and_the_connection_is_not_reused() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        if n == 1:
            await anyio.sleep(5)
        await client.send(OK)
        await keep_alive(client, n)

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        with pytest.raises(httpcore2.ReadTimeout, match=r"within 0\.2s"):
            await request(pool, seconds=0.2)
        assert (await request(pool)).body == b"hi"  # type: ignore[attr-defined]
        assert len(accepted) == 2

    await run(handler, test)


async def test_head_interim_answers_and_empty_statuses() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")  # HEAD: no body follows
        await read_request(client)
        await client.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n!")
        await read_request(client)
        await client.send(b"HTTP/1.1 204 No Content\r\n\r\n")
        await anyio.sleep(1)

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        head = await request(pool, "HEAD")
        assert head.status == 200 and head.body == b""  # type: ignore[attr-defined]
        created = await request(pool, "POST")
        assert created.status == 201 and created.body == b"!"  # type: ignore[attr-defined]
        empty = await request(pool, "DELETE", seconds=0.5)
        assert empty.status == 204 and empty.body == b""  # type: ignore[attr-defined]

    async def one_connection(client: anyio.abc.ByteStream, n: int) -> None:
        if n == 1:
            await handler(client, n)
        else:  # HEAD's connection is not reused: the rest arrive on a second one
            await read_request(client)
            await client.send(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n!"
            )
            await read_request(client)
            await client.send(b"HTTP/1.1 204 No Content\r\n\r\n")
            await anyio.sleep(1)

    await run(one_connection, test)


async def test_broken_answers_and_header_injection_are_refused() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(
            b"SMTP ready\r\n\r\n" if n == 1 else b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"
        )

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        with pytest.raises(httpcore2.RemoteProtocolError, match=r"not HTTP/1\.1"):
            await request(pool)
        with pytest.raises(httpcore2.ReadError, match="closed the connection"):
            await request(pool)
        with pytest.raises(httpcore2.LocalProtocolError, match="line break"):
            await pool.request(
                "GET", "/", [("X", "a\r\nEvil: 1")], None, connect_seconds=1, read_seconds=1, limit=9
            )

    await run(handler, test)


async def test_nothing_listening_is_a_connect_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    with pytest.raises(httpcore2.ConnectError, match=f"127.0.0.1:{port}"):
        await request(Http1Pool("http", "127.0.0.1", port))


def _certificate(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


async def test_tls_is_verified_against_the_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = _certificate(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(client: anyio.abc.SocketStream) -> None:
        async with client:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError):
                tls = await anyio.streams.tls.TLSStream.wrap(client, server_side=True, ssl_context=server)
                await read_request(tls)
                await tls.send(OK)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        with pytest.raises(httpcore2.ConnectError, match="TLS with localhost"):
            await request(Http1Pool("https", "localhost", port))  # not trusted
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        trusting = Http1Pool("https", "localhost", port)
        assert (await request(trusting)).body == b"hi"  # type: ignore[attr-defined]
        await trusting.aclose()
        tg.cancel_scope.cancel()


async def test_an_answer_is_settled_once_and_extra_bytes_end_the_connection() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        while True:
            await read_request(client)
            if n == 1:  # a second answer to one request, in the same packet
                await client.send(OK + b"HTTP/1.1 404 Nope\r\nContent-Length: 3\r\n\r\nbye")
            elif n == 2:  # an interim answer before the real one, to HEAD
                await client.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
                await anyio.sleep(0.05)
                await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            else:  # a body that ends with the connection, though not chunked
                await client.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc")
                return

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        first = await request(pool)
        assert (first.status, first.reason, first.body) == (200, "OK", b"hi")  # type: ignore[attr-defined]
        head = await request(pool, "HEAD")  # on a new connection: the first is not trusted
        assert head.status == 200 and head.body == b""  # type: ignore[attr-defined]
        assert (await request(pool)).body == b"abc"  # type: ignore[attr-defined]
        assert len(accepted) == 3

    await run(handler, test)


async def test_endless_headers_are_refused_without_holding_them() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(b"HTTP/1.1 200 OK\r\n")
        for _ in range(10_000):
            await client.send(b"X-Filler: " + b"x" * 1000 + b"\r\n")

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        with pytest.raises(httpcore2.RemoteProtocolError, match="more than 65536 bytes of headers"):
            await request(pool)

    await run(handler, test)


async def test_what_cannot_be_a_request_line_or_header_is_refused_before_sending() -> None:
    seen: list[bytes] = []

    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        seen.append(await read_request(client))
        await client.send(OK)

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        for target in ("/x HTTP/1.1\r\nHost: a\r\n\r\nDELETE /admin", "/x y", "/x\x00"):
            with pytest.raises(httpcore2.LocalProtocolError, match="characters a URL cannot"):
                await pool.request("GET", target, [], None, connect_seconds=1, read_seconds=1, limit=9)
        with pytest.raises(httpcore2.LocalProtocolError, match="not an HTTP method"):
            await pool.request("GET /", "/x", [], None, connect_seconds=1, read_seconds=1, limit=9)
        with pytest.raises(httpcore2.LocalProtocolError, match="the gateway's to set"):
            await pool.request(
                "GET", "/x", [("Content-Length", "0")], None, connect_seconds=1, read_seconds=1, limit=9
            )
        assert accepted == []
        headers = [("Host", "api.example"), ("X-Name", "café €")]
        await pool.request("GET", "/x", headers, None, connect_seconds=1, read_seconds=1, limit=9)
        assert seen[0].count(b"Host:") == 1 and b"Host: api.example\r\n" in seen[0]
        assert "X-Name: café €".encode() in seen[0]

    await run(handler, test)


async def test_one_endless_header_is_refused_without_holding_it() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(b"HTTP/1.1 200 OK\r\nX-Big: ")
        for _ in range(10_000):
            await client.send(b"x" * 1000)

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        with pytest.raises(httpcore2.RemoteProtocolError, match="more than 65536 bytes of headers"):
            await request(pool)

    await run(handler, test)


async def test_trailers_are_not_the_answers_headers() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n")
        await client.send(b"2\r\nhi\r\n0\r\nX-Late: 2\r\n\r\n")  # a trailer after the body
        await anyio.sleep(1)

    async def test(pool: Http1Pool, accepted: list[int]) -> None:
        answer = await request(pool)
        assert answer.body == b"hi" and answer.headers == [  # type: ignore[attr-defined]
            (b"Transfer-Encoding", b"chunked"),
            (b"X-A", b"1"),
        ]

    await run(handler, test)


async def test_a_large_read_of_short_headers_and_a_long_body_is_not_a_long_header() -> None:
    """uvloop reads up to 256 KiB at once: short headers and a long body in one read."""
    body = b"y" * 200_000
    conn = _Connection()
    conn._reset(1 << 20, head=False)  # as an exchange begins
    waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    conn.waiter = waiter
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + body)
    answer = await waiter
    assert answer.status == 200 and answer.body == body and conn.reusable
