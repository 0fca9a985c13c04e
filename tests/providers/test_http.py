"""The targets' outbound HTTP client (gateway.egress) against real loopback sockets:
keep-alive, a stale keep-alive connection, bodies and their cap, decompression, deadlines,
header caps, request checks, redirects, cookies, proxies from the environment, and TLS
(the system's store, a target's CA bundle, client certificates)."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.abc
import anyio.streams.tls
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import TlsFiles
from gateway.core.errors import ConfigError, ToolExecutionError, UpstreamUnavailable
from gateway.egress import Answer, HttpClient, Reach

pytestmark = pytest.mark.anyio
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nhi"
Handler = Callable[[anyio.abc.ByteStream, int], Awaitable[None]]


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def read_request(client: anyio.abc.ByteStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await client.receive()
    head, _, rest = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            while len(rest) < length:
                rest += await client.receive()
    return data


async def request(
    client: HttpClient,
    method: str = "GET",
    path: str = "/x",
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    limit: int = 1 << 20,
    seconds: float = 5.0,
    follow: bool = False,
) -> Answer:
    return await client.request(
        method,
        f"{client.origin}{path}",
        headers or [],
        body,
        connect_seconds=5,
        deadline_seconds=seconds,
        limit=limit,
        follow_redirects=follow,
    )


@contextlib.asynccontextmanager
async def listening(handler: Handler) -> anyio.AsyncIterator[tuple[int, list[int]]]:
    """Serve ``handler`` (given each connection and its number) on a loopback port."""
    accepted: list[int] = []

    async def serve(client: anyio.abc.SocketStream) -> None:
        accepted.append(1)
        async with client:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await handler(client, len(accepted))

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        yield port, accepted
        tg.cancel_scope.cancel()


async def run(handler: Handler, test: Callable[[HttpClient, list[int]], Awaitable[None]]) -> None:
    async with listening(handler) as (port, accepted), HttpClient(f"http://127.0.0.1:{port}") as client:
        await test(client, accepted)


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

    async def test(client: HttpClient, accepted: list[int]) -> None:
        for _ in range(3):
            answer = await request(client)
            assert (answer.status, answer.reason, answer.body) == (200, "OK", b"hi")
        assert len(accepted) == 1
        assert seen[0].startswith(b"GET /x HTTP/1.1\r\n") and b"\r\nHost: 127.0.0.1:" in seen[0]

    await run(handler, test)


async def test_a_get_that_meets_a_stale_keep_alive_connection_is_sent_again_on_a_new_one() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(OK)
        if n == 1:  # the next request on this connection meets its end (an idle timeout's race)
            await read_request(client)
            return
        await keep_alive(client, n)

    async def test(client: HttpClient, accepted: list[int]) -> None:
        assert (await request(client)).body == b"hi"
        assert (await request(client)).body == b"hi"
        assert len(accepted) == 2

    await run(handler, test)


async def test_a_post_that_meets_a_closed_connection_is_never_sent_twice() -> None:
    posts: list[bytes] = []

    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(OK)
        posts.append(await read_request(client))  # then hang up without answering
        if n > 1:
            await client.send(OK)

    async def test(client: HttpClient, accepted: list[int]) -> None:
        assert (await request(client)).body == b"hi"
        with pytest.raises(UpstreamUnavailable, match="closed the connection before answering"):
            await request(client, "POST", body=b"{}")
        assert len(posts) == 1 and len(accepted) == 1

    await run(handler, test)


async def test_chunked_and_close_delimited_bodies() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await client.send(b"2\r\nde\r\n0\r\n\r\n")
        await read_request(client)  # on the same connection
        await client.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")

    async def test(client: HttpClient, accepted: list[int]) -> None:
        assert (await request(client)).body == b"abcde"
        assert (await request(client)).body == b"until the end"
        assert len(accepted) == 1

    await run(handler, test)


async def test_a_body_over_the_limit_is_cut_and_its_connection_dropped() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        while True:
            await read_request(client)
            size = 8_000_000 if n == 1 else 10  # more than the socket buffers hold: still arriving
            await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)

    async def test(client: HttpClient, accepted: list[int]) -> None:
        answer = await request(client, limit=100)
        assert answer.truncated and answer.body == b"x" * 100
        assert not (await request(client)).truncated
        assert len(accepted) == 2

    await run(handler, test)


async def test_a_compressed_answer_is_decompressed_and_a_gzip_bomb_is_cut_at_the_limit() -> None:
    small = gzip.compress(b'{"a": 1}')
    bomb = gzip.compress(b"0" * 20_000_000)  # about 20 KB on the wire, 20 MB inflated
    seen: list[bytes] = []

    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        seen.append(await read_request(client))
        head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        await client.send(head % len(small) + small)
        await read_request(client)
        await client.send(head % len(bomb) + bomb)

    async def test(client: HttpClient, accepted: list[int]) -> None:
        assert (await request(client)).body == b'{"a": 1}'
        cut = await request(client, limit=4096)
        assert cut.truncated and cut.body == b"0" * 4096
        assert b"gzip" in next(line for line in seen[0].split(b"\r\n") if line.startswith(b"Accept-Encoding"))

    await run(handler, test)


async def test_no_answer_in_time_is_refused_and_the_connection_is_not_reused() -> None:
    stop = anyio.Event()

    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        if n == 1:
            await stop.wait()
        await client.send(OK)
        await keep_alive(client, n)

    async def test(client: HttpClient, accepted: list[int]) -> None:
        with pytest.raises(UpstreamUnavailable, match=r"no answer from 127\.0\.0\.1:\d+ within 0\.2s"):
            await request(client, seconds=0.2)
        assert (await request(client)).body == b"hi"
        assert len(accepted) == 2
        stop.set()

    await run(handler, test)


async def test_a_slow_body_is_cut_off_by_the_same_deadline() -> None:
    stop = anyio.Event()

    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await stop.wait()

    async def test(client: HttpClient, accepted: list[int]) -> None:
        with pytest.raises(UpstreamUnavailable, match=r"within 0\.2s"):
            await request(client, seconds=0.2)
        stop.set()

    await run(handler, test)


async def test_head_interim_answers_and_empty_statuses() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")  # HEAD: no body follows
        await read_request(client)
        await client.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n!")
        await read_request(client)
        await client.send(b"HTTP/1.1 204 No Content\r\n\r\n")
        await keep_alive(client, n)

    async def test(client: HttpClient, accepted: list[int]) -> None:
        head = await request(client, "HEAD")
        assert head.status == 200 and head.body == b""
        created = await request(client, "POST", body=b"{}")
        assert created.status == 201 and created.body == b"!"
        empty = await request(client, "DELETE")
        assert empty.status == 204 and empty.body == b""

    await run(handler, test)


async def test_broken_answers_are_upstream_unavailable() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(
            b"SMTP ready\r\n\r\n" if n == 1 else b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"
        )

    async def test(client: HttpClient, accepted: list[int]) -> None:
        with pytest.raises(UpstreamUnavailable, match=r"is not HTTP/1\.1"):
            await request(client)
        with pytest.raises(UpstreamUnavailable, match="closed the connection before answering in full"):
            await request(client)

    await run(handler, test)


async def test_nothing_listening_is_a_connect_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    async with HttpClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(UpstreamUnavailable, match=f"cannot connect to 127.0.0.1:{port}"):
            await request(client)


async def test_request_line_and_header_injection_is_refused_before_sending() -> None:
    seen: list[bytes] = []

    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        seen.append(await read_request(client))
        await client.send(OK)

    async def test(client: HttpClient, accepted: list[int]) -> None:
        for path in ("/x HTTP/1.1\r\nHost: a\r\n\r\nDELETE /admin", "/x y", "/x\x00"):
            with pytest.raises(ToolExecutionError, match="characters a URL cannot"):
                await request(client, path=path)
        with pytest.raises(ToolExecutionError, match="not an HTTP method"):
            await request(client, "GET /")
        with pytest.raises(ToolExecutionError, match="holds a line break"):
            await request(client, headers=[("X", "a\r\nEvil: 1")])
        with pytest.raises(ToolExecutionError, match="not a header name"):
            await request(client, headers=[("X: y\r\nEvil", "1")])
        for framing in ("Content-Length", "transfer-encoding", "Connection"):
            with pytest.raises(ToolExecutionError, match="the gateway's to set"):
                await request(client, headers=[(framing, "0")])
        assert accepted == []
        await request(client, headers=[("Host", "api.example"), ("X-Name", "café €")])
        assert seen[0].count(b"Host:") == 1 and b"Host: api.example\r\n" in seen[0]
        assert "X-Name: café €".encode() in seen[0]

    await run(handler, test)


async def test_a_url_that_leaves_the_targets_origin_is_refused() -> None:
    async def test(client: HttpClient, accepted: list[int]) -> None:
        for url in (f"{client.origin}@evil.example/x", "http://evil.example/x", "/relative"):
            with pytest.raises(ToolExecutionError, match=r"is not on http://127\.0\.0\.1"):
                await client.request("GET", url, [], None, connect_seconds=1, deadline_seconds=1, limit=9)
        assert accepted == []

    await run(keep_alive, test)


async def test_the_request_target_is_sent_as_built() -> None:
    seen: list[bytes] = []

    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        seen.append(await read_request(client))
        await client.send(OK)

    async def test(client: HttpClient, accepted: list[int]) -> None:
        await request(client, path="/a;v=1/b%2Fc?q=%20x&r=1")
        assert seen[0].startswith(b"GET /a;v=1/b%2Fc?q=%20x&r=1 HTTP/1.1\r\n")

    await run(handler, test)


async def test_endless_headers_are_refused_without_holding_them() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(b"HTTP/1.1 200 OK\r\n")
        for i in range(10_000):
            await client.send(b"X-Filler-%d: " % i + b"x" * 1000 + b"\r\n")

    async def test(client: HttpClient, accepted: list[int]) -> None:
        with pytest.raises(UpstreamUnavailable, match=r"is not HTTP/1\.1"):
            await request(client)

    await run(handler, test)


async def test_one_endless_header_is_refused_without_holding_it() -> None:
    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        await read_request(client)
        await client.send(b"HTTP/1.1 200 OK\r\nX-Big: ")
        for _ in range(10_000):
            await client.send(b"x" * 1000)

    async def test(client: HttpClient, accepted: list[int]) -> None:
        with pytest.raises(UpstreamUnavailable, match=r"is not HTTP/1\.1"):
            await request(client)

    await run(handler, test)


async def test_an_answer_setting_a_cookie_never_sends_it_on_another_request() -> None:
    seen: list[bytes] = []

    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        while True:
            seen.append(await read_request(client))
            await client.send(
                b"HTTP/1.1 200 OK\r\nSet-Cookie: session=alice; Path=/\r\nContent-Length: 0\r\n\r\n"
            )

    async def test(client: HttpClient, accepted: list[int]) -> None:
        await request(client, headers=[("Authorization", "Bearer alice")])
        await request(client, headers=[("Authorization", "Bearer bob")])
        assert len(seen) == 2 and b"alice" not in seen[1] and b"Cookie" not in seen[1]

    await run(handler, test)


async def test_redirects_are_followed_for_get_within_the_origin_only() -> None:
    seen: list[bytes] = []

    async def handler(client: anyio.abc.ByteStream, n: int) -> None:
        while True:
            raw = await read_request(client)
            seen.append(raw)
            line = raw.split(b"\r\n")[0]
            if line.startswith(b"GET /old "):
                await client.send(b"HTTP/1.1 301 Moved\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n")
            elif line.startswith(b"GET /away "):
                where = b"http://localhost.invalid/steal"
                await client.send(
                    b"HTTP/1.1 302 Found\r\nLocation: " + where + b"\r\nContent-Length: 0\r\n\r\n"
                )
            elif line.startswith(b"GET /loop "):
                await client.send(b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n")
            elif line.startswith(b"POST "):
                await client.send(b"HTTP/1.1 307 Again\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n")
            else:
                await client.send(OK)

    async def test(client: HttpClient, accepted: list[int]) -> None:
        key = [("X-Api-Key", "secret")]
        assert (await request(client, path="/old", headers=key, follow=True)).body == b"hi"
        assert seen[-1].startswith(b"GET /new ") and b"X-Api-Key: secret" in seen[-1]
        away = await request(client, path="/away", headers=key, follow=True)  # another origin
        assert away.status == 302 and len(seen) == 3
        posted = await request(client, "POST", path="/old", body=b"{}", follow=True)
        assert posted.status == 307 and len(seen) == 4
        assert (await request(client, path="/old")).status == 301  # not asked to follow
        with pytest.raises(UpstreamUnavailable, match="redirected more than 5 times"):
            await request(client, path="/loop", follow=True)

    await run(handler, test)


async def test_the_proxy_named_by_the_environment_is_used_unless_no_proxy_names_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    through: list[bytes] = []

    async def proxy(client: anyio.abc.ByteStream, n: int) -> None:
        through.append(await read_request(client))
        await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied")

    async with listening(proxy) as (proxy_port, _), listening(keep_alive) as (port, direct):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        async with HttpClient(f"http://127.0.0.1:{port}") as client:
            assert (await request(client, path="/y?z=1")).body == b"proxied"
        assert through[0].startswith(f"GET http://127.0.0.1:{port}/y?z=1 HTTP/1.1\r\n".encode())
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with HttpClient(f"http://127.0.0.1:{port}") as client:
            assert (await request(client)).body == b"hi"
        assert len(through) == 1 and len(direct) == 1


async def test_a_tenants_upstream_never_goes_through_the_environments_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The proxy would connect wherever the tenant's URL says (metadata, private hosts): a
    tenant's client connects itself, and its address is checked (loopback stands for them here)."""
    through: list[bytes] = []

    async def proxy(client: anyio.abc.ByteStream, n: int) -> None:
        through.append(await read_request(client))
        await client.send(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied")

    async with listening(proxy) as (proxy_port, _):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        async with HttpClient("http://127.0.0.1:9", reach=Reach()) as client:
            with pytest.raises(UpstreamUnavailable, match="private or reserved address"):
                await request(client, path="/latest/meta-data/")
    assert through == []


def certificate(
    tmp: Path, name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None
) -> tuple[Path, Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``name`` (a CA of its own unless ``issuer`` signs it) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    signer_cert, signer_key = issuer if issuer is not None else (None, key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_cert.subject if signer_cert is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .sign(signer_key, hashes.SHA256())
    )
    cert_file, key_file = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file, cert, key


@contextlib.asynccontextmanager
async def tls_server(context: ssl.SSLContext) -> anyio.AsyncIterator[tuple[int, list[str]]]:
    """An HTTPS server on loopback; yields its port and the client certificates' names it saw."""
    clients: list[str] = []

    async def serve(client: anyio.abc.SocketStream) -> None:
        async with client:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError, OSError):
                tls = await anyio.streams.tls.TLSStream.wrap(client, server_side=True, ssl_context=context)
                peer = tls.extra(anyio.streams.tls.TLSAttribute.peer_certificate)
                clients.append(str(dict(x[0] for x in peer["subject"])["commonName"]) if peer else "")
                await read_request(tls)
                await tls.send(OK)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        yield port, clients
        tg.cancel_scope.cancel()


async def test_tls_is_verified_against_the_system_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file, _, _ = certificate(tmp_path, "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    async with tls_server(server) as (port, _):
        async with HttpClient(f"https://localhost:{port}") as untrusting:
            with pytest.raises(UpstreamUnavailable, match=f"TLS with localhost:{port} failed"):
                await request(untrusting)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        async with HttpClient(f"https://localhost:{port}") as trusting:
            assert (await request(trusting)).body == b"hi"


async def test_a_targets_ca_bundle_and_client_certificate_make_mutual_tls(tmp_path: Path) -> None:
    ca_file, _, ca, ca_key = certificate(tmp_path, "switchboard-test-ca")
    server_cert, server_key, _, _ = certificate(tmp_path, "localhost", (ca, ca_key))
    client_cert, client_key, _, _ = certificate(tmp_path, "gateway-client", (ca, ca_key))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_file))
    server.load_cert_chain(server_cert, server_key)
    server.verify_mode = ssl.CERT_REQUIRED
    async with tls_server(server) as (port, clients):
        origin = f"https://localhost:{port}"
        async with HttpClient(origin, tls=TlsFiles(ca_bundle=str(ca_file))) as without_certificate:
            with pytest.raises(UpstreamUnavailable, match="localhost"):
                await request(without_certificate)
        mutual = TlsFiles(ca_bundle=str(ca_file), client_cert=str(client_cert), client_key=str(client_key))
        async with HttpClient(origin, tls=mutual) as client:
            assert (await request(client)).body == b"hi"
        assert clients[-1] == "gateway-client"


async def test_tls_files_that_cannot_be_loaded_are_a_config_error_naming_the_field(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    client = HttpClient("https://localhost:1", tls=TlsFiles(ca_bundle=missing), field="targets.api.tls")
    with pytest.raises(ConfigError, match=r"targets\.api\.tls\.ca_bundle: cannot load .*nope\.pem"):
        await client.open()
    bad = HttpClient(
        "https://localhost:1", tls=TlsFiles(client_cert=missing, client_key=missing), field="targets.api.tls"
    )
    with pytest.raises(ConfigError, match=r"targets\.api\.tls\.client_cert: cannot load"):
        await bad.open()


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValueError, match="`client_cert` and `client_key` together"):
        TlsFiles(client_cert="/etc/cert.pem")
