"""The egress proxy of the PUBLIC network mode (ADR 0035): the one way out of a sandbox whose own
network namespace is empty. It listens on a UNIX socket that is bound into the sandbox (where
``sandbox/_forward.py`` turns it into ``http://127.0.0.1:PORT`` for ``HTTP(S)_PROXY``) and speaks
just enough HTTP/1.1: ``CONNECT host:port`` (a byte tunnel after a 200, for HTTPS) and
absolute-form requests (``GET http://host/path``: that one request and its answer, then close).

Every destination is checked on the addresses actually connected to: a name is resolved once, every
address it gives must pass, and the connection goes to one of those same addresses (no second
lookup for DNS rebinding to answer differently). Always refused, whatever the operator lists:
private, shared (CGNAT), loopback, link-local, cloud-metadata, multicast, reserved and unspecified
addresses, the IPv6 forms that stand for them (IPv4-mapped, -compatible, NAT64, 6to4), and the
gateway's own listening addresses. On top, the operator's host patterns, checked before any lookup
(a denied name is never sent to DNS): deny wins; with an allow list, only listed hosts pass.

Answers: 403 with one line naming the rule that refused, 400 for a request it cannot read, 431 for
a head over the cap, 408 for a head too slow, 502 when the destination cannot be reached, 503 at
the connection cap or when the decision cannot be audited. Each decision on a destination goes to
the ``log`` callback (the gateway's audit) before any byte of the request is sent on.
"""

from __future__ import annotations

import contextlib
import inspect
import ipaddress
import os
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import ByteReceiveStream, ByteStream, SocketListener, SocketStream, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from sandbox._contract import SandboxError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], Awaitable[Sequence[str]]]  # a host name -> its addresses (OSError: none)

PUBLIC_ONLY = ": the sandbox's network reaches public addresses only"
SOCKET_MODE = 0o600  # the sandbox's user is the gateway's own user, mapped (ADR 0034)

# AWS, GCP, Azure, OCI, DigitalOcean (169.254.169.254); AWS ECS credentials, DNS and time; Alibaba;
# Azure's WireServer and OCI's legacy address (both global: only this list stops them); AWS IPv6.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        *("169.254.169.254", "169.254.170.2", "169.254.169.253", "169.254.169.123", "100.100.100.200"),
        *("168.63.129.16", "192.0.0.192", "fd00:ec2::254", "fd00:ec2::253", "fd00:ec2::123"),
    )
)
_METADATA_NAMES = frozenset(
    ("metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal")
)
_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")  # (+ site-local)
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: a network's own translator
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d (deprecated)
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT (RFC 2765)

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOST = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")
_NUMERIC = re.compile(r"[0-9]+|0x[0-9a-f]*")  # a last label inet_aton would read as a number
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VISIBLE = re.compile(rb"[\x21-\x7e]+")
_HOP_BY_HOP = frozenset(
    (b"connection", b"proxy-connection", b"keep-alive", b"proxy-authorization", b"te", b"trailer", b"upgrade")
)
_PHRASES = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout"} | {
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def normal_host(text: str) -> str | None:
    """``text`` as a lowercase host name or a canonical address, or None when it is neither (an
    address in another spelling, ``0x7f.1`` or ``2130706433``, is neither: only canonical
    literals are, so a deny entry cannot be dodged by spelling)."""
    host = text.lower().removesuffix(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if "%" in host:  # (an IPv6 scope: never a public destination)
        return None
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))
    if len(host) > 253 or not _HOST.fullmatch(host) or _NUMERIC.fullmatch(host.rsplit(".", 1)[-1]):
        return None
    return host


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _pattern(entry: str, which: str) -> str:
    wildcard = entry.startswith("*.")
    host = normal_host(entry[2:] if wildcard else entry)
    if host is None or (wildcard and _literal(host) is not None):
        raise SandboxError(f"egress {which} list: {entry!r} is not a host, an address or '*.suffix'")
    return f"*.{host}" if wildcard else host


def _matches(host: str, pattern: str) -> bool:
    """``*.example.com`` matches every name under example.com, not example.com itself."""
    return host.endswith(pattern[1:]) if pattern.startswith("*.") else host == pattern


