"""The egress proxy of the PUBLIC network mode, and the forwarder that carries a sandbox's
connections to it.

Tests in this process ask only for what the proxy refuses, under a policy that refuses every
address besides (no connection can leave from the host's network, even if the proxy had a bug).
Tests that connect run the proxy and the listeners it reaches inside a network namespace the test
makes, with the public-looking and the private addresses on that namespace's loopback: no packet
leaves it. The sandbox test runs the forwarder in bubblewrap, in its own empty network namespace:
only the proxy's UNIX socket crosses."""

from __future__ import annotations

import contextlib
import ipaddress
import stat
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from sandbox import BwrapBackend, Limits, Options, SandboxError
from sandbox._proxy import EgressDecision, EgressPolicy, EgressProxy, _parse_head
from tests.sandbox._proxy_in_netns import PRIVATE_URLS, PUBLIC, PUBLIC6, Lab, open_lab

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
FORWARD = ROOT / "sandbox" / "_forward.py"
EVERYWHERE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
PUBLIC_ONLY = "the sandbox's network reaches public addresses only"


# -- in this process: refusals only ---------------------------------------------------------------
@contextlib.asynccontextmanager
async def local_proxy(
    tmp_path: Path, names: dict[str, list[str]] | None = None, *, log: Any = None, **options: Any
) -> AsyncIterator[tuple[Path, list[EgressDecision], list[str]]]:
    decisions: list[EgressDecision] = []
    lookups: list[str] = []

    async def recorded(host: str) -> Sequence[str]:
        lookups.append(host)
        if (found := (names or {}).get(host)) is None:
            raise OSError("no such name in the test's table")
        return found

    resolve = options.pop("resolver", recorded)
    policy = options.pop("policy", EgressPolicy())
    guarded = EgressPolicy(policy.allow, policy.deny, (*policy.refuse, *EVERYWHERE))  # (the safety net)
    path = tmp_path / "proxy.sock"
    async with EgressProxy(path, guarded, resolver=resolve, log=log or decisions.append, **options):
        yield path, decisions, lookups
    assert not path.exists()


