"""The lab of the egress-proxy tests: a network namespace of their own, and what runs in it.

Inside it (``ip netns exec NS python -m tests.sandbox._proxy_in_netns ...``), so that every
connection stays in that namespace:

- ``proxy SOCKET CONFIG``: the egress proxy on a UNIX socket (the filesystem is shared, so the test
  reaches it from the host), its resolver a fixed table, each decision printed as a JSON line;
- ``listen CERT KEY ADDRESS:PORT:KIND...``: listeners (``http`` answers who it is, ``echo`` sends
  a banner and echoes upper-cased, ``tls`` is HTTPS with the given certificate).

Each prints ``ready`` once it serves and ends when its standard input closes (the test's end).
On the host, ``open_lab`` makes the namespace (public-looking and private addresses on its
loopback), starts both in it, and removes everything at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import ipaddress
import json
import os
import secrets
import socket
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandbox._proxy import EgressDecision, EgressPolicy, EgressProxy

ROOT = Path(__file__).resolve().parents[2]


async def proxy(path: str, config: str) -> None:
    settings = json.loads(config)
    names: dict[str, list[str]] = settings["names"]
    refuse = tuple(
        (str(entry[0]), int(entry[1])) if isinstance(entry, list) else ipaddress.ip_network(entry)
        for entry in settings.get("refuse", ())
    )
    policy = EgressPolicy(
        tuple(settings.get("allow", ())),
        tuple(settings.get("deny", ())),
        refuse,
        refuse_local=bool(settings.get("refuse_local", False)),  # (the "public" listeners are local here)
    )

    async def resolve(host: str) -> Sequence[str]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return names[host]

    def log(decision: EgressDecision) -> None:
        print(json.dumps(dataclasses.asdict(decision)), flush=True)

    options = {key: settings[key] for key in ("idle_seconds", "connect_seconds") if key in settings}
    async with EgressProxy(path, policy, resolver=resolve, log=log, **options):
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.buffer.read)


def _head(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _http(connection: socket.socket, where: str) -> None:
    lines = _head(connection).split(b"\r\n")
    host = next((line[5:].strip() for line in lines if line.lower().startswith(b"host:")), b"")
    body = f"hello from {where}: {lines[0].decode(errors='replace')} host={host.decode()}\n".encode()
    connection.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _echo(connection: socket.socket, where: str) -> None:
    connection.sendall(f"banner from {where}\n".encode())
    while chunk := connection.recv(65536):
        connection.sendall(chunk.upper())


def _serve(listener: socket.socket, where: str, handle: Callable[[socket.socket, str], None]) -> None:
    while True:
        connection, _ = listener.accept()

        def one(connection: socket.socket = connection) -> None:
            with connection, contextlib.suppress(OSError):
                handle(connection, where)

        threading.Thread(target=one, daemon=True).start()


def listen(cert: str, key: str, specs: list[str]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def https(connection: socket.socket, where: str) -> None:
        with context.wrap_socket(connection, server_side=True) as secured:
            _http(secured, where)

    kinds = {"http": _http, "echo": _echo, "tls": https}
    for spec in specs:
        address, port, kind = spec.rsplit(":", 2)
        literal = ipaddress.ip_address(address.strip("[]"))
        listener = socket.socket(socket.AF_INET6 if literal.version == 6 else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((str(literal), int(port)))
        listener.listen(64)
        threading.Thread(
            target=_serve, args=(listener, f"{literal}:{port}", kinds[kind]), daemon=True
        ).start()
    print("ready", flush=True)
    sys.stdin.buffer.read()


# -- on the host: the namespace, and these processes in it --------------------------------------
HELPER = "tests.sandbox._proxy_in_netns"
PUBLIC, PUBLIC6 = "93.184.216.34", "2606:2800:220:1::10"  # only ever on the test namespace's loopback
ADDRESSES = (
    f"{PUBLIC}/32",
    "10.0.0.1/32",
    "192.168.1.1/32",
    "169.254.169.254/32",
    f"{PUBLIC6}/128",
    "fd00:ec2::254/128",
)
LISTENERS = (
    f"{PUBLIC}:80:http",
    f"{PUBLIC}:443:tls",
    f"{PUBLIC}:7:echo",
    f"{PUBLIC}:8443:http",  # where "the gateway" listens
    f"[{PUBLIC6}]:7:echo",
    "10.0.0.1:80:http",
    "10.0.0.1:7:echo",
    "192.168.1.1:80:http",
    "169.254.169.254:80:http",
    "127.0.0.1:80:http",
    "[::1]:80:http",
    "[fd00:ec2::254]:80:http",
)
PRIVATE_URLS = (
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/",
    "http://127.0.0.1/",
    "http://[::1]/",
    "http://[fd00:ec2::254]/",
)
CONFIG = {
    "names": {
        "www.example.test": [PUBLIC],
        "v6.example.test": [PUBLIC6],
        "intranet.example.test": ["10.0.0.1"],
        "split.example.test": [PUBLIC, "192.168.1.1"],
        "denied.example.test": [PUBLIC],
        "elsewhere.test": [PUBLIC],
    },
    # private addresses on the allow list too: it never opens them
    "allow": [
        "*.example.test",
        PUBLIC,
        PUBLIC6,
        "10.0.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "127.0.0.1",
        "::1",
        "fd00:ec2::254",
        "::ffff:10.0.0.1",
    ],
    "deny": ["denied.example.test"],
    "refuse": [["0.0.0.0", 8443]],  # the gateway listens on every address of its host, port 8443
}


async def ip(*argv: str) -> None:
    done = await anyio.run_process(["ip", *argv], check=False)
    assert done.returncode == 0, f"ip {' '.join(argv)}: {done.stderr.decode().strip()}"


@contextlib.asynccontextmanager
async def running(log: Path, *argv: str | Path) -> AsyncIterator[BufferedByteReceiveStream]:
    """A helper process until the block ends (its standard input closed, then killed if need be);
    its standard output once it has said ``ready``."""
    with log.open("wb") as errors:
        process = await anyio.open_process([str(a) for a in argv], cwd=ROOT, stderr=errors)
    try:
        assert process.stdout is not None
        output = BufferedByteReceiveStream(process.stdout)
        try:
            with anyio.fail_after(30):
                ready = await output.receive_until(b"\n", 65536)
        except (anyio.IncompleteRead, TimeoutError):
            ready = b""
        assert ready == b"ready", f"{argv[-1]} did not start: {await anyio.Path(log).read_text()}"
        yield output
    finally:
        with anyio.CancelScope(shield=True):
            assert process.stdin is not None
            await process.stdin.aclose()
            with anyio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
            await process.aclose()


@dataclass
class Proxy:
    socket: Path
    output: BufferedByteReceiveStream

    async def decision(self) -> dict[str, Any]:
        with anyio.fail_after(10):
            return dict(json.loads(await self.output.receive_until(b"\n", 65536)))


@dataclass
class Lab:
    namespace: str
    directory: Path
    certificate: Path
    proxy: Proxy

    def start_proxy(self, name: str, **settings: Any) -> contextlib.AbstractAsyncContextManager[Proxy]:
        return proxy_in(self.namespace, self.directory / name, {**CONFIG, **settings})

    async def inside(self, *argv: str) -> tuple[int, str]:
        """Run ``argv`` in the namespace: its exit code and output."""
        done = await anyio.run_process(["ip", "netns", "exec", self.namespace, *argv], check=False)
        return done.returncode, (done.stdout + done.stderr).decode()


@contextlib.asynccontextmanager
async def proxy_in(namespace: str, path: Path, config: dict[str, Any]) -> AsyncIterator[Proxy]:
    argv = ("ip", "netns", "exec", namespace, sys.executable, "-m", HELPER, "proxy", path, json.dumps(config))
    async with running(path.with_suffix(".log"), *argv) as output:
        yield Proxy(path, output)
    assert not await anyio.Path(path).exists()  # (closing removed the socket file)


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for www.example.test: the listener's, and the sandbox's only CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.example.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, secret = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    secret.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, secret


async def sweep_namespaces() -> None:
    """Namespaces that a killed test run left behind (each is named after its process)."""
    listed = await anyio.run_process(["ip", "netns", "list"])
    for line in listed.stdout.decode().splitlines():
        name = line.split(" ")[0]
        owner = name.split("-")[1] if name.startswith("sbproxy-") else ""
        if owner.isdigit() and not await anyio.Path(f"/proc/{owner}").exists():
            await ip("netns", "del", name)


@contextlib.asynccontextmanager
async def open_lab(tmp_path: Path) -> AsyncIterator[Lab]:
    """A network namespace of the test's own, with public-looking and private addresses on its
    loopback, listeners on them, and the egress proxy running in it; removed at the end, whatever
    happened."""
    await sweep_namespaces()
    namespace = f"sbproxy-{os.getpid()}-{secrets.token_hex(3)}"
    await ip("netns", "add", namespace)
    try:
        await ip("-n", namespace, "link", "set", "lo", "up")
        for address in ADDRESSES:
            await ip(
                "-n", namespace, "addr", "add", address, "dev", "lo", *(["nodad"] if ":" in address else [])
            )
        cert, key = certificate(tmp_path)
        listen = (
            "ip",
            "netns",
            "exec",
            namespace,
            sys.executable,
            "-m",
            HELPER,
            "listen",
            cert,
            key,
            *LISTENERS,
        )
        async with (
            running(tmp_path / "listen.log", *listen),
            proxy_in(namespace, tmp_path / "proxy.sock", CONFIG) as proxy,
        ):
            yield Lab(namespace, tmp_path, cert, proxy)
    finally:
        with anyio.CancelScope(shield=True):
            await ip("netns", "del", namespace)


if __name__ == "__main__":
    if sys.argv[1] == "proxy":
        anyio.run(proxy, sys.argv[2], sys.argv[3])
    else:
        listen(sys.argv[2], sys.argv[3], sys.argv[4:])