def _embedded(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, SIIT, compatible, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or address in _TRANSLATED or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _kind(address: Address) -> str | None:
    """What makes ``address`` one a sandbox may never reach, or None for a public address."""
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_unspecified or address in _THIS_NETWORK:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if any(address in network for network in _PRIVATE):
        return "a private address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_multicast:
        return "a multicast address"
    if address in _LOCAL_NAT64 or not address.is_global:
        return "a reserved address"
    return None


def _is_local(address: Address) -> bool:
    """Whether ``address`` is one of this host's own (it can be bound to)."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Where a sandbox's connections may go, on top of the public-only rule that always holds.

    Attributes:
        allow: host patterns (``example.com``, ``*.example.com``, an address); when given, only
            hosts that match one pass. It never opens a private or special address.
        deny: host patterns refused; deny wins over allow. An address here is refused however it
            is reached (as a literal or as what a name resolves to).
        refuse: more destinations refused: networks, and ``(address, port)`` where the gateway
            listens (an unspecified address, ``0.0.0.0`` or ``::``, means every address of this
            host on that port).

    Raises:
        SandboxError: an entry is not a pattern, a network or an (address, port).
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    refuse: tuple[Network | tuple[str, int], ...] = ()
    # Every address of the host the proxy runs on, on every port (its public address reaches all
    # its services, the database's and the cache's among them). Off only where the proxy runs in a
    # network namespace of a test's, whose "public" listeners are on the proxy's own host.
    refuse_local: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", tuple(_pattern(entry, "allow") for entry in self.allow))
        object.__setattr__(self, "deny", tuple(_pattern(entry, "deny") for entry in self.deny))
        for entry in self.refuse:
            pair = isinstance(entry, tuple) and len(entry) == 2 and _literal(str(entry[0])) is not None
            if not (isinstance(entry, ipaddress.IPv4Network | ipaddress.IPv6Network) or pair) or (
                isinstance(entry, tuple) and not (isinstance(entry[1], int) and 0 < entry[1] < 65536)
            ):
                raise SandboxError(f"egress refuse list: {entry!r} is not a network or (address, port)")

    def host_refusal(self, host: str) -> str | None:
        """Why ``host`` (as ``normal_host`` gives it) is refused by name, before any lookup, or None."""
        if host in _METADATA_NAMES:
            return f"{host} is a cloud metadata service{PUBLIC_ONLY}"
        if host == "localhost" or host.endswith(".localhost"):
            return f"{host} is a loopback name{PUBLIC_ONLY}"
        for pattern in self.deny:
            if _matches(host, pattern):
                return f"{host} is on the operator's deny list ({pattern})"
        if self.allow and not any(_matches(host, pattern) for pattern in self.allow):
            return f"{host} is not on the operator's allow list"
        return None

    def address_refusal(self, host: str, port: int, address: str) -> str | None:
        """Why connecting to ``address`` (what ``host`` names) on ``port`` is refused, or None."""
        parsed = _literal(address)
        if parsed is None:
            return f"{host} resolved to {address!r}, which is not an address"
        why = self._why(parsed, port)
        if why is None:
            return None
        return f"{parsed} is {why}" if _literal(host) == parsed else f"{host} resolves to {parsed}, {why}"

    def _why(self, address: Address, port: int) -> str | None:
        inner = _embedded(address) if isinstance(address, ipaddress.IPv6Address) else None
        kind = _kind(address if inner is None else inner)
        if kind is not None:
            return (
                f"{kind}{PUBLIC_ONLY}" if inner is None else f"an IPv6 form of {inner}, {kind}{PUBLIC_ONLY}"
            )
        targets = (address,) if inner is None else (address, inner)
        if self.refuse_local and any(map(_is_local, targets)):
            return f"an address of the gateway's own host{PUBLIC_ONLY}"
        for entry in self.refuse:
            if isinstance(entry, tuple):
                listening = ipaddress.ip_address(entry[0])
                if port == entry[1] and (
                    listening in targets or (listening.is_unspecified and any(map(_is_local, targets)))
                ):
                    return f"where the gateway itself listens (port {port}): the sandbox may not call it"
            elif any(target in entry for target in targets):
                return f"in {entry}, which the operator refuses"
        for pattern in self.deny:
            if _literal(pattern) in targets:
                return f"on the operator's deny list ({pattern})"
        return None


@dataclass(frozen=True, slots=True)
class EgressDecision:
    """One decision on a destination, for the audit.

    ``allowed`` is the policy's verdict: a destination it let through that could not be reached
    (a 502) is allowed, with ``address`` None. ``address`` is the one connected to, or the one
    refused."""

    host: str
    port: int
    address: str | None
    allowed: bool
    reason: str


class _Answer(Exception):
    """What to answer instead of a tunnel: a status and one line saying why."""

    def __init__(self, status: int, reason: str, address: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.address = status, reason, address


@dataclass(frozen=True, slots=True)
class _Request:
    host: str
    port: int
    upstream_head: bytes | None  # the request to send on (absolute-form), None for CONNECT


def _authority(text: str, default_port: int | None) -> tuple[str, int]:
    bad = _Answer(400, f"{text[:200]!r} is not host:port")
    if text.startswith("["):
        literal, bracket, tail = text[1:].partition("]")
        if not bracket or not isinstance(_literal(literal), ipaddress.IPv6Address):
            raise bad
    else:
        literal, colon, port_text = text.partition(":")
        tail = colon + port_text
    if tail:
        digits = tail[1:]
        if not tail.startswith(":") or not digits.isdigit() or len(digits) > 5 or not 0 < int(digits) < 65536:
            raise bad
        port = int(digits)
    elif default_port is None:
        raise bad
    else:
        port = default_port
    host = normal_host(literal)
    if host is None:
        raise _Answer(400, f"{literal[:200]!r} is neither a host name nor an address")
    return host, port


def _parse_head(head: bytes) -> _Request:
    """The destination of a request head (without its final blank line) and, for an absolute-form
    request, the head to send on: origin-form, Host from the URL, hop-by-hop headers dropped,
    ``Connection: close``.

    Raises:
        _Answer: 400, saying what is wrong.
    """
    lines = head.split(b"\r\n")
    if any(b"\r" in line or b"\n" in line or b"\0" in line for line in lines):
        raise _Answer(400, "the request head has a bare CR, LF or NUL")
    parts = lines[0].split(b" ")
    if (
        len(parts) != 3
        or not _TOKEN.fullmatch(parts[0])
        or not _VISIBLE.fullmatch(parts[1])
        or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0")
    ):
        raise _Answer(400, "the request line is not 'METHOD target HTTP/1.1'")
    method, target, version = parts[0], parts[1].decode("ascii"), parts[2]
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise _Answer(400, "a header line is not 'Name: value'")
        headers.append((name, value.strip(b" \t")))
    if method == b"CONNECT":
        return _Request(*_authority(target, None), None)
    if target[:8].lower() == "https://":
        raise _Answer(400, "https:// URLs go through CONNECT (HTTPS_PROXY), not as a plain request")
    if target[:7].lower() != "http://":
        raise _Answer(400, "the proxy takes 'CONNECT host:port' and absolute 'http://' URLs only")
    rest = target[7:]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if "@" in authority:
        raise _Answer(400, "a URL with credentials (user@host) is not forwarded")
    host, port = _authority(authority, 80)
    names = {name.lower() for name, _ in headers}
    if b"transfer-encoding" in names and b"content-length" in names:
        raise _Answer(400, "a request with both Transfer-Encoding and Content-Length is ambiguous")
    dropped = {*_HOP_BY_HOP, b"host"}  # (Host is the URL's authority, set above)
    for name, value in headers:
        if name.lower() == b"connection":
            dropped.update(token.strip().lower() for token in value.split(b","))
    out = [b" ".join((method, (path if path.startswith("/") else "/" + path).encode(), version))]
    out.append(b"Host: " + authority.encode())
    out += [name + b": " + value for name, value in headers if name.lower() not in dropped]
    out.append(b"Connection: close")
    return _Request(host, port, b"\r\n".join(out) + b"\r\n\r\n")


async def _system_resolver(host: str) -> list[str]:
    infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class EgressProxy:
    """The egress proxy on one UNIX socket, for one sandbox's (or one interpreter's) traffic.

    Run it as ``async with EgressProxy(path, policy) as proxy:`` or ``await proxy.serve()``; when
    it ends, the socket file is removed.

    Args:
        path: the UNIX socket to listen on (made 0600; bind it into the sandbox).
        policy: where connections may go (the public-only rule holds whatever it says).
        resolver: a host name -> its addresses (default: the system's getaddrinfo).
        log: called (and awaited, if it is a coroutine function) with every decision on a
            destination, before any byte of the request is sent on; if it raises, the connection
            is refused with a 503 (no traffic without an audit record).
        head_bytes: the largest request head (431 past it).
        head_seconds: the time a client has to send its head (408 past it).
        connect_seconds: resolving and connecting together (502 past it).
        idle_seconds: a tunnel with no byte either way for this long is closed.
        max_connections: connections carried at once (503 past it).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        policy: EgressPolicy | None = None,
        *,
        resolver: Resolver | None = None,
        log: Callable[[EgressDecision], Awaitable[None] | None] | None = None,
        head_bytes: int = 16 * 1024,
        head_seconds: float = 10.0,
        connect_seconds: float = 10.0,
        idle_seconds: float = 300.0,
        max_connections: int = 64,
    ) -> None:
        self.path = os.fspath(path)
        if len(os.fsencode(self.path)) > 107:
            raise SandboxError(f"{self.path} is too long for a UNIX socket (at most 107 bytes)")
        limits = (head_bytes, head_seconds, connect_seconds, idle_seconds, max_connections)
        if min(limits) <= 0:
            raise SandboxError("the egress proxy's limits must all be positive")
        self.policy = policy or EgressPolicy()
        self.resolver = resolver or _system_resolver
        self.log = log
        self.head_bytes, self.head_seconds = head_bytes, head_seconds
        self.connect_seconds, self.idle_seconds = connect_seconds, idle_seconds
        self.max_connections = max_connections
        self.active = 0  # connections carried now
        self._inode: int | None = None
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        listener = await self._listen()
        group = anyio.create_task_group()
        await group.__aenter__()
        try:
            await group.start(self._run, listener)
        except BaseException as exc:
            group.cancel_scope.cancel()
            await group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._group = group
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool | None:
        group, self._group = self._group, None
        if group is None:
            return None
        group.cancel_scope.cancel()
        try:
            return await group.__aexit__(kind, error, trace)
        finally:
            self._unlink()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled (started: once the socket accepts connections)."""
        await self._run(await self._listen(), task_status=task_status)

    async def _listen(self) -> SocketListener:
        try:
            listener = await anyio.create_unix_listener(self.path, mode=SOCKET_MODE)
            self._inode = os.stat(self.path).st_ino
        except OSError as exc:
            raise SandboxError(f"the egress proxy cannot listen on {self.path}: {exc.strerror}") from None
        return listener

    def _unlink(self) -> None:
        """Remove the socket file, if it is still the one made here."""
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        self._inode = None

    async def _run(
        self, listener: SocketListener, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            async with listener, anyio.create_task_group() as group:
                task_status.started()
                while True:
                    group.start_soon(self._accepted, await listener.accept())
        finally:
            self._unlink()

    async def _accepted(self, client: SocketStream) -> None:
        async with client:
            if self.active >= self.max_connections:
                await self._answer(
                    client, 503, f"the proxy is at its limit of {self.max_connections} connections"
                )
                return
            self.active += 1
            try:
                await self._serve(client)
            except _Answer as answer:
                await self._answer(client, answer.status, answer.reason)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass  # the client went away: nothing to answer
            finally:
                self.active -= 1

    async def _serve(self, client: SocketStream) -> None:
        received = BufferedByteReceiveStream(client)
        try:
            with anyio.fail_after(self.head_seconds):
                head = await received.receive_until(b"\r\n\r\n", self.head_bytes)
            if len(head) + 4 > self.head_bytes:  # (found in the chunk read past the limit)
                raise anyio.DelimiterNotFound(self.head_bytes)
        except TimeoutError:
            raise _Answer(408, f"the request head did not come within {self.head_seconds:g} s") from None
        except anyio.DelimiterNotFound:
            raise _Answer(431, f"the request head is larger than {self.head_bytes} bytes") from None
        except anyio.IncompleteRead:
            return  # closed before a whole head: nothing to answer
        request = _parse_head(head)
        upstream = await self._open(request.host, request.port)
        async with upstream:
            if request.upstream_head is None:
                await client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                await upstream.send(request.upstream_head)
            await self._splice(received, client, upstream)

    async def _open(self, host: str, port: int) -> SocketStream:
        """A connection to a checked address of host:port, the decision logged before any byte of
        the request goes there."""
        stream: SocketStream | None = None
        try:
            try:
                with anyio.fail_after(self.connect_seconds):
                    addresses = await self._checked(host, port)
                    stream, address = await self._connect(host, port, addresses)
            except TimeoutError:
                raise _Answer(
                    502, f"{host}:{port} was not reached within {self.connect_seconds:g} s"
                ) from None
            await self._record(EgressDecision(host, port, address, True, f"{address} is a public address"))
        except _Answer as answer:
            if stream is not None:
                await stream.aclose()
            if answer.status in (403, 502):
                await self._record(
                    EgressDecision(host, port, answer.address, answer.status == 502, answer.reason)
                )
            raise
        return stream

    async def _checked(self, host: str, port: int) -> list[str]:
        refusal = self.policy.host_refusal(host)
        if refusal is not None:
            raise _Answer(403, refusal)
        if _literal(host) is not None:
            addresses = [host]
        else:
            try:
                answers = [str(a).split("%")[0] for a in await self.resolver(host)]
                addresses = list(dict.fromkeys(str(_literal(a) or a) for a in answers))  # (canonical)
            except OSError as exc:
                raise _Answer(502, f"{host} cannot be resolved: {exc.strerror or exc}") from None
            except Exception as exc:  # noqa: BLE001 - the caller's hook: one failed lookup, not the proxy
                raise _Answer(502, f"resolving {host} failed: {type(exc).__name__}: {exc}") from None
            if not addresses:
                raise _Answer(502, f"{host} resolves to no address")
        for address in addresses:  # every one, before connecting to any
            refusal = self.policy.address_refusal(host, port, address)
            if refusal is not None:
                raise _Answer(403, refusal, address)
        return addresses

    async def _connect(self, host: str, port: int, addresses: list[str]) -> tuple[SocketStream, str]:
        failure = ""
        for address in addresses:  # the checked literals: no second lookup
            try:
                return await anyio.connect_tcp(address, port), address
            except OSError as exc:  # (anyio's own, the system's error as its cause)
                cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
                failure = os.strerror(cause.errno) if cause.errno else str(cause)
        raise _Answer(502, f"{host}:{port} cannot be reached: {failure}")

    async def _record(self, decision: EgressDecision) -> None:
        if self.log is None:
            return
        try:
            written = self.log(decision)
            if inspect.isawaitable(written):
                await written
        except Exception:  # noqa: BLE001 - the gateway's audit callback: whatever it raises, fail closed
            raise _Answer(503, "the decision could not be audited, so the connection is refused") from None

    async def _splice(self, received: ByteReceiveStream, client: ByteStream, upstream: ByteStream) -> None:
        """Bytes both ways until the destination's side ends (the client's end only half-closes:
        the answer still comes back), one side fails, or nothing moves for idle_seconds."""
        with anyio.CancelScope(deadline=anyio.current_time() + self.idle_seconds) as idle:

            async def pump(source: ByteReceiveStream, sink: ByteStream, final: bool) -> None:
                try:
                    async for chunk in source:
                        await sink.send(chunk)
                        idle.deadline = anyio.current_time() + self.idle_seconds
                    await sink.send_eof()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    final = True
                if final:
                    idle.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(pump, received, upstream, False)
                group.start_soon(pump, upstream, client, True)

    async def _answer(self, client: SocketStream, status: int, reason: str) -> None:
        body = (" ".join(reason.split()) + "\n").encode()
        head = (
            f"HTTP/1.1 {status} {_PHRASES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with (
            anyio.move_on_after(self.head_seconds),
            contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError),
        ):
            await client.send(head.encode() + body)