async def ask(path: Path, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` to the proxy: its answer's status and its body (read to the end)."""
    with anyio.fail_after(10):
        async with await anyio.connect_unix(path) as stream:
            await stream.send(request)
            return await _answer(BufferedByteReceiveStream(stream))


async def _answer(received: BufferedByteReceiveStream) -> tuple[int, bytes]:
    head = await received.receive_until(b"\r\n\r\n", 65536)
    body = bytearray()
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while True:
            body += await received.receive()
    return int(head.split(b" ")[1]), bytes(body)


SPECIAL = {  # every kind of address a sandbox may never reach, in IPv4, IPv6 and IPv6 forms of IPv4
    "a private address": "10.1.2.3 172.16.0.1 192.168.1.1 fc00::1 fd12:3456::1 fec0::1",
    "a shared (carrier-grade NAT) address": "100.64.0.1",
    "a loopback address": "127.0.0.1 127.255.0.9 ::1",
    "a link-local address": "169.254.1.1 fe80::1",
    "a cloud metadata address": "169.254.169.254 100.100.100.200 168.63.129.16 fd00:ec2::254",
    "a multicast address": "224.0.0.1 ff02::1",
    "an unspecified address": "0.0.0.0 0.1.2.3 ::",
    # broadcast, class E, benchmarking, documentation, Teredo, local-use NAT64
    "a reserved address": "255.255.255.255 240.0.0.1 198.18.0.1 2001:db8::1 2001::1 64:ff9b:1::a00:1",
    # IPv4-mapped, SIIT, IPv4-compatible
    "an IPv6 form of 10.0.0.1, a private address": "::ffff:10.0.0.1 ::ffff:0:a00:1 ::a00:1",
    "an IPv6 form of 127.0.0.1, a loopback address": "::ffff:127.0.0.1 ::7f00:1",
    # mapped, NAT64
    "an IPv6 form of 169.254.169.254, a cloud metadata address": "::ffff:169.254.169.254 64:ff9b::a9fe:a9fe",
    "an IPv6 form of 192.168.1.1, a private address": "2002:c0a8:101::1",  # 6to4
}


@pytest.mark.parametrize(
    ("address", "kind"), [(address, kind) for kind, listed in SPECIAL.items() for address in listed.split()]
)
def test_every_special_address_is_refused_with_its_kind(address: str, kind: str) -> None:
    refusal = EgressPolicy(allow=(address,)).address_refusal(address, 443, address)
    assert refusal == f"{ipaddress.ip_address(address)} is {kind}: {PUBLIC_ONLY}"


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "2606:2800:220:1::10",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",
        "2002:5db8:d822::1",
    ],
)
def test_public_addresses_and_their_ipv6_forms_pass(address: str) -> None:
    assert EgressPolicy().address_refusal(address, 443, address) is None


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    policy = EgressPolicy()
    answers = ["93.184.216.34", "10.0.0.1"]
    refusals = [policy.address_refusal("split.test", 443, a) for a in answers]
    assert refusals == [None, f"split.test resolves to 10.0.0.1, a private address: {PUBLIC_ONLY}"]
    assert policy.address_refusal("odd.test", 443, "not-an-ip") == (
        "odd.test resolved to 'not-an-ip', which is not an address"
    )


def test_allow_and_deny_patterns_deny_winning() -> None:
    policy = EgressPolicy(allow=("*.Example.com.", "pypi.org", "93.184.216.34"), deny=("evil.example.com",))
    assert policy.host_refusal("files.example.com") is None
    assert policy.host_refusal("a.b.example.com") is None
    assert policy.host_refusal("pypi.org") is None
    assert policy.host_refusal("93.184.216.34") is None
    assert policy.host_refusal("example.com") == "example.com is not on the operator's allow list"
    assert policy.host_refusal("notexample.com") == "notexample.com is not on the operator's allow list"
    assert policy.host_refusal("evil.example.com") == (
        "evil.example.com is on the operator's deny list (evil.example.com)"
    )
    open_policy = EgressPolicy(deny=("*.evil.test", "203.0.113.7"))
    assert open_policy.host_refusal("anything.org") is None
    assert "deny list (*.evil.test)" in (open_policy.host_refusal("x.evil.test") or "")
    # a denied address is refused however it is reached (here: what a name resolves to)
    assert open_policy._why(ipaddress.ip_address("::ffff:203.0.113.7"), 443) is not None


def test_metadata_and_loopback_names_are_refused_by_name() -> None:
    policy = EgressPolicy(allow=("metadata.google.internal", "localhost"))
    assert policy.host_refusal("metadata.google.internal") == (
        f"metadata.google.internal is a cloud metadata service: {PUBLIC_ONLY}"
    )
    assert policy.host_refusal("app.localhost") == f"app.localhost is a loopback name: {PUBLIC_ONLY}"


def test_operator_networks_and_the_gateways_own_address_are_refused() -> None:
    policy = EgressPolicy(refuse=(ipaddress.ip_network("8.8.8.0/24"), ("93.184.216.34", 8443)))
    assert (
        policy.address_refusal("8.8.8.8", 53, "8.8.8.8")
        == "8.8.8.8 is in 8.8.8.0/24, which the operator refuses"
    )
    assert policy.address_refusal("gw.test", 8443, "93.184.216.34") == (
        "gw.test resolves to 93.184.216.34, where the gateway itself listens (port 8443): "
        "the sandbox may not call it"
    )
    assert policy.address_refusal("gw.test", 443, "93.184.216.34") is None


@pytest.mark.parametrize(
    "entry",
    [
        {"allow": ("exa mple.com",)},
        {"deny": ("*.10.0.0.1",)},
        {"allow": ("http://x.com",)},
        {"deny": ("",)},
        {"refuse": (("gateway.test", 443),)},
        {"refuse": (("10.0.0.1", 0),)},
        {"refuse": ("10.0.0.0/8",)},
    ],
)
def test_a_policy_entry_that_is_not_a_pattern_is_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(SandboxError, match=r"^egress (allow|deny|refuse) list: "):
        EgressPolicy(**entry)


async def test_names_refused_by_pattern_are_never_looked_up(tmp_path: Path) -> None:
    policy = EgressPolicy(allow=("*.example.test",), deny=("bad.example.test",))
    async with local_proxy(tmp_path, policy=policy) as (path, decisions, lookups):
        for host, why in [
            ("bad.example.test", "bad.example.test is on the operator's deny list (bad.example.test)"),
            ("other.test", "other.test is not on the operator's allow list"),
            (
                "metadata.google.internal",
                f"metadata.google.internal is a cloud metadata service: {PUBLIC_ONLY}",
            ),
        ]:
            assert await ask(path, f"CONNECT {host}:443 HTTP/1.1\r\n\r\n".encode()) == (
                403,
                why.encode() + b"\n",
            )
        assert lookups == []
    assert [(d.host, d.address, d.allowed) for d in decisions] == [
        ("bad.example.test", None, False),
        ("other.test", None, False),
        ("metadata.google.internal", None, False),
    ]


async def test_a_name_resolving_to_a_private_address_is_refused_with_the_rule(tmp_path: Path) -> None:
    names = {"intranet.test": ["10.0.0.1"], "meta.test": ["::ffff:169.254.169.254"]}
    async with local_proxy(tmp_path, names) as (path, decisions, _):
        status, body = await ask(path, b"GET http://intranet.test/ HTTP/1.1\r\nHost: intranet.test\r\n\r\n")
        assert (status, body) == (
            403,
            f"intranet.test resolves to 10.0.0.1, a private address: {PUBLIC_ONLY}\n".encode(),
        )
        status, body = await ask(path, b"CONNECT meta.test:80 HTTP/1.1\r\n\r\n")
        assert status == 403 and b"an IPv6 form of 169.254.169.254, a cloud metadata address" in body
        status, body = await ask(path, b"CONNECT [::ffff:a00:1]:443 HTTP/1.1\r\n\r\n")
        mapped = ipaddress.ip_address("::ffff:10.0.0.1")  # (written ::ffff:a00:1 before Python 3.13)
        assert body == f"{mapped} is an IPv6 form of 10.0.0.1, a private address: {PUBLIC_ONLY}\n".encode()
    assert decisions[0] == EgressDecision(
        "intranet.test",
        80,
        "10.0.0.1",
        False,
        f"intranet.test resolves to 10.0.0.1, a private address: {PUBLIC_ONLY}",
    )
    meta = ipaddress.ip_address("::ffff:169.254.169.254")
    assert [d.address for d in decisions] == ["10.0.0.1", str(meta), str(mapped)]


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"GARBAGE\r\n\r\n", b"the request line is not"),
        (b"GET /relative HTTP/1.1\r\nHost: x.test\r\n\r\n", b"absolute 'http://' URLs only"),
        (b"GET https://x.test/ HTTP/1.1\r\n\r\n", b"go through CONNECT"),
        (b"CONNECT x.test HTTP/1.1\r\n\r\n", b"is not host:port"),
        (b"CONNECT x.test:0 HTTP/1.1\r\n\r\n", b"is not host:port"),
        (b"CONNECT x.test:99999 HTTP/1.1\r\n\r\n", b"is not host:port"),
        (b"CONNECT [::1:443 HTTP/1.1\r\n\r\n", b"is not host:port"),
        (b"CONNECT [x.test]:443 HTTP/1.1\r\n\r\n", b"is not host:port"),
        (b"CONNECT 0x7f.1:80 HTTP/1.1\r\n\r\n", b"neither a host name nor an address"),
        (b"CONNECT 2130706433:80 HTTP/1.1\r\n\r\n", b"neither a host name nor an address"),
        (b"CONNECT -x.test:80 HTTP/1.1\r\n\r\n", b"neither a host name nor an address"),
        (b"CONNECT x.test:80 HTTP/2.0\r\n\r\n", b"the request line is not"),
        (b"GET http://user:pw@x.test/ HTTP/1.1\r\n\r\n", b"with credentials"),
        (b"GET http://x.test/ HTTP/1.1\r\nBad Header\r\n\r\n", b"a header line is not"),
        (b"GET http://x.test/ HTTP/1.1\r\nA: b\nC: d\r\n\r\n", b"bare CR, LF or NUL"),
        (
            b"POST http://x.test/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"is ambiguous",
        ),
        ("CONNECT ex\u00e4mple.test:443 HTTP/1.1\r\n\r\n".encode(), b"the request line is not"),
    ],
)
async def test_a_malformed_request_gets_400_saying_what_is_wrong(
    tmp_path: Path, head: bytes, why: bytes
) -> None:
    async with local_proxy(tmp_path) as (path, decisions, lookups):
        status, body = await ask(path, head)
    assert status == 400 and why in body and body.endswith(b"\n") and body.count(b"\n") == 1
    assert decisions == [] and lookups == []


async def test_a_head_past_the_default_16_kib_is_refused_as_it_streams(tmp_path: Path) -> None:
    async with local_proxy(tmp_path) as (path, _, lookups):
        endless = b"CONNECT x.test:443 HTTP/1.1\r\n" + b"X-Pad: a\r\n" * 3000  # 30 KB, no blank line
        assert await ask(path, endless) == (431, b"the request head is larger than 16384 bytes\n")
    assert lookups == []


async def test_an_oversized_or_slow_head_is_refused(tmp_path: Path) -> None:
    async with local_proxy(tmp_path, head_bytes=1024, head_seconds=0.3) as (path, _, lookups):
        big = b"CONNECT x.test:443 HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 2000 + b"\r\n\r\n"
        assert await ask(path, big) == (431, b"the request head is larger than 1024 bytes\n")
        started = anyio.current_time()
        assert await ask(path, b"CONNECT x.test:443 HTTP/1.1\r\n") == (
            408,
            b"the request head did not come within 0.3 s\n",
        )
        assert anyio.current_time() - started >= 0.3
    assert lookups == []


async def test_a_name_that_does_not_resolve_is_502_and_audited(tmp_path: Path) -> None:
    async with local_proxy(tmp_path) as (path, decisions, _):
        assert await ask(path, b"CONNECT nowhere.test:443 HTTP/1.1\r\n\r\n") == (
            502,
            b"nowhere.test cannot be resolved: no such name in the test's table\n",
        )
    assert decisions == [
        EgressDecision(
            "nowhere.test",
            443,
            None,
            True,
            "nowhere.test cannot be resolved: no such name in the test's table",
        )
    ]


async def test_past_the_connection_cap_a_client_gets_503_at_once(tmp_path: Path) -> None:
    entered, release = anyio.Event(), anyio.Event()

    async def held(host: str) -> list[str]:  # holds the first connection open until released
        entered.set()
        await release.wait()
        return ["10.9.9.9"]

    async with local_proxy(tmp_path, resolver=held, max_connections=1) as (path, _, _):
        async with await anyio.connect_unix(path) as first:
            await first.send(b"CONNECT held.test:443 HTTP/1.1\r\n\r\n")
            await entered.wait()
            assert await ask(path, b"CONNECT other.test:443 HTTP/1.1\r\n\r\n") == (
                503,
                b"the proxy is at its limit of 1 connections\n",
            )
            release.set()
            with anyio.fail_after(10):
                status, body = await _answer(BufferedByteReceiveStream(first))
            assert (status, body) == (
                403,
                f"held.test resolves to 10.9.9.9, a private address: {PUBLIC_ONLY}\n".encode(),
            )
        assert (await ask(path, b"CONNECT localhost:1 HTTP/1.1\r\n\r\n"))[0] == 403  # served again


async def test_an_audit_that_cannot_be_written_refuses_the_connection(tmp_path: Path) -> None:
    def broken(decision: EgressDecision) -> None:
        raise RuntimeError("audit store down")

    policy = EgressPolicy(deny=("x.test",))
    async with local_proxy(tmp_path, log=broken, policy=policy) as (path, _, _):
        assert await ask(path, b"CONNECT x.test:443 HTTP/1.1\r\n\r\n") == (
            503,
            b"the decision could not be audited, so the connection is refused\n",
        )


async def test_an_async_audit_is_awaited_before_the_answer(tmp_path: Path) -> None:
    written: list[EgressDecision] = []

    async def audit(decision: EgressDecision) -> None:
        await anyio.lowlevel.checkpoint()
        written.append(decision)

    async with local_proxy(tmp_path, log=audit) as (path, _, _):
        assert (await ask(path, b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n"))[0] == 403
        assert [(d.address, d.allowed) for d in written] == [("10.0.0.1", False)]


async def test_a_resolver_that_fails_oddly_costs_one_connection_not_the_proxy(tmp_path: Path) -> None:
    async def odd(host: str) -> list[str]:
        raise LookupError("the table is corrupt")

    async with local_proxy(tmp_path, resolver=odd) as (path, _, _):
        assert await ask(path, b"CONNECT a.test:443 HTTP/1.1\r\n\r\n") == (
            502,
            b"resolving a.test failed: LookupError: the table is corrupt\n",
        )
        assert (await ask(path, b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n"))[0] == 403  # serving on


async def test_serve_and_close_remove_the_socket_file(tmp_path: Path) -> None:
    path = tmp_path / "served.sock"
    proxy = EgressProxy(path, EgressPolicy(refuse=EVERYWHERE))
    async with anyio.create_task_group() as group:
        await group.start(proxy.serve)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_ISSOCK(path.stat().st_mode)
        assert (await ask(path, b"CONNECT localhost:1 HTTP/1.1\r\n\r\n"))[0] == 403
        group.cancel_scope.cancel()
    assert not path.exists()
    with pytest.raises(SandboxError, match="too long for a UNIX socket"):
        EgressProxy(tmp_path / ("x" * 120))
    with pytest.raises(SandboxError, match="must all be positive"):
        EgressProxy(path, idle_seconds=0)
    with pytest.raises(SandboxError, match="cannot listen on"):
        await EgressProxy(tmp_path / "missing" / "p.sock").__aenter__()


def test_a_forwarded_request_goes_on_in_origin_form_with_the_urls_host() -> None:
    request = _parse_head(
        b"GET http://Www.Example.test:8080/a/b?c=1 HTTP/1.1\r\nHost: elsewhere.test\r\n"
        b"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
        b"Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nAccept: */*"
    )
    assert (request.host, request.port) == ("www.example.test", 8080)
    assert request.upstream_head == (
        b"GET /a/b?c=1 HTTP/1.1\r\nHost: Www.Example.test:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    assert _parse_head(b"GET http://x.test?q HTTP/1.0").upstream_head == (
        b"GET /?q HTTP/1.0\r\nHost: x.test\r\nConnection: close\r\n\r\n"
    )


# -- for real, inside a network namespace the test makes ------------------------------------------
@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with open_lab(tmp_path) as made:
        yield made


async def _tunnel(path: Path, target: str) -> tuple[SocketStream, BufferedByteReceiveStream, bytes]:
    stream = await anyio.connect_unix(path)
    await stream.send(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    received = BufferedByteReceiveStream(stream)
    return stream, received, await received.receive_until(b"\r\n\r\n", 65536)


async def test_connect_to_a_public_address_is_tunnelled_both_ways(lab: Lab) -> None:
    for target, address in [
        (f"{PUBLIC}:7", PUBLIC),
        ("www.example.test:7", PUBLIC),
        (f"[{PUBLIC6}]:7", PUBLIC6),
        ("v6.example.test:7", PUBLIC6),
    ]:
        with anyio.fail_after(10):
            stream, received, head = await _tunnel(lab.proxy.socket, target)
            async with stream:
                assert head == b"HTTP/1.1 200 Connection established"
                assert await received.receive_until(b"\n", 1024) == f"banner from {address}:7".encode()
                await stream.send(b"ping across the tunnel")
                assert await received.receive_exactly(22) == b"PING ACROSS THE TUNNEL"
                await stream.send_eof()  # a half-close crosses, and the far end's close comes back
                with pytest.raises(anyio.EndOfStream):
                    await received.receive()
        decision = await lab.proxy.decision()
        assert decision == {
            "host": target.rsplit(":", 1)[0].strip("[]"),
            "port": 7,
            "address": address,
            "allowed": True,
            "reason": f"{address} is a public address",
        }


async def test_early_data_and_16_mib_each_way_cross_the_tunnel_intact(lab: Lab) -> None:
    size = 16 * 1024 * 1024
    pattern = bytes(range(97, 123)) * (size // 26 + 1)
    with anyio.fail_after(30):
        async with await anyio.connect_unix(lab.proxy.socket) as stream:
            await stream.send(f"CONNECT {PUBLIC}:7 HTTP/1.1\r\n\r\n".encode() + b"early|")  # before the 200
            received = BufferedByteReceiveStream(stream)
            assert await received.receive_until(b"\r\n\r\n", 1024) == b"HTTP/1.1 200 Connection established"
            assert await received.receive_until(b"\n", 1024) == f"banner from {PUBLIC}:7".encode()
            assert await received.receive_exactly(6) == b"EARLY|"
            back = bytearray()

            async def sending() -> None:
                for start in range(0, size, 256 * 1024):
                    await stream.send(pattern[start : start + 256 * 1024])

            async with anyio.create_task_group() as group:  # both ways at once: no deadlock
                group.start_soon(sending)
                while len(back) < size:
                    back += await received.receive()
    assert len(back) == size and bytes(back) == pattern[:size].upper()


async def test_a_plain_http_request_is_forwarded_once_then_closed(lab: Lab) -> None:
    request = (
        b"GET http://www.example.test/path?q=1 HTTP/1.1\r\nHost: wrong.test\r\n"
        b"Proxy-Connection: keep-alive\r\nUser-Agent: test\r\n\r\n"
    )
    status, body = await ask(lab.proxy.socket, request)
    assert status == 200
    assert body == f"hello from {PUBLIC}:80: GET /path?q=1 HTTP/1.1 host=www.example.test\n".encode()
    assert (await lab.proxy.decision())["allowed"] is True


async def test_private_loopback_and_metadata_listeners_are_refused_though_they_answer(lab: Lab) -> None:
    for url in PRIVATE_URLS:  # each listener is there, reachable from inside the namespace...
        code, output = await lab.inside("curl", "-sS", "-g", "--noproxy", "*", "--max-time", "10", url)
        assert code == 0 and output.startswith("hello from "), output
    refused = [  # ...and the proxy, in the same namespace, refuses every one of them
        ("CONNECT 10.0.0.1:80", "10.0.0.1 is a private address"),
        ("CONNECT 10.0.0.1:7", "10.0.0.1 is a private address"),
        ("CONNECT 192.168.1.1:80", "192.168.1.1 is a private address"),
        ("CONNECT 169.254.169.254:80", "169.254.169.254 is a cloud metadata address"),
        ("CONNECT 127.0.0.1:80", "127.0.0.1 is a loopback address"),
        ("CONNECT [::1]:80", "::1 is a loopback address"),
        ("CONNECT [fd00:ec2::254]:80", "fd00:ec2::254 is a cloud metadata address"),
        ("CONNECT [::ffff:10.0.0.1]:80", "is an IPv6 form of 10.0.0.1, a private address"),
        ("GET http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("GET http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
        (
            "GET http://intranet.example.test/",
            "intranet.example.test resolves to 10.0.0.1, a private address",
        ),
        ("CONNECT split.example.test:80", "split.example.test resolves to 192.168.1.1, a private address"),
        ("CONNECT metadata.google.internal:80", "metadata.google.internal is a cloud metadata service"),
        ("CONNECT localhost:80", "localhost is a loopback name"),
    ]
    for line, why in refused:
        status, body = await ask(lab.proxy.socket, f"{line} HTTP/1.1\r\n\r\n".encode())
        assert status == 403 and why.encode() in body and body.endswith(f"{PUBLIC_ONLY}\n".encode()), body
        assert (await lab.proxy.decision())["allowed"] is False


async def test_deny_wins_over_allow_and_the_gateways_own_port_is_refused(lab: Lab) -> None:
    code, output = await lab.inside(
        "curl", "-sS", "--noproxy", "*", "--max-time", "10", f"http://{PUBLIC}:8443/"
    )
    assert code == 0 and output.startswith("hello from "), output  # "the gateway" is listening there
    for line, status, why in [
        ("CONNECT denied.example.test:443", 403, "denied.example.test is on the operator's deny list"),
        ("GET http://denied.example.test/", 403, "denied.example.test is on the operator's deny list"),
        ("CONNECT elsewhere.test:443", 403, "elsewhere.test is not on the operator's allow list"),
        ("CONNECT www.example.test:8443", 403, f"resolves to {PUBLIC}, where the gateway itself listens"),
        (f"CONNECT {PUBLIC}:81", 502, f"{PUBLIC}:81 cannot be reached: Connection refused"),
        ("CONNECT nothere.example.test:443", 502, "nothere.example.test cannot be resolved"),
    ]:
        answer = await ask(lab.proxy.socket, f"{line} HTTP/1.1\r\n\r\n".encode())
        assert answer[0] == status and why.encode() in answer[1], answer
        decision = await lab.proxy.decision()
        assert decision["allowed"] is (status == 502) and why in decision["reason"]


async def test_every_address_of_the_proxys_own_host_is_refused_on_every_port(lab: Lab) -> None:
    """Where the proxy runs, the "public" listeners are its own host's: with the rule on (as it
    always is outside this test's namespace) they are refused, whatever the port."""
    async with lab.start_proxy("local.sock", refuse_local=True) as local:
        for target in (f"{PUBLIC}:443", f"{PUBLIC}:7", f"[{PUBLIC6}]:443"):
            status, body = await ask(local.socket, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
            assert status == 403 and b"an address of the gateway's own host" in body, (target, body)


async def test_an_idle_tunnel_is_closed(lab: Lab) -> None:
    async with lab.start_proxy("quick.sock", idle_seconds=0.5) as quick:
        stream, received, head = await _tunnel(quick.socket, f"{PUBLIC}:7")
        async with stream:
            assert head == b"HTTP/1.1 200 Connection established"
            assert await received.receive_until(b"\n", 1024) == f"banner from {PUBLIC}:7".encode()
            started = anyio.current_time()
            with anyio.fail_after(10), pytest.raises(anyio.EndOfStream):
                await received.receive()  # nothing moves either way: the proxy ends it
            assert anyio.current_time() - started >= 0.45


# -- the forwarder, inside a bubblewrap sandbox ---------------------------------------------------
INSIDE = r"""
curl -sS --cacert /opt/ca.pem https://www.example.test/secure; echo "curl https: $?"
curl -sS http://www.example.test/plain; echo "curl http: $?"
curl -sS -w ' [%{http_code}]' http://intranet.example.test/; echo " curl refused: $?"
curl -sS --cacert /opt/ca.pem https://192.168.1.1/ 2>&1; echo "curl tunnel refused: $?"
python3 -I -c '
import ssl, urllib.error, urllib.request
context = ssl.create_default_context(cafile="/opt/ca.pem")
answer = urllib.request.urlopen("https://www.example.test/u", context=context)
print("urllib:", answer.read().decode().strip())
try:
    urllib.request.urlopen("http://169.254.169.254/latest/meta-data/")
except urllib.error.HTTPError as e:
    print("urllib refused:", e.code, e.read().decode().strip())
from importlib.util import module_from_spec, spec_from_file_location
spec = spec_from_file_location("forward", "/opt/switchboard/forward.py")
forward = module_from_spec(spec)
spec.loader.exec_module(forward)
port = forward.start(0, "/run/missing.sock")  # the function form, for the agent
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{port}"}))
try:
    opener.open("http://www.example.test/")
except urllib.error.HTTPError as e:
    print("no proxy:", e.code, e.read().decode().strip())
'
python3 -I /opt/switchboard/forward.py 2>/dev/null; echo "usage: $?"
exit 3
"""


async def test_the_forwarder_carries_a_sandboxs_http_and_https_through_the_proxy(
    lab: Lab, tmp_path: Path
) -> None:
    socket_path = lab.proxy.socket
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600  # (connect needs write on the inode: ours)
    binds = ((str(socket_path), "/run/proxy.sock"), (str(FORWARD), "/opt/switchboard/forward.py"))
    options = Options(binds=(*binds, (str(lab.certificate), "/opt/ca.pem")))  # read-only binds, all
    box = await BwrapBackend(tmp_path / "sandboxes").start(options)
    try:
        command = [
            "python3",
            "-I",
            "/opt/switchboard/forward.py",
            "3128",
            "/run/proxy.sock",
            "--",
            "sh",
            "-c",
            INSIDE,
        ]
        done = await box.run(command, limits=Limits(wall_seconds=60))
    finally:
        await box.stop()
    lines = done.stdout.decode().splitlines()
    assert done.exit_code == 3, done.stderr.decode()  # the command's own status
    assert lines == [
        f"hello from {PUBLIC}:443: GET /secure HTTP/1.1 host=www.example.test",
        "curl https: 0",
        f"hello from {PUBLIC}:80: GET /plain HTTP/1.1 host=www.example.test",
        "curl http: 0",
        f"intranet.example.test resolves to 10.0.0.1, a private address: {PUBLIC_ONLY}",
        " [403] curl refused: 0",
        "curl: (56) CONNECT tunnel failed, response 403",
        "curl tunnel refused: 56",
        f"urllib: hello from {PUBLIC}:443: GET /u HTTP/1.1 host=www.example.test",
        f"urllib refused: 403 169.254.169.254 is a cloud metadata address: {PUBLIC_ONLY}",
        "no proxy: 502 the egress proxy cannot be reached from the sandbox",
        "usage: 2",
    ]
