"""The egress guard: fetches on a user's behalf never reach private or metadata addresses by default."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.egress import EgressRefused, Reach, check, fetch
from tests.support.servers import serve_app


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/openapi.json",
        "http://localhost:8080/x",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::1]/x",
        "http://10.0.0.8/x",
        "http://192.168.1.1/x",
        "http://0x7f000001/x",  # 127.0.0.1, hex-encoded
        "http://2130706433/x",  # 127.0.0.1, as one decimal number
        "http://[::ffff:127.0.0.1]/x",  # IPv4-mapped IPv6
    ],
)
def test_private_loopback_and_metadata_addresses_are_refused(url: str) -> None:
    with pytest.raises(EgressRefused, match="private or reserved address"):
        check(url, allow=[])


def test_operator_can_allow_a_network_or_a_host() -> None:
    assert str(check("http://127.0.0.1/x", allow=["127.0.0.0/8"])[1]) == "127.0.0.1"
    assert check("http://localhost/x", allow=["localhost"])[0] == "localhost"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "http:///nohost"])
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(EgressRefused, match="only http"):
        check(url, allow=[])


def test_redirects_are_checked_again() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, RedirectResponse
    from starlette.routing import Route

    async def hop(request: object) -> RedirectResponse:
        return RedirectResponse("http://169.254.169.254/latest/meta-data/", 302)

    async def doc(request: object) -> JSONResponse:
        return JSONResponse({"openapi": "3.1.0"})

    app = Starlette(routes=[Route("/hop", hop), Route("/doc", doc)])
    with serve_app(app) as base:
        assert fetch(f"{base}/doc", allow=["127.0.0.1"]) == b'{"openapi":"3.1.0"}'
        with pytest.raises(EgressRefused, match=r"169\.254\.169\.254"):
            fetch(f"{base}/hop", allow=["127.0.0.1"])


# -- a tenant's connections: every address checked when connecting (gateway.egress.Reach) --------


def _app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    hits: list[str] = []

    async def secret(request: Any) -> JSONResponse:
        hits.append(request.url.path)
        return JSONResponse({"internal": "loopback-only data"})

    app = Starlette(routes=[Route("/secret", secret, methods=["GET", "POST"])])
    app.state.hits = hits
    return app


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:5",
        "2002:a00:5::1",
        "::127.0.0.1",  # IPv4-compatible
        "::a9fe:a9fe",
        "::ffff:0:7f00:1",  # SIIT IPv4-translated
        "fec0::1",  # site-local
    ],
)
def test_a_tenants_connection_to_a_private_address_is_refused(address: str) -> None:
    assert Reach().refusal("upstream.example", address) is not None
    assert Reach(("0.0.0.0/0", "::/0")).refusal("upstream.example", address) is None
    assert Reach(("upstream.example",)).refusal("upstream.example", address) is None


def test_a_public_address_is_reached() -> None:
    assert Reach().refusal("example.com", "93.184.215.14") is None


@pytest.mark.anyio
async def test_the_http_client_checks_the_address_it_connects_to() -> None:
    """The aiohttp client of OpenAPI/HTTP targets and interceptors: refused before any byte is sent,
    whatever the name resolves to when connecting (DNS rebinding is caught here, not at config time)."""
    from gateway.core.errors import UpstreamUnavailable
    from gateway.egress import HttpClient

    app = _app()
    with serve_app(app) as base:
        async with HttpClient(base, reach=Reach()) as client:
            with pytest.raises(UpstreamUnavailable, match="private or reserved address"):
                await client.request(
                    "GET", f"{base}/secret", [], None, connect_seconds=5, deadline_seconds=5, limit=1000
                )
        assert app.state.hits == []
        async with HttpClient(base, reach=Reach(("127.0.0.1",))) as client:  # the operator allows it
            answer = await client.request(
                "GET", f"{base}/secret", [], None, connect_seconds=5, deadline_seconds=5, limit=1000
            )
            assert answer.status == 200
        async with HttpClient(base) as client:  # the operator's own target: not checked
            answer = await client.request(
                "GET", f"{base}/secret", [], None, connect_seconds=5, deadline_seconds=5, limit=1000
            )
            assert answer.status == 200


@pytest.mark.anyio
async def test_the_httpx_transport_checks_the_address_it_connects_to() -> None:
    """The transport of a tenant's MCP targets and key endpoints."""
    import httpx2

    app = _app()
    with serve_app(app) as base:
        async with httpx2.AsyncClient(transport=Reach().transport()) as http:
            with pytest.raises(httpx2.ConnectError, match="private or reserved address"):
                await http.get(f"{base}/secret")
        assert app.state.hits == []
        async with httpx2.AsyncClient(transport=Reach(("127.0.0.0/8",)).transport()) as http:
            assert (await http.get(f"{base}/secret")).json() == {"internal": "loopback-only data"}


@pytest.mark.parametrize("url", ["http://a..b/x", "http://h:99999/x", "http://" + "a" * 64 + ".example/x"])
def test_a_url_that_cannot_be_used_is_refused_not_an_error(url: str) -> None:
    with pytest.raises(EgressRefused, match=r"not a usable URL|cannot resolve"):
        check(url, allow=[])
